//! Serving one ordinary (non-admin) request: header overrides, the capacity slot, service
//! time, failure injection, and the JSON echo (or a gRPC-style answer with trailers).
//!
//! Per-request override headers:
//! - `x-demo-delay-ms: N` — service time of this request (replaces the configured service
//!   time and jitter; `extra_latency_ms` is still added).
//! - `x-demo-status: N` — answer with this status (200..=599) instead of drawing a failure.
//! - `x-demo-fail-ratio: 0.x` — failure ratio for this request.
//! - `x-demo-grpc-status: N` — for gRPC requests that fail, the `grpc-status` to send
//!   (default: mapped from the HTTP status, 14 UNAVAILABLE for 502/503/504/429).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, TRAILER};
use hyper::http::{request::Parts, HeaderMap};
use hyper::{Request, Response, StatusCode, Version};
use serde::Serialize;

use crate::app::App;
use crate::body::{self, Body};
use crate::config::{check_ratio, check_status};

/// Largest request body read (and counted) by the echo.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Entry point for every request on every connection.
pub(crate) async fn handle(
    app: Arc<App>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path();
    if path == "/__demo" || path.starts_with("/__demo/") {
        return Ok(crate::admin::handle(&app, req).await);
    }
    Ok(serve(&app, req).await)
}

#[derive(Debug, Default)]
struct Overrides {
    delay_ms: Option<u64>,
    status: Option<u16>,
    fail_ratio: Option<f64>,
    grpc_status: Option<u32>,
}

fn header<T: std::str::FromStr>(headers: &HeaderMap, name: &str) -> Result<Option<T>, String> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    let parsed = value.to_str().ok().and_then(|v| v.trim().parse().ok());
    match parsed {
        Some(v) => Ok(Some(v)),
        None => Err(format!("demo-upstream: bad {name} header value {value:?}")),
    }
}

impl Overrides {
    fn parse(headers: &HeaderMap) -> Result<Self, String> {
        let o = Overrides {
            delay_ms: header(headers, "x-demo-delay-ms")?,
            status: header(headers, "x-demo-status")?,
            fail_ratio: header(headers, "x-demo-fail-ratio")?,
            grpc_status: header(headers, "x-demo-grpc-status")?,
        };
        if let Some(s) = o.status {
            check_status("x-demo-status", s).map_err(|e| format!("demo-upstream: {e}"))?;
        }
        if let Some(r) = o.fail_ratio {
            check_ratio("x-demo-fail-ratio", r).map_err(|e| format!("demo-upstream: {e}"))?;
        }
        Ok(o)
    }
}

/// The JSON body of every ordinary answer.
#[derive(Debug, Serialize)]
struct Echo<'a> {
    path: &'a str,
    query: Option<&'a str>,
    method: &'a str,
    headers: BTreeMap<String, String>,
    served_by: &'static str,
    status: u16,
    body_bytes: usize,
}

fn echo_headers(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        out.entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    out
}

async fn serve(app: &App, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let overrides = match Overrides::parse(&parts.headers) {
        Ok(o) => o,
        Err(msg) => return finish(app, &path, &parts, body::text(StatusCode::BAD_REQUEST, msg)),
    };
    let body_bytes = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes().len(),
        Err(e) => {
            let msg = format!("demo-upstream: cannot read request body: {e}");
            return finish(app, &path, &parts, body::text(StatusCode::BAD_REQUEST, msg));
        }
    };
    let slot = match app.gate.acquire().await {
        Ok(slot) => slot,
        Err(_) => {
            app.stats.record(&path, 503, true);
            let resp = body::text(StatusCode::SERVICE_UNAVAILABLE, "demo-upstream: queue full");
            return with_attempt(&parts, resp);
        }
    };
    // Read after getting the slot, so a live config change applies to queued requests too.
    let settings = app.settings();
    let service_ms = match overrides.delay_ms {
        Some(ms) => ms,
        None => settings
            .service_time_ms
            .saturating_add(app.jitter_ms(settings.service_jitter_ms)),
    };
    let hold = service_ms.saturating_add(settings.extra_latency_ms);
    if hold > 0 {
        tokio::time::sleep(Duration::from_millis(hold)).await;
    }
    drop(slot);

    // Exactly one draw per served request keeps the failure count a function of the seed.
    let draw = app.failure_draw();
    let ratio = overrides.fail_ratio.unwrap_or(settings.failure_ratio);
    let status = match overrides.status {
        Some(s) => s,
        None if draw < ratio => settings.failure_status,
        None => 200,
    };
    let echo = Echo {
        path: &path,
        query: parts.uri.query(),
        method: parts.method.as_str(),
        headers: echo_headers(&parts.headers),
        served_by: "demo-upstream",
        status,
        body_bytes,
    };
    let resp = if is_grpc(&parts.headers) {
        grpc_response(&parts, &echo, status, overrides.grpc_status)
    } else {
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = body::json(code, &echo);
        if matches!(status, 204 | 304) {
            *resp.body_mut() = body::empty();
        }
        resp
    };
    finish(app, &path, &parts, resp)
}

