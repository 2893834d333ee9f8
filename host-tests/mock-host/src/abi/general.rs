//! Logging, time, timers, context control and foreign functions.
//!
//! Stream control follows Envoy: `proxy_continue_stream` / `proxy_close_stream` /
//! `proxy_send_local_response` take effect after the VM call returns (Envoy defers them with
//! `addAfterVmCallAction`), a local response also forces the current callback's result to
//! "stop", and continue immediately withdraws the plugin's access to the request headers,
//! body and trailers (Envoy nulls those pointers for request and response alike).
//! `proxy_set_effective_context` lasts until the VM call returns. Where ngx_wasm_module
//! differs (`crate::profile`), the difference is applied here.

use wasmtime::Linker;

use super::mem::{
    put_u32, put_u64, return_scratch, slice, split, HostResult, C, INVALID_MEMORY, OK,
};
use crate::pairs::parse_pairs;
use crate::state::Side;
use crate::types::{LocalResponse, LogLevel, Status, StreamType};
use crate::worker::{Pending, WorkerState};

const BAD_ARGUMENT: i32 = Status::BadArgument.code();
const NOT_FOUND: i32 = Status::NotFound.code();

fn log(mut c: C<'_>, level: i32, ptr: i32, len: i32) -> HostResult {
    if let Some(status) = super::injected(&mut c, "proxy_log") {
        return Ok(status);
    }
    let Some(level) = LogLevel::from_raw(level as u32) else {
        return Ok(BAD_ARGUMENT);
    };
    let Some((mem, st)) = split(&mut c) else {
        return Ok(INVALID_MEMORY);
    };
    let Some(msg) = slice(mem, ptr, len) else {
        return Ok(INVALID_MEMORY);
    };
    let ctx = st.ctx();
    let worker = st.index;
    st.shared.log(worker, ctx, level, msg);
    Ok(OK)
}

fn get_log_level(mut c: C<'_>, ptr: i32) -> HostResult {
    let Some((mem, st)) = split(&mut c) else {
        return Ok(INVALID_MEMORY);
    };
    Ok(if put_u32(mem, ptr, st.cfg.log_level as u32) {
        OK
    } else {
        INVALID_MEMORY
    })
}

fn current_time(mut c: C<'_>, ptr: i32) -> HostResult {
    if let Some(status) = super::injected(&mut c, "proxy_get_current_time_nanoseconds") {
        return Ok(status);
    }
    let Some((mem, st)) = split(&mut c) else {
        return Ok(INVALID_MEMORY);
    };
    Ok(if put_u64(mem, ptr, st.shared.clock.realtime_ns()) {
        OK
    } else {
        INVALID_MEMORY
    })
}

fn set_tick_period(mut c: C<'_>, period_ms: i32) -> HostResult {
    if let Some(status) = super::injected(&mut c, "proxy_set_tick_period_milliseconds") {
        return Ok(status);
    }
    let st = c.data_mut();
    let period = period_ms as u32;
    // The timer belongs to the calling context's root (Envoy keys timers by root context).
    let root = st.root_of(st.current);
    if st.cfg.profile.tick_period_is_set_once() {
        if !st.is_root(st.current) {
            return Err(trap("can only set tick_period in root context"));
        }
        if period > 0 && st.tick_period_of(root) > 0 {
            return Err(trap("tick_period already set"));
        }
    }
    let next = (period > 0).then(|| {
        st.shared
            .clock
            .monotonic_ns()
            .saturating_add(u64::from(period) * 1_000_000)
    });
    st.set_timer(root, period, next);
    Ok(OK)
}

/// A host trap with ngx_wasm_module's message (it traps where Envoy returns a status).
pub(super) fn trap(message: &str) -> wasmtime::Error {
    wasmtime::Error::msg(format!("host trap (ngx_wasm_module profile): {message}"))
}

