//! Status-code fidelity tests: a WAT module forwards raw calls to the host functions, so each
//! test sees the exact status Envoy would return (the SDK would hide or panic on them).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ballast_mock_host::{Host, PluginModule, Status, Val};

mod common;
use common::raw_imports;

const IMPORTS: &[(&str, &str, &str)] = &[
    ("env", "proxy_log", "iii"),
    ("env", "proxy_get_log_level", "i"),
    ("env", "proxy_get_current_time_nanoseconds", "i"),
    ("env", "proxy_set_tick_period_milliseconds", "i"),
    ("env", "proxy_get_header_map_pairs", "iii"),
    ("env", "proxy_set_header_map_pairs", "iii"),
    ("env", "proxy_get_header_map_value", "iiiii"),
    ("env", "proxy_add_header_map_value", "iiiii"),
    ("env", "proxy_replace_header_map_value", "iiiii"),
    ("env", "proxy_remove_header_map_value", "iii"),
    ("env", "proxy_get_header_map_size", "ii"),
    ("env", "proxy_get_buffer_bytes", "iiiii"),
    ("env", "proxy_get_buffer_status", "iii"),
    ("env", "proxy_set_buffer_bytes", "iiiii"),
    ("env", "proxy_get_property", "iiii"),
    ("env", "proxy_set_property", "iiii"),
    ("env", "proxy_get_shared_data", "iiiii"),
    ("env", "proxy_set_shared_data", "iiiii"),
    ("env", "proxy_register_shared_queue", "iii"),
    ("env", "proxy_resolve_shared_queue", "iiiii"),
    ("env", "proxy_dequeue_shared_queue", "iii"),
    ("env", "proxy_enqueue_shared_queue", "iii"),
    ("env", "proxy_define_metric", "iiii"),
    ("env", "proxy_increment_metric", "iI"),
    ("env", "proxy_record_metric", "iI"),
    ("env", "proxy_get_metric", "ii"),
    ("env", "proxy_continue_stream", "i"),
    ("env", "proxy_close_stream", "i"),
    ("env", "proxy_send_local_response", "iiiiiiii"),
    ("env", "proxy_set_effective_context", "i"),
    ("env", "proxy_done", ""),
    ("env", "proxy_get_status", "iii"),
    ("env", "proxy_call_foreign_function", "iiiiii"),
    ("env", "proxy_http_call", "iiiiiiiiii"),
    ("env", "proxy_grpc_call", "iiiiiiiiiiii"),
    ("env", "proxy_grpc_send", "iiii"),
    ("env", "proxy_grpc_cancel", "i"),
    ("wasi_snapshot_preview1", "fd_write", "iiii"),
    ("wasi_snapshot_preview1", "clock_time_get", "iIi"),
];

fn wat() -> String {
    let mut out = String::from("(module\n");
    for (module, name, params) in IMPORTS {
        out += &raw_imports::import(module, name, params);
    }
    out += r#"
  (memory (export "memory") 4)
  (global $heap (mut i32) (i32.const 131072))
  (global $action (mut i32) (i32.const 1))
  (func (export "malloc") (param $n i32) (result i32) (local $p i32)
    global.get $heap local.set $p
    global.get $heap local.get $n i32.add i32.const 7 i32.add i32.const -8 i32.and global.set $heap
    local.get $p)
  (func (export "set_action") (param i32) local.get 0 global.set $action)
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) global.get $action)
  (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32) global.get $action)
"#;
    for (_, name, params) in IMPORTS {
        out += &raw_imports::trampoline(name, params);
    }
    out + ")\n"
}

fn module() -> PluginModule {
    static M: std::sync::OnceLock<PluginModule> = std::sync::OnceLock::new();
    M.get_or_init(|| PluginModule::from_wat("abi.wat", &wat()).expect("compile WAT"))
        .clone()
}

struct T {
    host: Host,
}

const OUT: i32 = 512; // out pointer
const OUT2: i32 = 516; // out size / second word
const OUT64: i32 = 520; // u64 out
const DATA: u32 = 1024; // scratch data written by the test

