//! End-to-end behaviour of the demo upstream over real loopback HTTP: echo, counting,
//! overrides, live configuration, gRPC-style failures, loopback-only listening.
// Test-only crate: its helpers (outside #[test] fns) may panic on failure too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use ballast_demo_upstream::{spawn, ConfigPatch, Error, Settings, Upstream, UpstreamConfig};
use common::*;

fn start(settings: Settings) -> ballast_demo_upstream::RunningUpstream {
    spawn(UpstreamConfig {
        settings,
        ..UpstreamConfig::default()
    })
    .unwrap()
}

async fn bounded<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(TEST_TIMEOUT, f)
        .await
        .expect("test timed out");
}

#[tokio::test]
async fn echoes_request_headers_path_and_method() {
    let up = start(Settings::default());
    bounded(async {
        let r = send(
            up.addr(),
            "POST",
            "/echo/me?x=1",
            &[
                ("X-Custom", "one"),
                ("x-custom", "two"),
                ("x-envoy-attempt-count", "3"),
            ],
            "hello",
        )
        .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.headers["content-type"], "application/json");
        assert_eq!(r.headers["x-demo-attempt"], "3");
        let j = r.json();
        assert_eq!(j["path"], "/echo/me");
        assert_eq!(j["query"], "x=1");
        assert_eq!(j["method"], "POST");
        assert_eq!(j["served_by"], "demo-upstream");
        assert_eq!(j["headers"]["x-custom"], "one, two");
        assert_eq!(j["headers"]["x-envoy-attempt-count"], "3");
        assert_eq!(j["headers"]["host"], up.addr().to_string());
        assert_eq!(j["body_bytes"], 5);

        let plain = get(up.addr(), "/").await;
        assert!(plain.headers.get("x-demo-attempt").is_none());
    })
    .await;
}

#[tokio::test]
async fn counts_per_path_and_status_and_resets() {
    let up = start(Settings::default());
    let addr = up.addr();
    bounded(async {
        for _ in 0..3 {
            assert_eq!(get(addr, "/a").await.status, 200);
        }
        for _ in 0..2 {
            assert_eq!(get(addr, "/b?q=1").await.status, 200);
        }
        let r = send(addr, "GET", "/b", &[("x-demo-status", "503")], "").await;
        assert_eq!(r.status, 503);
        assert_eq!(get(addr, "/__demo/health").await.text(), "ok\n");

        let s = stats(addr).await;
        assert_eq!(s["total"], 6, "{s}");
        assert_eq!(s["by_path"]["/a"], 3);
        assert_eq!(s["by_path"]["/b"], 3);
        assert_eq!(s["by_status"]["200"], 5);
        assert_eq!(s["by_status"]["503"], 1);
        assert_eq!(s["in_flight"], 0);
        assert_eq!(s["max_in_flight_seen"], 1);
        assert!(
            s["by_path"].get("/__demo/stats").is_none(),
            "admin not counted"
        );
        assert_eq!(up.stats().total, 6);

        let r = send(addr, "POST", "/__demo/reset", &[], "").await;
        assert_eq!(r.status, 200);
        let s = stats(addr).await;
        assert_eq!(s["total"], 0);
        assert_eq!(s["by_path"], serde_json::json!({}));
        assert_eq!(s["by_status"], serde_json::json!({}));
        assert_eq!(s["max_in_flight_seen"], 0);

        get(addr, "/c").await;
        up.reset();
        assert_eq!(up.stats().total, 0);
    })
    .await;
}

#[tokio::test]
async fn header_overrides() {
    let up = start(Settings::default());
    let addr = up.addr();
    bounded(async {
        let r = send(addr, "GET", "/s", &[("x-demo-status", "418")], "").await;
        assert_eq!(r.status, 418);
        assert_eq!(r.json()["status"], 418);

        let t = Instant::now();
        let r = send(addr, "GET", "/slow", &[("x-demo-delay-ms", "120")], "").await;
        assert_eq!(r.status, 200);
        assert!(
            t.elapsed() >= Duration::from_millis(120),
            "{:?}",
            t.elapsed()
        );

        let r = send(addr, "GET", "/f", &[("x-demo-fail-ratio", "1.0")], "").await;
        assert_eq!(r.status, 503);
        let r = send(addr, "GET", "/f", &[("x-demo-fail-ratio", "0")], "").await;
        assert_eq!(r.status, 200);

        let r = send(addr, "GET", "/bad", &[("x-demo-delay-ms", "soon")], "").await;
        assert_eq!(r.status, 400);
        assert!(r.text().contains("x-demo-delay-ms"), "{}", r.text());
        let r = send(addr, "GET", "/bad", &[("x-demo-status", "42")], "").await;
        assert_eq!(r.status, 400);

        let s = up.stats();
        assert_eq!(s.by_status["418"], 1);
        assert_eq!(s.by_status["400"], 2);
    })
    .await;
}

