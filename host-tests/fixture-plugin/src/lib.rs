//! A fixture plugin for testing the mock host through the real proxy-wasm Rust SDK (0.2.5).
//!
//! Why: the mock host must answer exactly as Envoy does, and the SDK is the strictest judge
//! (it panics on unexpected status codes). This plugin makes the SDK exercise each host
//! function on request, driven by the request header `x-fixture-op`, and reports what it
//! saw in headers and logs so tests can assert on it.
//!
//! Plugin configuration (text): `tick_ms=N` arms a tick period, `reject` makes
//! `on_configure` return false. Ops:
//! - (none): add `x-fixture-seen` to the request;
//! - `pause`: pause; the root's `on_tick` resumes it (set_effective_context + resume); the
//!   request body is upper-cased when it arrives with end_of_stream;
//! - `wrap-body`: wraps the request body as `<body>` using prepend/append writes;
//! - `local-reply`: 429 with header `x-reason: fixture` and body `slow down`;
//! - `close`: resets the request;
//! - `http-call`: calls cluster `auth`; 200 resumes with `x-auth-status`, else 403;
//! - `metric`: counter/gauge/histogram updates, error codes reported in headers;
//! - `property`: reads the property named by `x-fixture-path` (dotted) into
//!   `x-fixture-property` (`x-fixture-format: i64` decodes 8-byte little-endian), and
//!   round-trips `proxy_set_property`;
//! - `shared-cas`: reads key `x-fixture-key` in the request phase, writes value+1 with the
//!   read cas in the response phase, result in response header `x-fixture-cas-result`;
//! - `queue`: enqueues `x-fixture-item` on `fixture_queue` (the root logs dequeued items);
//! - `time`: host time and WASI time into headers;
//! - `foreign`: calls the foreign function named by `x-fixture-fn`;
//! - `log-level`: reports `proxy_get_log_level`;
//! - `panic`: panics (the VM traps).
//!
//! Every response gets `x-fixture-resp: <op>`, and `on_log` logs the final `:status`.

use std::cell::RefCell;
use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType, Status};

thread_local! {
    static PAUSED: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
    static METRICS: RefCell<Option<Metrics>> = const { RefCell::new(None) };
}

#[derive(Clone, Copy)]
struct Metrics {
    requests: u32,
    active: u32,
    latency: u32,
}

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(FixtureRoot::default()) });
}}

#[derive(Default)]
struct FixtureRoot {
    queue: Option<u32>,
    ticks: u32,
}

impl Context for FixtureRoot {}

impl RootContext for FixtureRoot {
    fn on_vm_start(&mut self, _size: usize) -> bool {
        log(LogLevel::Info, "vm started");
        true
    }

    fn on_configure(&mut self, _size: usize) -> bool {
        let config = self
            .get_plugin_configuration()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        log(LogLevel::Info, &format!("configured: {config}"));
        for part in config.split(';') {
            if let Some(ms) = part.trim().strip_prefix("tick_ms=") {
                if let Ok(ms) = ms.parse::<u64>() {
                    let _ = hostcalls::set_tick_period(Duration::from_millis(ms));
                }
            }
        }
        let metrics = (|| -> Result<Metrics, Status> {
            Ok(Metrics {
                requests: hostcalls::define_metric(MetricType::Counter, "fixture_requests")?,
                active: hostcalls::define_metric(MetricType::Gauge, "fixture_active")?,
                latency: hostcalls::define_metric(MetricType::Histogram, "fixture_latency")?,
            })
        })();
        if let Ok(m) = metrics {
            METRICS.with(|cell| *cell.borrow_mut() = Some(m));
        }
        self.queue = hostcalls::register_shared_queue("fixture_queue").ok();
        !config.split(';').any(|p| p.trim() == "reject")
    }

    fn on_tick(&mut self) {
        self.ticks += 1;
        log(LogLevel::Debug, &format!("tick {}", self.ticks));
        let paused: Vec<u32> = PAUSED.with(|p| p.borrow_mut().drain(..).collect());
        for id in paused {
            match hostcalls::set_effective_context(id) {
                Ok(()) => {
                    let _ = hostcalls::resume_http_request();
                    log(LogLevel::Info, &format!("resumed {id}"));
                }
                Err(status) => log(LogLevel::Warn, &format!("cannot resume {id}: {status:?}")),
            }
        }
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        while let Ok(Some(item)) = hostcalls::dequeue_shared_queue(queue_id) {
            log(
                LogLevel::Info,
                &format!("dequeued: {}", String::from_utf8_lossy(&item)),
            );
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(FixtureHttp {
            id: context_id,
            op: String::new(),
            cas: None,
        }))
    }
}