impl T {
    fn new() -> Self {
        Self::with(Host::builder(&module()).vm_config("vmconf").vm_id("vm"))
    }
    fn with(b: ballast_mock_host::HostBuilder) -> Self {
        let mut host = b.build().unwrap();
        assert!(host.start().unwrap().all_ok());
        Self { host }
    }
    fn call(&mut self, ctx: u32, name: &str, args: &[i64]) -> i32 {
        let params = IMPORTS
            .iter()
            .find(|(_, n, _)| *n == name)
            .expect("import")
            .2;
        let vals = raw_imports::values(args, params);
        let r = self
            .host
            .call_raw(0, ctx, &format!("t_{name}"), &vals)
            .unwrap();
        r[0].unwrap_i32()
    }
    /// Writes bytes at DATA + offset and returns (ptr, len).
    fn put(&mut self, offset: u32, bytes: &[u8]) -> (i64, i64) {
        self.host.write_memory(0, DATA + offset, bytes).unwrap();
        (i64::from(DATA + offset), bytes.len() as i64)
    }
    fn u32_at(&self, ptr: i32) -> u32 {
        let b = self.host.read_memory(0, ptr as u32, 4).unwrap();
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }
    fn u64_at(&self, ptr: i32) -> u64 {
        let b = self.host.read_memory(0, ptr as u32, 8).unwrap();
        u64::from_le_bytes(b.try_into().unwrap())
    }
    /// The (ptr, size) pair written at OUT/OUT2, read back as bytes.
    fn returned(&self) -> Option<Vec<u8>> {
        let (ptr, size) = (self.u32_at(OUT), self.u32_at(OUT2));
        if ptr == 0 {
            assert_eq!(size, 0, "null pointer comes with size 0");
            return None;
        }
        Some(self.host.read_memory(0, ptr, size).unwrap())
    }
    /// A stream paused in on_request_headers (maps live); returns its context id.
    fn paused_stream(&mut self, headers: &[(&str, &str)]) -> u32 {
        let mut s = self.host.http_stream(0).unwrap();
        s.request_headers(headers, false).unwrap();
        s.id().context_id
    }
}

const OK: i32 = Status::Ok as i32;
const NOT_FOUND: i32 = Status::NotFound as i32;
const BAD: i32 = Status::BadArgument as i32;
const PARSE: i32 = Status::ParseFailure as i32;
const INVALID: i32 = Status::InvalidMemoryAccess as i32;
const EMPTY: i32 = Status::Empty as i32;
const CAS: i32 = Status::CasMismatch as i32;
const UNIMPLEMENTED: i32 = Status::Unimplemented as i32;