/// The stream a stream-control call acts on, and its side: Envoy's effective (or current)
/// context and the side asked for; ngx_wasm_module's current call's request, whatever was
/// asked, and a trap in a root context, where it has no request (`rctx` is null there).
fn controlled_stream(
    st: &WorkerState,
    side: Side,
    call: &str,
) -> Result<(u32, Side), wasmtime::Error> {
    if st.cfg.profile.switches_context() {
        return Ok((st.ctx(), side));
    }
    if st.is_root(st.current) {
        return Err(trap(&format!(
            "{call} from a root context (ngx_wasm_module has no request there)"
        )));
    }
    Ok((st.current, Side::Request))
}

fn continue_stream_impl(st: &mut WorkerState, stream: StreamType) -> HostResult {
    let side = match stream {
        StreamType::Request => Side::Request,
        StreamType::Response => Side::Response,
        StreamType::Downstream => return Ok(OK),
        StreamType::Upstream => return Ok(Status::Unimplemented.code()),
    };
    let (ctx, side) = controlled_stream(st, side, "proxy_continue_stream")?;
    if let Some(s) = st.streams.get_mut(&ctx) {
        s.request.headers_live = false;
        s.request.body_live = false;
        s.request.trailers_live = false;
        st.pending.push(Pending::Continue {
            context_id: ctx,
            side,
        });
    }
    Ok(OK)
}

fn continue_stream(mut c: C<'_>, stream: i32) -> HostResult {
    if let Some(status) = super::injected(&mut c, "proxy_continue_stream") {
        return Ok(status);
    }
    let Some(stream) = StreamType::from_raw(stream as u32) else {
        return Ok(BAD_ARGUMENT);
    };
    continue_stream_impl(c.data_mut(), stream)
}

fn close_stream(mut c: C<'_>, stream: i32) -> HostResult {
    let Some(stream) = StreamType::from_raw(stream as u32) else {
        return Ok(BAD_ARGUMENT);
    };
    let st = c.data_mut();
    let ctx = st.ctx();
    if matches!(stream, StreamType::Request | StreamType::Response) && st.streams.contains_key(&ctx)
    {
        st.pending.push(Pending::Close {
            context_id: ctx,
            stream,
        });
    }
    Ok(OK)
}

#[allow(clippy::too_many_arguments)]
fn send_local_response(
    mut c: C<'_>,
    code: i32,
    dptr: i32,
    dlen: i32,
    bptr: i32,
    blen: i32,
    hptr: i32,
    hlen: i32,
    grpc: i32,
) -> HostResult {
    if let Some(status) = super::injected(&mut c, "proxy_send_local_response") {
        return Ok(status);
    }
    let Some((mem, st)) = split(&mut c) else {
        return Ok(INVALID_MEMORY);
    };
    let (Some(details), Some(body), Some(headers)) = (
        slice(mem, dptr, dlen),
        slice(mem, bptr, blen),
        slice(mem, hptr, hlen),
    ) else {
        return Ok(INVALID_MEMORY);
    };
    let (ctx, _) = controlled_stream(st, Side::Request, "proxy_send_local_response")?;
    if st.cfg.profile.request_calls_trap_outside_requests() && replied(st, ctx) {
        return Err(trap("local response already stashed"));
    }
    if st.streams.contains_key(&ctx) {
        let details: String = String::from_utf8_lossy(details)
            .chars()
            .map(|ch| if ch.is_whitespace() { '_' } else { ch })
            .collect();
        let reply = LocalResponse {
            status_code: code as u32,
            details,
            body: body.to_vec(),
            headers: parse_pairs(headers)
                .into_iter()
                .map(|(k, v)| {
                    (
                        String::from_utf8_lossy(k).to_ascii_lowercase(),
                        String::from_utf8_lossy(v).into_owned(),
                    )
                })
                .collect(),
            grpc_status: u32::try_from(grpc).ok().filter(|g| *g <= 16),
        };
        st.pending.push(Pending::LocalReply {
            context_id: ctx,
            reply,
        });
    }
    st.stop_iteration = true;
    Ok(OK)
}

/// Whether stream `ctx` was answered already (or an answer waits for the call to return).
fn replied(st: &WorkerState, ctx: u32) -> bool {
    let pending = st
        .pending
        .iter()
        .any(|p| matches!(p, Pending::LocalReply { context_id, .. } if *context_id == ctx));
    pending
        || st
            .streams
            .get(&ctx)
            .is_some_and(|s| s.local_response.is_some())
}

