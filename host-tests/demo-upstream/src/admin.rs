//! The `/__demo/` admin endpoints: health, stats, reset and live configuration. They are
//! not counted and bypass the capacity gate, so tests can observe and steer the upstream
//! while it is saturated.
//!
//! - `GET  /__demo/health` → 200 `ok`
//! - `GET  /__demo/stats`  → counters as JSON ([`crate::StatsSnapshot`])
//! - `POST /__demo/reset`  → zeroes the counters; answers the (zeroed) stats
//! - `GET  /__demo/config` → the live [`crate::Settings`] as JSON
//! - `POST /__demo/config` → applies a JSON [`crate::ConfigPatch`]; 400 with a message for
//!   unknown fields or out-of-range values; answers the new settings

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use crate::app::App;
use crate::body::{self, Body};
use crate::config::ConfigPatch;

const MAX_ADMIN_BODY: usize = 64 * 1024;

pub(crate) async fn handle(app: &App, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    match (path.as_str(), method) {
        ("/__demo/health", Method::GET | Method::HEAD) => body::text(StatusCode::OK, "ok"),
        ("/__demo/stats", Method::GET | Method::HEAD) => {
            body::json(StatusCode::OK, &app.stats.snapshot(&app.gate))
        }
        ("/__demo/reset", Method::POST) => {
            app.stats.reset(&app.gate);
            body::json(StatusCode::OK, &app.stats.snapshot(&app.gate))
        }
        ("/__demo/config", Method::GET | Method::HEAD) => {
            body::json(StatusCode::OK, &app.settings())
        }
        ("/__demo/config", Method::POST | Method::PUT) => update_config(app, req).await,
        ("/__demo/health" | "/__demo/stats" | "/__demo/reset" | "/__demo/config", m) => body::text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("demo-upstream: {m} not allowed on {path}"),
        ),
        _ => body::text(
            StatusCode::NOT_FOUND,
            format!(
                "demo-upstream: no admin endpoint {path} \
                 (have /__demo/health, /__demo/stats, /__demo/reset, /__demo/config)"
            ),
        ),
    }
}

async fn update_config(app: &App, req: Request<Incoming>) -> Response<Body> {
    let bytes = match Limited::new(req.into_body(), MAX_ADMIN_BODY)
        .collect()
        .await
    {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            return body::text(
                StatusCode::BAD_REQUEST,
                format!("demo-upstream: cannot read config body: {e}"),
            )
        }
    };
    let patch = if bytes.iter().all(u8::is_ascii_whitespace) {
        ConfigPatch::default()
    } else {
        match ConfigPatch::from_json(&bytes) {
            Ok(p) => p,
            Err(e) => return body::text(StatusCode::BAD_REQUEST, format!("demo-upstream: {e}")),
        }
    };
    match app.update(&patch) {
        Ok(settings) => body::json(StatusCode::OK, &settings),
        Err(e) => body::text(StatusCode::BAD_REQUEST, format!("demo-upstream: {e}")),
    }
}