#[tokio::test]
async fn live_config_changes() {
    let up = start(Settings::default());
    let addr = up.addr();
    bounded(async {
        let r = configure(addr, r#"{"failure_ratio":1.0,"failure_status":500}"#).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["failure_ratio"], 1.0);
        assert_eq!(get(addr, "/x").await.status, 500);

        let r = configure(
            addr,
            r#"{"failure_ratio":0.0,"capacity":1,"service_time_ms":60}"#,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let cfg = get(addr, "/__demo/config").await.json();
        assert_eq!(cfg["capacity"], 1);
        assert_eq!(cfg["failure_status"], 500);

        up.reset();
        let t = Instant::now();
        let statuses = concurrent(addr, "/cap", 3).await;
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
        assert!(
            t.elapsed() >= Duration::from_millis(175),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(up.stats().max_in_flight_seen, 1);

        let r = configure(addr, r#"{"capacty":2}"#).await;
        assert_eq!(r.status, 400);
        assert!(r.text().contains("unknown field `capacty`"), "{}", r.text());
        let r = configure(addr, r#"{"failure_ratio":2}"#).await;
        assert_eq!(r.status, 400);
        assert!(r.text().contains("failure_ratio"), "{}", r.text());
        assert_eq!(up.settings().capacity, 1, "rejected patches change nothing");

        let s = up
            .update(&ConfigPatch {
                capacity: Some(0),
                service_time_ms: Some(0),
                ..ConfigPatch::default()
            })
            .unwrap();
        assert_eq!(s.capacity, 0);
        assert_eq!(get(addr, "/__demo/config").await.json()["capacity"], 0);
    })
    .await;
}

#[tokio::test]
async fn admin_errors() {
    let up = start(Settings::default());
    bounded(async {
        assert_eq!(get(up.addr(), "/__demo/nope").await.status, 404);
        assert_eq!(get(up.addr(), "/__demo/reset").await.status, 405);
        assert_eq!(up.stats().total, 0);
    })
    .await;
}

#[tokio::test]
async fn grpc_failures_use_trailers() {
    let up = start(Settings::default());
    let addr = up.addr();
    bounded(async {
        let grpc = [("content-type", "application/grpc"), ("te", "trailers")];
        let ok = send_h2(addr, "POST", "/svc/Method", &grpc, "").await;
        assert_eq!(ok.status, 200);
        assert_eq!(ok.trailers.as_ref().unwrap()["grpc-status"], "0");
        assert_eq!(ok.body[0], 0, "uncompressed gRPC frame");
        let len = u32::from_be_bytes([ok.body[1], ok.body[2], ok.body[3], ok.body[4]]) as usize;
        let echo: serde_json::Value = serde_json::from_slice(&ok.body[5..5 + len]).unwrap();
        assert_eq!(echo["path"], "/svc/Method");

        let failing = [
            ("content-type", "application/grpc+proto"),
            ("te", "trailers"),
            ("x-demo-status", "503"),
        ];
        let f = send_h2(addr, "POST", "/svc/Method", &failing, "").await;
        assert_eq!(f.status, 200);
        let t = f.trailers.unwrap();
        assert_eq!(t["grpc-status"], "14");
        assert!(t.contains_key("grpc-message"));

        // HTTP/1.1 with `te: trailers` gets them too (chunked).
        let f1 = send(addr, "POST", "/svc/Method", &failing, "").await;
        assert_eq!(f1.status, 200);
        assert_eq!(f1.trailers.unwrap()["grpc-status"], "14");

        let forced = [
            ("content-type", "application/grpc"),
            ("x-demo-fail-ratio", "1"),
            ("x-demo-grpc-status", "4"),
        ];
        let g = send_h2(addr, "POST", "/svc/Method", &forced, "").await;
        assert_eq!(g.trailers.unwrap()["grpc-status"], "4");
    })
    .await;
}

#[tokio::test]
async fn serves_http2_echo() {
    let up = start(Settings::default());
    bounded(async {
        let r = send_h2(up.addr(), "GET", "/h2", &[("x-a", "b")], "").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["headers"]["x-a"], "b");
    })
    .await;
}

#[tokio::test]
async fn refuses_non_loopback_listen() {
    for listen in ["0.0.0.0:0", "10.0.0.1:8081", "[::]:0"] {
        let config = UpstreamConfig {
            listen: listen.parse().unwrap(),
            ..UpstreamConfig::default()
        };
        let err = spawn(config.clone()).unwrap_err();
        assert!(matches!(err, Error::NonLoopback(_)), "{listen}: {err}");
        assert!(err.to_string().contains("loopback"), "{err}");
        let err = Upstream::bind(config).await.unwrap_err();
        assert!(matches!(err, Error::NonLoopback(_)), "{listen}: {err}");
    }
}

#[tokio::test]
async fn in_runtime_upstream_serves_and_stops() {
    let up = Upstream::bind(UpstreamConfig::default()).await.unwrap();
    let addr = up.local_addr();
    let control = up.control();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(up.serve(async {
        let _ = rx.await;
    }));
    bounded(async {
        assert_eq!(get(addr, "/in-rt").await.status, 200);
        assert_eq!(control.stats().by_path["/in-rt"], 1);
        tx.send(()).unwrap();
        task.await.unwrap().unwrap();
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    })
    .await;
}
