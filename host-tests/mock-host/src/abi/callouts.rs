//! HTTP and gRPC callouts, captured for the test to answer.
//!
//! `proxy_http_call` checks what Envoy checks: a timeout that is negative as an int is
//! BAD_ARGUMENT, an unknown cluster is BAD_ARGUMENT, headers without `:path`, `:method` or
//! `:authority` are BAD_ARGUMENT; Envoy adds `content-length` for a non-empty body. Tokens
//! are per VM: http calls 4, 8, 12..., gRPC calls 5, 9..., gRPC streams 6, 10... The
//! response always goes to the root context (`proxy_on_http_call_response`), as in Envoy.
//! gRPC to an unknown cluster is PARSE_FAILURE (Envoy first tries to parse the name as a
//! GrpcService proto).

use wasmtime::Linker;

use super::mem::{put_u32, slice, split, HostResult, C, INVALID_MEMORY, OK};
use crate::pairs::parse_pairs;
use crate::types::{CalloutId, GrpcCall, HttpCall, Status};
use crate::worker::WorkerState;

const BAD_ARGUMENT: i32 = Status::BadArgument.code();
const NOT_FOUND: i32 = Status::NotFound.code();
const PARSE_FAILURE: i32 = Status::ParseFailure.code();

fn strings(pairs: Vec<(&[u8], &[u8])>) -> Vec<(String, String)> {
    pairs
        .into_iter()
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(k).to_ascii_lowercase(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect()
}

fn cluster_known(st: &WorkerState, name: &str) -> bool {
    st.cfg
        .clusters
        .as_ref()
        .is_none_or(|list| list.iter().any(|c| c == name))
}

fn next_token(st: &mut WorkerState, slot: usize) -> u32 {
    let token = st.next_callout_id[slot].wrapping_add(4);
    st.next_callout_id[slot] = token;
    token
}

#[allow(clippy::too_many_arguments)]
fn http_call(
    mut c: C<'_>,
    uptr: i32,
    ulen: i32,
    hptr: i32,
    hlen: i32,
    bptr: i32,
    blen: i32,
    tptr: i32,
    tlen: i32,
    timeout: i32,
    token_ptr: i32,
) -> HostResult {
    let Some((mem, st)) = split(&mut c) else {
        return Ok(INVALID_MEMORY);
    };
    let (Some(upstream), Some(body), Some(headers), Some(trailers)) = (
        slice(mem, uptr, ulen),
        slice(mem, bptr, blen),
        slice(mem, hptr, hlen),
        slice(mem, tptr, tlen),
    ) else {
        return Ok(INVALID_MEMORY);
    };
    let upstream = String::from_utf8_lossy(upstream).into_owned();
    let mut headers = strings(parse_pairs(headers));
    let trailers = strings(parse_pairs(trailers));
    let body = body.to_vec();
    if !put_u32(mem, token_ptr, 0) {
        return Ok(INVALID_MEMORY);
    }
    if timeout < 0 || !cluster_known(st, &upstream) {
        return Ok(BAD_ARGUMENT);
    }
    let has = |name: &str| headers.iter().any(|(k, _)| k == name);
    if !has(":path") || !has(":method") || !has(":authority") {
        return Ok(BAD_ARGUMENT);
    }
    if !body.is_empty() {
        headers.retain(|(k, _)| k != "content-length");
        headers.push(("content-length".to_string(), body.len().to_string()));
    }
    let token = next_token(st, 0);
    let context_id = st.ctx();
    let worker = st.index;
    st.shared.http_calls.push(HttpCall {
        id: CalloutId { worker, token },
        upstream,
        headers,
        body,
        trailers,
        timeout_ms: timeout as u32,
        context_id,
    });
    if !put_u32(mem, token_ptr, token) {
        return Ok(INVALID_MEMORY);
    }
    Ok(OK)
}

#[allow(clippy::too_many_arguments)]
fn grpc_open(
    c: &mut C<'_>,
    ranges: [(i32, i32); 5],
    timeout: i32,
    token_ptr: i32,
    streaming: bool,
) -> HostResult {
    let Some((mem, st)) = split(c) else {
        return Ok(INVALID_MEMORY);
    };
    let mut parts: Vec<&[u8]> = Vec::with_capacity(5);
    for (ptr, len) in ranges {
        match slice(mem, ptr, len) {
            Some(s) => parts.push(s),
            None => return Ok(INVALID_MEMORY),
        }
    }
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let upstream = text(parts[0]);
    if !cluster_known(st, &upstream) {
        return Ok(PARSE_FAILURE);
    }
    let call = GrpcCall {
        id: CalloutId {
            worker: st.index,
            token: 0,
        },
        upstream,
        service: text(parts[1]),
        method: text(parts[2]),
        initial_metadata: strings(parse_pairs(parts[3])),
        messages: if streaming {
            Vec::new()
        } else {
            vec![parts[4].to_vec()]
        },
        timeout_ms: timeout as u32,
        streaming,
        closed: false,
        cancelled: false,
    };
    let token = next_token(st, if streaming { 2 } else { 1 });
    let mut call = call;
    call.id.token = token;
    st.shared.grpc_calls.push(call);
    if !put_u32(mem, token_ptr, token) {
        return Ok(INVALID_MEMORY);
    }
    Ok(OK)
}

#[allow(clippy::too_many_arguments)]
fn grpc_call(
    mut c: C<'_>,
    a: i32,
    b: i32,
    d: i32,
    e: i32,
    f: i32,
    g: i32,
    h: i32,
    i: i32,
    j: i32,
    k: i32,
    timeout: i32,
    token_ptr: i32,
) -> HostResult {
    grpc_open(
        &mut c,
        [(a, b), (d, e), (f, g), (h, i), (j, k)],
        timeout,
        token_ptr,
        false,
    )
}

#[allow(clippy::too_many_arguments)]
fn grpc_stream(
    mut c: C<'_>,
    a: i32,
    b: i32,
    d: i32,
    e: i32,
    f: i32,
    g: i32,
    h: i32,
    i: i32,
    token_ptr: i32,
) -> HostResult {
    grpc_open(
        &mut c,
        [(a, b), (d, e), (f, g), (h, i), (0, 0)],
        0,
        token_ptr,
        true,
    )
}

fn find_grpc(st: &mut WorkerState, token: i32) -> Option<&mut GrpcCall> {
    let worker = st.index;
    st.shared
        .grpc_calls
        .iter_mut()
        .find(|g| g.id.worker == worker && g.id.token == token as u32 && !g.closed && !g.cancelled)
}

fn grpc_send(mut c: C<'_>, token: i32, ptr: i32, len: i32, _end: i32) -> HostResult {
    let Some((mem, st)) = split(&mut c) else {
        return Ok(INVALID_MEMORY);
    };
    let Some(message) = slice(mem, ptr, len) else {
        return Ok(INVALID_MEMORY);
    };
    match find_grpc(st, token) {
        Some(call) if call.streaming => {
            call.messages.push(message.to_vec());
            Ok(OK)
        }
        Some(_) => Ok(BAD_ARGUMENT),
        None => Ok(NOT_FOUND),
    }
}

fn grpc_cancel(mut c: C<'_>, token: i32) -> HostResult {
    Ok(match find_grpc(c.data_mut(), token) {
        Some(call) => {
            call.cancelled = true;
            OK
        }
        None => NOT_FOUND,
    })
}

fn grpc_close(mut c: C<'_>, token: i32) -> HostResult {
    Ok(match find_grpc(c.data_mut(), token) {
        Some(call) => {
            call.closed = true;
            OK
        }
        None => NOT_FOUND,
    })
}

pub(crate) fn register(l: &mut Linker<WorkerState>) -> wasmtime::Result<()> {
    l.func_wrap("env", "proxy_http_call", http_call)?;
    l.func_wrap("env", "proxy_grpc_call", grpc_call)?;
    l.func_wrap("env", "proxy_grpc_stream", grpc_stream)?;
    l.func_wrap("env", "proxy_grpc_send", grpc_send)?;
    l.func_wrap("env", "proxy_grpc_cancel", grpc_cancel)?;
    l.func_wrap("env", "proxy_grpc_close", grpc_close)?;
    Ok(())
}