struct FixtureHttp {
    id: u32,
    op: String,
    cas: Option<(u64, Option<u32>, String)>,
}

fn log(level: LogLevel, msg: &str) {
    let _ = hostcalls::log(level, msg);
}

fn as_ns(t: std::time::SystemTime) -> String {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos().to_string())
        .unwrap_or_default()
}

impl FixtureHttp {
    fn header(&self, name: &str) -> String {
        self.get_http_request_header(name).unwrap_or_default()
    }

    fn metric_op(&mut self) {
        let Some(m) = METRICS.with(|c| *c.borrow()) else {
            return;
        };
        let value = self.header("x-fixture-value").parse::<u64>().unwrap_or(0);
        let inc = hostcalls::increment_metric(m.requests, 1);
        let gauge = hostcalls::increment_metric(m.active, 1);
        let rec = hostcalls::record_metric(m.latency, value);
        let bad_inc = hostcalls::increment_metric(m.latency, 1);
        let zero_inc = hostcalls::increment_metric(m.requests, 0);
        let get_hist = hostcalls::get_metric(m.latency);
        let get_unknown = hostcalls::get_metric(m.requests + 400);
        let count = hostcalls::get_metric(m.requests);
        self.set_http_request_header(
            "x-fixture-metric",
            Some(&format!(
                "inc={inc:?};gauge={gauge:?};record={rec:?};inc_hist={bad_inc:?};inc_zero={zero_inc:?};get_hist={get_hist:?};get_unknown={get_unknown:?};count={count:?}"
            )),
        );
    }

    fn property_op(&mut self) {
        let path = self.header("x-fixture-path");
        let segments: Vec<&str> = path.split('.').collect();
        let value = match self.get_property(segments) {
            None => "<none>".to_string(),
            Some(bytes) if self.header("x-fixture-format") == "i64" => {
                let mut arr = [0u8; 8];
                if bytes.len() == 8 {
                    arr.copy_from_slice(&bytes);
                }
                i64::from_le_bytes(arr).to_string()
            }
            Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        };
        self.set_http_request_header("x-fixture-property", Some(&value));
        self.set_property(vec!["fixture_state"], Some(b"stored"));
        let back = self
            .get_property(vec!["fixture_state"])
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_else(|| "<none>".to_string());
        self.set_http_request_header("x-fixture-state", Some(&back));
    }

    fn shared_read(&mut self) {
        let key = self.header("x-fixture-key");
        let key = if key.is_empty() { "k".to_string() } else { key };
        let (value, cas) = match self.get_shared_data(&key) {
            (Some(v), cas) => (String::from_utf8_lossy(&v).parse::<u64>().unwrap_or(0), cas),
            (None, cas) => (0, cas),
        };
        self.cas = Some((value, cas, key));
    }

    fn shared_write(&mut self) {
        if let Some((value, cas, key)) = self.cas.take() {
            let next = (value + 1).to_string();
            let result = match self.set_shared_data(&key, Some(next.as_bytes()), cas) {
                Ok(()) => "ok".to_string(),
                Err(Status::CasMismatch) => "mismatch".to_string(),
                Err(other) => format!("{other:?}"),
            };
            self.set_http_response_header("x-fixture-cas-result", Some(&result));
            self.set_http_response_header("x-fixture-value", Some(&next));
        }
    }

    #[allow(clippy::panic)]
    fn panic_op(&self) -> ! {
        panic!("fixture panic requested");
    }
}

impl Context for FixtureHttp {
    fn on_http_call_response(
        &mut self,
        _token: u32,
        headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        if headers == 0 {
            // A failed call: Envoy provides no response maps (reading one is BAD_ARGUMENT,
            // which makes the SDK panic); the reason is in proxy_get_status.
            let status = hostcalls::get_grpc_status();
            log(LogLevel::Warn, &format!("http call failed: {status:?}"));
            self.send_http_response(503, vec![], Some(b"auth unavailable"));
            return;
        }
        let status = self.get_http_call_response_header(":status");
        let body = self
            .get_http_call_response_body(0, body_size)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        log(
            LogLevel::Info,
            &format!("http call response: {status:?} {body}"),
        );
        match status.as_deref() {
            Some("200") => {
                self.set_http_request_header("x-auth-status", Some("200"));
                self.resume_http_request();
            }
            other => {
                let other = other.unwrap_or("none").to_string();
                self.send_http_response(403, vec![("x-auth-status", &other)], Some(body.as_bytes()))
            }
        }
    }
}