fn serialize(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
    for (k, v) in pairs {
        out.extend((k.len() as u32).to_le_bytes());
        out.extend((v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend(k.as_bytes());
        out.push(0);
        out.extend(v.as_bytes());
        out.push(0);
    }
    out
}

#[test]
fn header_maps_follow_envoy_availability_and_serialization() {
    let mut t = T::new();
    // Root context: no maps. Pairs -> OK with null/0 (not a 1-byte buffer); value -> BAD_ARGUMENT.
    assert_eq!(
        t.call(
            1,
            "proxy_get_header_map_pairs",
            &[0, OUT.into(), OUT2.into()]
        ),
        OK
    );
    assert_eq!(t.returned(), None);
    let (k, kl) = t.put(0, b"x-a");
    assert_eq!(
        t.call(
            1,
            "proxy_get_header_map_value",
            &[0, k, kl, OUT.into(), OUT2.into()]
        ),
        BAD
    );
    assert_eq!(
        t.call(1, "proxy_add_header_map_value", &[0, k, kl, k, kl]),
        BAD
    );
    assert_eq!(
        t.call(1, "proxy_get_header_map_size", &[0, OUT.into()]),
        BAD
    );
    assert_eq!(
        t.call(
            1,
            "proxy_get_header_map_pairs",
            &[8, OUT.into(), OUT2.into()]
        ),
        BAD
    );

    let ctx = t.paused_stream(&[(":path", "/"), ("X-A", "1")]);
    assert_eq!(
        t.call(
            ctx,
            "proxy_get_header_map_value",
            &[0, k, kl, OUT.into(), OUT2.into()]
        ),
        OK
    );
    assert_eq!(t.returned().unwrap(), b"1");
    let (m, ml) = t.put(16, b"x-missing");
    assert_eq!(
        t.call(
            ctx,
            "proxy_get_header_map_value",
            &[0, m, ml, OUT.into(), OUT2.into()]
        ),
        NOT_FOUND
    );
    let (upper, ul) = t.put(32, b"X-B");
    let (v, vl) = t.put(48, b"two");
    assert_eq!(
        t.call(ctx, "proxy_add_header_map_value", &[0, upper, ul, v, vl]),
        OK
    );
    assert_eq!(
        t.call(ctx, "proxy_replace_header_map_value", &[0, k, kl, v, vl]),
        OK
    );
    assert_eq!(
        t.call(
            ctx,
            "proxy_get_header_map_pairs",
            &[0, OUT.into(), OUT2.into()]
        ),
        OK
    );
    assert_eq!(
        t.returned().unwrap(),
        serialize(&[(":path", "/"), ("x-a", "two"), ("x-b", "two")])
    );
    assert_eq!(
        t.call(ctx, "proxy_get_header_map_size", &[0, OUT.into()]),
        OK
    );
    assert_eq!(t.u32_at(OUT), (5 + 1 + 3 + 3 + 3 + 3) as u32);
    assert_eq!(
        t.call(ctx, "proxy_remove_header_map_value", &[0, k, kl]),
        OK
    );
    // Response headers do not exist yet: writes BAD_ARGUMENT, pairs empty.
    assert_eq!(
        t.call(ctx, "proxy_add_header_map_value", &[2, k, kl, v, vl]),
        BAD
    );
    assert_eq!(
        t.call(
            ctx,
            "proxy_get_header_map_pairs",
            &[2, OUT.into(), OUT2.into()]
        ),
        OK
    );
    assert_eq!(t.returned(), None);
    // http-call response maps are read-only.
    assert_eq!(
        t.call(ctx, "proxy_add_header_map_value", &[6, k, kl, v, vl]),
        BAD
    );
    // set_pairs replaces everything; malformed input clears the map (Envoy's toPairs).
    let (p, pl) = t.put(64, &serialize(&[(":path", "/b"), ("Y", "z")]));
    assert_eq!(t.call(ctx, "proxy_set_header_map_pairs", &[0, p, pl]), OK);
    let s = t
        .host
        .stream(ballast_mock_host::StreamId {
            worker: 0,
            context_id: ctx,
        })
        .unwrap();
    assert_eq!(
        s.request_headers_now(),
        vec![(":path".into(), "/b".into()), ("y".into(), "z".into())]
    );
    // Bad pointers.
    assert_eq!(
        t.call(
            ctx,
            "proxy_get_header_map_value",
            &[0, 1 << 30, 4, OUT.into(), OUT2.into()]
        ),
        INVALID
    );
}

#[test]
fn continue_withdraws_the_request_maps() {
    let mut t = T::new();
    let ctx = t.paused_stream(&[(":path", "/")]);
    assert_eq!(t.call(ctx, "proxy_continue_stream", &[0]), OK);
    let (k, kl) = t.put(0, b":path");
    assert_eq!(
        t.call(
            ctx,
            "proxy_get_header_map_value",
            &[0, k, kl, OUT.into(), OUT2.into()]
        ),
        BAD
    );
    assert_eq!(t.call(ctx, "proxy_continue_stream", &[4]), BAD);
    assert_eq!(t.call(ctx, "proxy_continue_stream", &[3]), UNIMPLEMENTED);
    assert_eq!(t.call(ctx, "proxy_close_stream", &[9]), BAD);
}

#[test]
fn buffers_follow_envoy_rules() {
    let mut t = T::new();
    assert_eq!(
        t.call(
            1,
            "proxy_get_buffer_bytes",
            &[6, 0, 100, OUT.into(), OUT2.into()]
        ),
        OK
    );
    assert_eq!(t.returned().unwrap(), b"vmconf");
    assert_eq!(
        t.call(
            1,
            "proxy_get_buffer_bytes",
            &[6, 2, 2, OUT.into(), OUT2.into()]
        ),
        OK
    );
    assert_eq!(t.returned().unwrap(), b"co");
    assert_eq!(
        t.call(
            1,
            "proxy_get_buffer_bytes",
            &[6, 100, 2, OUT.into(), OUT2.into()]
        ),
        OK
    );
    assert_eq!(t.returned(), None);
    assert_eq!(
        t.call(
            1,
            "proxy_get_buffer_bytes",
            &[7, 0, 10, OUT.into(), OUT2.into()]
        ),
        NOT_FOUND,
        "plugin config only during on_configure"
    );
    assert_eq!(
        t.call(
            1,
            "proxy_get_buffer_bytes",
            &[4, 0, 10, OUT.into(), OUT2.into()]
        ),
        NOT_FOUND,
        "no http call response"
    );
    assert_eq!(
        t.call(
            1,
            "proxy_get_buffer_bytes",
            &[9, 0, 10, OUT.into(), OUT2.into()]
        ),
        BAD
    );
    assert_eq!(
        t.call(
            1,
            "proxy_get_buffer_bytes",
            &[0, 0, 10, OUT.into(), OUT2.into()]
        ),
        OK,
        "no body: empty"
    );
    assert_eq!(t.returned(), None);
    let (d, dl) = t.put(0, b"xx");
    assert_eq!(
        t.call(1, "proxy_set_buffer_bytes", &[6, 0, 0, d, dl]),
        BAD,
        "read-only"
    );
    assert_eq!(
        t.call(1, "proxy_set_buffer_bytes", &[0, 0, 0, d, dl]),
        BAD,
        "no live body"
    );
    assert_eq!(
        t.call(1, "proxy_get_buffer_status", &[6, OUT.into(), OUT2.into()]),
        OK
    );
    assert_eq!(t.u32_at(OUT), 6);

    // A live body (paused in on_request_body): prepend, append, replace, middle is BAD.
    let mut s = t.host.http_stream(0).unwrap();
    s.request_headers(&[(":path", "/")], false).unwrap();
    let id = s.id();
    t.host.call_raw(0, 1, "set_action", &[Val::I32(1)]).unwrap();
    // headers are paused; continue them so the body is delivered and paused (buffered)
    assert_eq!(t.call(id.context_id, "proxy_continue_stream", &[0]), OK);
    t.host
        .stream(id)
        .unwrap()
        .request_body(b"body", false)
        .unwrap();
    let ctx = id.context_id;
    let (a, al) = t.put(16, b"<");
    assert_eq!(t.call(ctx, "proxy_set_buffer_bytes", &[0, 0, 0, a, al]), OK);
    let (z, zl) = t.put(24, b">");
    assert_eq!(t.call(ctx, "proxy_set_buffer_bytes", &[0, 5, 0, z, zl]), OK);
    assert_eq!(
        t.call(ctx, "proxy_set_buffer_bytes", &[0, 2, 1, z, zl]),
        BAD
    );
    assert_eq!(
        t.call(
            ctx,
            "proxy_get_buffer_bytes",
            &[0, 0, 100, OUT.into(), OUT2.into()]
        ),
        OK
    );
    assert_eq!(t.returned().unwrap(), b"<body>");
    let (r, rl) = t.put(32, b"new");
    assert_eq!(t.call(ctx, "proxy_set_buffer_bytes", &[0, 0, 6, r, rl]), OK);
    assert_eq!(
        t.call(
            ctx,
            "proxy_get_buffer_bytes",
            &[0, 0, 100, OUT.into(), OUT2.into()]
        ),
        OK
    );
    assert_eq!(t.returned().unwrap(), b"new");
}

#[test]
fn properties_shared_data_and_queues() {
    let mut t = T::with(
        Host::builder(&module())
            .vm_id("vm")
            .root_id("root")
            .property("xds.route_name", "r"),
    );
    let (p, pl) = t.put(0, b"plugin_root_id");
    assert_eq!(
        t.call(1, "proxy_get_property", &[p, pl, OUT.into(), OUT2.into()]),
        OK
    );
    assert_eq!(t.returned().unwrap(), b"root");
    let (x, xl) = t.put(32, b"xds\0route_name");
    assert_eq!(
        t.call(1, "proxy_get_property", &[x, xl, OUT.into(), OUT2.into()]),
        NOT_FOUND,
        "stream attribute in root"
    );
    assert_eq!(
        t.call(1, "proxy_set_property", &[p, pl, p, pl]),
        NOT_FOUND,
        "no stream info in root"
    );
    let ctx = t.paused_stream(&[(":path", "/")]);
    assert_eq!(
        t.call(ctx, "proxy_get_property", &[x, xl, OUT.into(), OUT2.into()]),
        OK
    );
    assert_eq!(t.returned().unwrap(), b"r");
    let (f, fl) = t.put(64, b"my_state");
    assert_eq!(t.call(ctx, "proxy_set_property", &[f, fl, p, pl]), OK);
    assert_eq!(
        t.call(ctx, "proxy_get_property", &[f, fl, OUT.into(), OUT2.into()]),
        OK
    );
    assert_eq!(t.returned().unwrap(), b"plugin_root_id");

    // Shared data with CAS.
    let (k, kl) = t.put(96, b"key");
    let (v, vl) = t.put(112, b"v1");
    assert_eq!(
        t.call(
            1,
            "proxy_get_shared_data",
            &[k, kl, OUT.into(), OUT2.into(), OUT64.into()]
        ),
        NOT_FOUND
    );
    assert_eq!(t.call(1, "proxy_set_shared_data", &[k, kl, v, vl, 0]), OK);
    assert_eq!(
        t.call(
            1,
            "proxy_get_shared_data",
            &[k, kl, OUT.into(), OUT2.into(), OUT64.into()]
        ),
        OK
    );
    assert_eq!(t.returned().unwrap(), b"v1");
    let cas = t.u32_at(OUT64);
    assert_ne!(cas, 0);
    assert_eq!(
        t.call(
            1,
            "proxy_set_shared_data",
            &[k, kl, v, vl, i64::from(cas) + 1]
        ),
        CAS
    );
    assert_eq!(
        t.call(1, "proxy_set_shared_data", &[k, kl, v, vl, i64::from(cas)]),
        OK
    );
    assert_eq!(
        t.call(1, "proxy_set_shared_data", &[k, kl, v, vl, i64::from(cas)]),
        CAS,
        "cas changed"
    );

    // Queues.
    let (q, ql) = t.put(128, b"q");
    let (e, _) = t.put(140, b"");
    assert_eq!(
        t.call(1, "proxy_resolve_shared_queue", &[e, 0, q, ql, OUT.into()]),
        NOT_FOUND
    );
    assert_eq!(
        t.call(
            1,
            "proxy_dequeue_shared_queue",
            &[99, OUT.into(), OUT2.into()]
        ),
        NOT_FOUND
    );
    assert_eq!(
        t.call(1, "proxy_enqueue_shared_queue", &[99, v, vl]),
        NOT_FOUND
    );
    assert_eq!(
        t.call(1, "proxy_register_shared_queue", &[q, ql, OUT64.into()]),
        OK
    );
    let token = t.u32_at(OUT64);
    assert_eq!(
        t.call(1, "proxy_resolve_shared_queue", &[e, 0, q, ql, OUT.into()]),
        OK
    );
    assert_eq!(t.u32_at(OUT), token);
    assert_eq!(
        t.call(
            1,
            "proxy_dequeue_shared_queue",
            &[token.into(), OUT.into(), OUT2.into()]
        ),
        EMPTY
    );
    assert_eq!(
        t.call(1, "proxy_enqueue_shared_queue", &[token.into(), v, vl]),
        OK
    );
    assert_eq!(
        t.call(
            1,
            "proxy_dequeue_shared_queue",
            &[token.into(), OUT.into(), OUT2.into()]
        ),
        OK
    );
    assert_eq!(t.returned().unwrap(), b"v1");
}

#[test]
fn metrics_ids_and_codes() {
    let mut t = T::new();
    let (n, nl) = t.put(0, b"m");
    assert_eq!(
        t.call(1, "proxy_define_metric", &[3, n, nl, OUT.into()]),
        BAD
    );
    assert_eq!(
        t.call(1, "proxy_define_metric", &[0, n, nl, OUT.into()]),
        OK
    );
    let counter = t.u32_at(OUT);
    assert_eq!(
        t.call(1, "proxy_define_metric", &[1, n, nl, OUT.into()]),
        OK
    );
    let gauge = t.u32_at(OUT);
    assert_eq!(
        t.call(1, "proxy_define_metric", &[2, n, nl, OUT.into()]),
        OK
    );
    let histogram = t.u32_at(OUT);
    assert_eq!((counter, gauge, histogram), (4, 5, 6), "Envoy's id scheme");
    assert_eq!(
        t.call(1, "proxy_increment_metric", &[counter.into(), 0]),
        BAD
    );
    assert_eq!(
        t.call(1, "proxy_increment_metric", &[counter.into(), 3]),
        OK
    );
    assert_eq!(
        t.call(1, "proxy_record_metric", &[counter.into(), 2]),
        OK,
        "record adds to a counter"
    );
    assert_eq!(t.call(1, "proxy_increment_metric", &[gauge.into(), 5]), OK);
    assert_eq!(t.call(1, "proxy_increment_metric", &[gauge.into(), -2]), OK);
    assert_eq!(
        t.call(1, "proxy_increment_metric", &[histogram.into(), 1]),
        BAD
    );
    assert_eq!(
        t.call(1, "proxy_record_metric", &[histogram.into(), 42]),
        OK
    );
    assert_eq!(
        t.call(1, "proxy_get_metric", &[histogram.into(), OUT64.into()]),
        BAD
    );
    assert_eq!(
        t.call(1, "proxy_get_metric", &[400, OUT64.into()]),
        NOT_FOUND
    );
    assert_eq!(t.call(1, "proxy_record_metric", &[400, 1]), NOT_FOUND);
    assert_eq!(
        t.call(1, "proxy_get_metric", &[counter.into(), OUT64.into()]),
        OK
    );
    assert_eq!(t.u64_at(OUT64), 5);
    assert_eq!(
        t.call(1, "proxy_get_metric", &[gauge.into(), OUT64.into()]),
        OK
    );
    assert_eq!(t.u64_at(OUT64), 3);
    assert_eq!(t.host.counter("m"), Some(5));
    assert_eq!(t.host.gauge("m"), Some(3));
    assert_eq!(t.host.histogram("m").unwrap().samples, vec![42]);
}

#[test]
fn general_calls_and_callouts() {
    let mut t = T::with(Host::builder(&module()).clusters(["known"]));
    let (m, ml) = t.put(0, b"hello");
    assert_eq!(t.call(1, "proxy_log", &[6, m, ml]), BAD);
    assert_eq!(t.call(1, "proxy_log", &[2, m, ml]), OK);
    assert!(t.host.logged("hello"));
    assert_eq!(t.call(1, "proxy_get_log_level", &[OUT.into()]), OK);
    assert_eq!(t.call(1, "proxy_set_effective_context", &[77]), BAD);
    assert_eq!(t.call(1, "proxy_set_effective_context", &[1]), OK);
    assert_eq!(t.call(1, "proxy_done", &[]), NOT_FOUND);
    assert_eq!(
        t.call(
            1,
            "proxy_call_foreign_function",
            &[m, ml, m, ml, OUT.into(), OUT2.into()]
        ),
        NOT_FOUND
    );
    t.host.advance(std::time::Duration::from_millis(7)).unwrap();
    assert_eq!(
        t.call(1, "proxy_get_current_time_nanoseconds", &[OUT64.into()]),
        OK
    );
    assert_eq!(t.u64_at(OUT64), 1_735_689_600_007_000_000);
    assert_eq!(
        t.call(
            1,
            "proxy_get_status",
            &[OUT64.into(), OUT.into(), OUT2.into()]
        ),
        OK
    );
    assert_eq!(t.returned(), None);

    let (u, ul) = t.put(16, b"known");
    let (x, xl) = t.put(32, b"unknown");
    let good = serialize(&[(":method", "GET"), (":path", "/"), (":authority", "a")]);
    let (h, hl) = t.put(64, &good);
    let (hb, hbl) = t.put(256, &serialize(&[(":method", "GET"), (":path", "/")]));
    let (e, _) = t.put(512, b"");
    let call = |t: &mut T, up: (i64, i64), hd: (i64, i64), timeout: i64| {
        t.call(
            1,
            "proxy_http_call",
            &[up.0, up.1, hd.0, hd.1, e, 0, e, 0, timeout, OUT.into()],
        )
    };
    assert_eq!(call(&mut t, (x, xl), (h, hl), 100), BAD, "unknown cluster");
    assert_eq!(call(&mut t, (u, ul), (hb, hbl), 100), BAD, "no :authority");
    assert_eq!(call(&mut t, (u, ul), (h, hl), -1), BAD, "negative timeout");
    assert_eq!(call(&mut t, (u, ul), (h, hl), 100), OK);
    assert_eq!(t.u32_at(OUT), 4);
    assert_eq!(t.host.http_calls().len(), 1);
    assert_eq!(
        t.call(
            1,
            "proxy_grpc_call",
            &[x, xl, e, 0, e, 0, e, 0, e, 0, 100, OUT.into()]
        ),
        PARSE,
        "gRPC to an unknown cluster"
    );
    assert_eq!(
        t.call(
            1,
            "proxy_grpc_call",
            &[u, ul, e, 0, e, 0, e, 0, e, 0, 100, OUT.into()]
        ),
        OK
    );
    assert_eq!(t.u32_at(OUT), 5);
    assert_eq!(t.call(1, "proxy_grpc_cancel", &[5]), OK);
    assert_eq!(t.call(1, "proxy_grpc_cancel", &[5]), NOT_FOUND);

    // Local response from a stream: OK, stream ends after the call.
    let ctx = t.paused_stream(&[(":path", "/")]);
    let (d, dl) = t.put(600, b"too many");
    assert_eq!(
        t.call(
            ctx,
            "proxy_send_local_response",
            &[429, d, dl, m, ml, e, 0, -1]
        ),
        OK
    );
    let s = t
        .host
        .stream(ballast_mock_host::StreamId {
            worker: 0,
            context_id: ctx,
        })
        .unwrap();
    let reply = s.local_response().unwrap();
    assert_eq!(
        (
            reply.status_code,
            reply.details.as_str(),
            reply.body.as_slice()
        ),
        (429, "too_many", &b"hello"[..])
    );
}

#[test]
fn wasi_subset() {
    let mut t = T::new();
    // One iovec {ptr, len} at DATA pointing at "out\n".
    let (s, sl) = t.put(64, b"out\n");
    let mut iov = (s as u32).to_le_bytes().to_vec();
    iov.extend((sl as u32).to_le_bytes());
    let (iovp, _) = t.put(0, &iov);
    assert_eq!(t.call(1, "fd_write", &[3, iovp, 1, OUT.into()]), 8, "EBADF");
    assert_eq!(t.call(1, "fd_write", &[2, iovp, 1, OUT.into()]), 0);
    assert_eq!(t.u32_at(OUT), 4);
    let line = t.host.logs().last().unwrap().clone();
    assert_eq!(
        (line.level, line.message.as_str()),
        (ballast_mock_host::LogLevel::Error, "out")
    );
    assert_eq!(
        t.call(1, "clock_time_get", &[2, 0, OUT64.into()]),
        58,
        "ENOTSUP"
    );
    assert_eq!(t.call(1, "clock_time_get", &[0, 0, OUT64.into()]), 0);
    assert_eq!(t.u64_at(OUT64), 1_735_689_600_000_000_000);
}