fn set_effective_context(mut c: C<'_>, id: i32) -> HostResult {
    if let Some(status) = super::injected(&mut c, "proxy_set_effective_context") {
        return Ok(status);
    }
    let st = c.data_mut();
    if !st.cfg.profile.switches_context() {
        // ngx_wasm_module: a no-op that returns OK, whatever the id.
        return Ok(OK);
    }
    let id = id as u32;
    if st.is_root(id) || st.streams.contains_key(&id) {
        st.effective = id;
        Ok(OK)
    } else {
        Ok(BAD_ARGUMENT)
    }
}

fn done(mut c: C<'_>) -> HostResult {
    let st = c.data_mut();
    let root = st.root_of(st.current);
    if st.take_pending_done(root) {
        st.pending.push(Pending::RootDone(root));
        Ok(OK)
    } else {
        Ok(NOT_FOUND)
    }
}

fn get_status(mut c: C<'_>, code_ptr: i32, ptr_ptr: i32, size_ptr: i32) -> HostResult {
    let Some((mem, st)) = split(&mut c) else {
        return Ok(INVALID_MEMORY);
    };
    if !put_u32(mem, code_ptr, st.status.0) {
        return Ok(INVALID_MEMORY);
    }
    let mut scratch = std::mem::take(&mut st.scratch);
    scratch.clear();
    scratch.extend_from_slice(&st.status.1);
    st.scratch = scratch;
    return_scratch(&mut c, ptr_ptr, size_ptr)
}

fn call_foreign(
    mut c: C<'_>,
    nptr: i32,
    nlen: i32,
    aptr: i32,
    alen: i32,
    rptr_ptr: i32,
    rsize_ptr: i32,
) -> HostResult {
    let Some((mem, st)) = split(&mut c) else {
        return Ok(INVALID_MEMORY);
    };
    let (Some(name), Some(args)) = (slice(mem, nptr, nlen), slice(mem, aptr, alen)) else {
        return Ok(INVALID_MEMORY);
    };
    let name = String::from_utf8_lossy(name);
    let Some(f) = st.shared.foreign.get_mut(name.as_ref()) else {
        return Ok(NOT_FOUND);
    };
    let (status, result) = match f(args) {
        Ok(result) => (OK, result),
        Err(status) => (status.code(), Vec::new()),
    };
    if rptr_ptr == 0 {
        return Ok(status);
    }
    st.scratch.clear();
    st.scratch.extend_from_slice(&result);
    let copied = return_scratch(&mut c, rptr_ptr, rsize_ptr)?;
    Ok(if copied == OK { status } else { copied })
}

pub(crate) fn register(l: &mut Linker<WorkerState>) -> wasmtime::Result<()> {
    l.func_wrap("env", "proxy_log", log)?;
    l.func_wrap("env", "proxy_get_log_level", get_log_level)?;
    l.func_wrap("env", "proxy_get_current_time_nanoseconds", current_time)?;
    l.func_wrap("env", "proxy_set_tick_period_milliseconds", set_tick_period)?;
    l.func_wrap("env", "proxy_continue_stream", continue_stream)?;
    l.func_wrap("env", "proxy_close_stream", close_stream)?;
    l.func_wrap(
        "env",
        "proxy_continue_request",
        |mut c: C<'_>| -> HostResult { continue_stream_impl(c.data_mut(), StreamType::Request) },
    )?;
    l.func_wrap(
        "env",
        "proxy_continue_response",
        |mut c: C<'_>| -> HostResult { continue_stream_impl(c.data_mut(), StreamType::Response) },
    )?;
    l.func_wrap("env", "proxy_send_local_response", send_local_response)?;
    l.func_wrap("env", "proxy_clear_route_cache", |_c: C<'_>| OK)?;
    l.func_wrap("env", "proxy_set_effective_context", set_effective_context)?;
    l.func_wrap("env", "proxy_done", done)?;
    l.func_wrap("env", "proxy_get_status", get_status)?;
    l.func_wrap("env", "proxy_call_foreign_function", call_foreign)?;
    Ok(())
}