fn finish(app: &App, path: &str, parts: &Parts, resp: Response<Body>) -> Response<Body> {
    app.stats.record(path, resp.status().as_u16(), false);
    with_attempt(parts, resp)
}

/// Echoes Envoy's retry attempt counter so tests can see which attempt was answered.
fn with_attempt(parts: &Parts, mut resp: Response<Body>) -> Response<Body> {
    if let Some(v) = parts.headers.get("x-envoy-attempt-count") {
        resp.headers_mut()
            .insert(HeaderName::from_static("x-demo-attempt"), v.clone());
    }
    resp
}

fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

/// gRPC's HTTP-to-status mapping (doc/http-grpc-status-mapping.md).
fn grpc_code_for_http(status: u16) -> u32 {
    match status {
        200..=299 => 0,
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502 | 503 | 504 => 14,
        _ => 2,
    }
}

/// HTTP 200 with `grpc-status` in trailers; on success the echo JSON travels as one
/// length-prefixed gRPC message. Over HTTP/1.1, hyper sends trailers only if the request
/// had `te: trailers` (which gRPC clients and Envoy send).
fn grpc_response(
    parts: &Parts,
    echo: &Echo<'_>,
    status: u16,
    forced: Option<u32>,
) -> Response<Body> {
    let ok = (200..300).contains(&status);
    let code = if ok {
        0
    } else {
        forced.unwrap_or_else(|| grpc_code_for_http(status))
    };
    let data = if ok {
        let json = serde_json::to_vec(echo).unwrap_or_default();
        let len = u32::try_from(json.len()).unwrap_or(u32::MAX);
        let mut framed = Vec::with_capacity(json.len() + 5);
        framed.push(0);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&json);
        Bytes::from(framed)
    } else {
        Bytes::new()
    };
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from(code));
    if !ok {
        let msg = format!("demo-upstream injected failure (HTTP {status})");
        if let Ok(v) = HeaderValue::from_str(&msg) {
            trailers.insert("grpc-message", v);
        }
    }
    let mut resp = body::respond(
        StatusCode::OK,
        "application/grpc",
        body::WithTrailers::boxed(data, trailers),
    );
    if parts.version < Version::HTTP_2 {
        resp.headers_mut().insert(
            TRAILER,
            HeaderValue::from_static("grpc-status, grpc-message"),
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_joined_lowercase() {
        let mut h = HeaderMap::new();
        h.append("X-Thing", HeaderValue::from_static("a"));
        h.append("x-thing", HeaderValue::from_static("b"));
        h.append("accept", HeaderValue::from_static("*/*"));
        let e = echo_headers(&h);
        assert_eq!(e["x-thing"], "a, b");
        assert_eq!(e["accept"], "*/*");
    }

    #[test]
    fn overrides_parse_and_validate() {
        let mut h = HeaderMap::new();
        h.insert("x-demo-delay-ms", HeaderValue::from_static("25"));
        h.insert("x-demo-status", HeaderValue::from_static("418"));
        h.insert("x-demo-fail-ratio", HeaderValue::from_static("0.25"));
        let o = Overrides::parse(&h).unwrap();
        assert_eq!(
            (o.delay_ms, o.status, o.fail_ratio),
            (Some(25), Some(418), Some(0.25))
        );
        h.insert("x-demo-status", HeaderValue::from_static("99"));
        assert!(Overrides::parse(&h).is_err());
        h.insert("x-demo-status", HeaderValue::from_static("200"));
        h.insert("x-demo-fail-ratio", HeaderValue::from_static("lots"));
        let err = Overrides::parse(&h).unwrap_err();
        assert!(err.contains("x-demo-fail-ratio"), "{err}");
    }

    #[test]
    fn grpc_mapping() {
        assert_eq!(grpc_code_for_http(503), 14);
        assert_eq!(grpc_code_for_http(200), 0);
        assert_eq!(grpc_code_for_http(500), 2);
    }
}