impl HttpContext for FixtureHttp {
    fn on_http_request_headers(&mut self, _n: usize, _end: bool) -> Action {
        self.op = self.header("x-fixture-op");
        self.set_http_request_header("x-fixture-seen", Some(&self.id.to_string()));
        match self.op.as_str() {
            "pause" => {
                PAUSED.with(|p| p.borrow_mut().push(self.id));
                Action::Pause
            }
            "local-reply" => {
                self.send_http_response(429, vec![("x-reason", "fixture")], Some(b"slow down"));
                Action::Pause
            }
            "close" => {
                self.reset_http_request();
                Action::Pause
            }
            "http-call" => {
                let call = self.dispatch_http_call(
                    "auth",
                    vec![
                        (":method", "POST"),
                        (":path", "/check"),
                        (":authority", "auth.local"),
                    ],
                    Some(b"ping"),
                    vec![],
                    Duration::from_secs(5),
                );
                match call {
                    Ok(token) => {
                        log(LogLevel::Info, &format!("http call token {token}"));
                        Action::Pause
                    }
                    Err(status) => {
                        self.set_http_request_header(
                            "x-fixture-call-error",
                            Some(&format!("{status:?}")),
                        );
                        Action::Continue
                    }
                }
            }
            "metric" => {
                self.metric_op();
                Action::Continue
            }
            "property" => {
                self.property_op();
                Action::Continue
            }
            "shared-cas" => {
                self.shared_read();
                Action::Continue
            }
            "queue" => {
                let item = self.header("x-fixture-item");
                let result = match hostcalls::resolve_shared_queue("", "fixture_queue") {
                    Ok(Some(q)) => format!(
                        "{:?}",
                        hostcalls::enqueue_shared_queue(q, Some(item.as_bytes()))
                    ),
                    Ok(None) => "no queue".to_string(),
                    Err(s) => format!("{s:?}"),
                };
                self.set_http_request_header("x-fixture-enqueue", Some(&result));
                Action::Continue
            }
            "time" => {
                let host = self.get_current_time();
                let wasi = std::time::SystemTime::now();
                self.set_http_request_header("x-fixture-now-ns", Some(&as_ns(host)));
                self.set_http_request_header("x-fixture-wasi-ns", Some(&as_ns(wasi)));
                Action::Continue
            }
            "foreign" => {
                let name = self.header("x-fixture-fn");
                let result = match self.call_foreign_function(&name, Some(b"arg")) {
                    Ok(Some(bytes)) => format!("ok:{}", String::from_utf8_lossy(&bytes)),
                    Ok(None) => "ok:".to_string(),
                    Err(status) => format!("{status:?}"),
                };
                self.set_http_request_header("x-fixture-foreign", Some(&result));
                Action::Continue
            }
            "log-level" => {
                let level = hostcalls::get_log_level()
                    .map(|l| format!("{l:?}"))
                    .unwrap_or_default();
                self.set_http_request_header("x-fixture-log-level", Some(&level));
                Action::Continue
            }
            "panic" => self.panic_op(),
            _ => Action::Continue,
        }
    }

    fn on_http_request_body(&mut self, size: usize, end: bool) -> Action {
        match self.op.as_str() {
            "pause" if end => {
                if let Some(body) = self.get_http_request_body(0, size) {
                    let text = String::from_utf8_lossy(&body).into_owned();
                    log(LogLevel::Info, &format!("body seen: {text}"));
                    self.set_http_request_body(0, size, text.to_uppercase().as_bytes());
                }
                Action::Continue
            }
            "wrap-body" if !end => Action::Pause,
            "wrap-body" => {
                self.set_http_request_body(0, 0, b"<");
                let len = self
                    .get_http_request_body(0, usize::MAX)
                    .map_or(0, |b| b.len());
                self.set_http_request_body(len, 0, b">");
                Action::Continue
            }
            _ => Action::Continue,
        }
    }

    fn on_http_response_headers(&mut self, _n: usize, _end: bool) -> Action {
        let op = if self.op.is_empty() {
            "none".to_string()
        } else {
            self.op.clone()
        };
        self.set_http_response_header("x-fixture-resp", Some(&op));
        if self.op == "shared-cas" {
            self.shared_write();
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        let status = self.get_http_response_header(":status").unwrap_or_default();
        log(
            LogLevel::Info,
            &format!("log phase {}: status {status}", self.id),
        );
    }
}
