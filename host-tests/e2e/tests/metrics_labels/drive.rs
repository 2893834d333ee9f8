//! Traffic that makes every kind of ballast metric move, in one Envoy with one worker: plain
//! requests of two policy sets and none, a class over its rate limit, retries within and
//! beyond the budget, every deadline outcome, and a queue that fills, displaces and times out.
//!
//! Why each phase checks its own answers: a metric that stays at zero because the request never
//! reached the policy would otherwise look like a labelling bug. Everything is sequential but
//! the queue phase, whose ordering rests on short sleeps (as the other queue tests' does); no
//! assertion is on a duration.

use ballast_demo_upstream::RunningUpstream;
use ballast_e2e::{get, request, Envoy, EnvoyConfig, Response};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One policy set with every section (fixed limit 1 and a queue of 1, so three requests show
/// every queue outcome; no throttling or admission level, whose refusals are random), one with
/// none, and paths no rule matches. The retry budget has no floor: 10 % of the first attempts.
pub const PLUGIN_JSON: &str = r#"{
  "policy_sets": {
    "api": {
      "retry_budget": { "ratio": 0.1, "min_retries_per_second": 0, "ttl": "10s" },
      "retry": { "max_retries_per_request": 3 },
      "concurrency": { "algorithm": "fixed", "initial_limit": 1,
                       "queue": { "size": 1, "max_wait": "1s" } },
      "deadline": { "default": "10s", "max": "20s" },
      "shedding": { "admission": { "enabled": false }, "throttle": { "enabled": false },
                    "rate_limits": { "sheddable": { "per_second": 1, "burst": 1 } } }
    },
    "web": {}
  },
  "routes": [
    { "match": { "route_name": { "exact": "api" } }, "policy_set": "api" },
    { "match": { "path": { "prefix": "/web/" } }, "policy_set": "web" }
  ]
}"#;

/// Requests the plain phase sends to `api`: their first attempts fund the retry budget.
pub const PLAIN_API_REQUESTS: usize = 20;

/// The shipped bootstrap, pointed at `upstream`, with [`PLUGIN_JSON`] and `substitutions`.
pub fn config(upstream: &RunningUpstream, substitutions: &[(&str, &str)]) -> EnvoyConfig {
    let mut config = EnvoyConfig::from_file("envoy-config/envoy.yaml")
        .unwrap_or_else(|e| panic!("{e}"))
        .upstream_port(upstream.addr().port())
        .plugin_json(PLUGIN_JSON)
        .concurrency(1);
    for (from, to) in substitutions {
        config = config.substitute(from, to);
    }
    config
}

fn send(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let raw: Vec<(&str, &[u8])> = headers.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
    request(addr, method, path, &raw, b"").unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

fn expect(response: &Response, status: u16, rejected: Option<&str>, what: &str) {
    assert_eq!(
        (response.status, response.header("x-ballast-rejected")),
        (status, rejected),
        "{what}: {}",
        response.text()
    );
}

/// Requests routed to `api` and `web`, and one no rule matches.
pub fn plain(addr: SocketAddr) {
    for i in 0..PLAIN_API_REQUESTS {
        expect(
            &send(addr, "GET", "/api/items", &[]),
            200,
            None,
            &format!("api #{i}"),
        );
    }
    expect(&send(addr, "GET", "/web/page", &[]), 200, None, "web");
    expect(&send(addr, "GET", "/other", &[]), 200, None, "unmatched");
}

/// `sheddable` allows one request a second: of three at once, the later ones are refused.
pub fn rate_limit(addr: SocketAddr) {
    let sheddable = [("x-ballast-priority", "sheddable")];
    let answers: Vec<Response> = (0..3)
        .map(|_| send(addr, "GET", "/api/cheap", &sheddable))
        .collect();
    expect(&answers[0], 200, None, "first sheddable request");
    assert!(
        answers
            .iter()
            .any(|r| r.status == 429 && r.header("x-ballast-rejected") == Some("rate-limited")),
        "a sheddable request over 1/s is refused: {:?}",
        answers.iter().map(|r| r.status).collect::<Vec<_>>()
    );
}

/// Failing GETs use the budget (2 retries from 20 first attempts) and then are refused it;
/// a failing POST without an idempotency key is not retried at all.
pub fn retries(addr: SocketAddr) {
    let failing = [("x-demo-status", "503")];
    for i in 0..4 {
        expect(
            &send(addr, "GET", "/api/flaky", &failing),
            503,
            None,
            &format!("GET #{i}"),
        );
    }
    let post = send(addr, "POST", "/api/orders", &failing);
    expect(&post, 503, None, "POST");
    assert_eq!(
        post.header("x-envoy-attempt-count"),
        Some("1"),
        "never retried"
    );
}

fn epoch_ms(offset_ms: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    (i128::try_from(now).unwrap_or(0) + i128::from(offset_ms)).to_string()
}

/// Every deadline input and outcome but the queue's (see [`queue`]).
pub fn deadlines(addr: SocketAddr) {
    let expired = send(addr, "GET", "/api/late", &[("grpc-timeout", "1m")]);
    expect(&expired, 504, Some("deadline"), "1 ms left at arrival");
    expect(
        &send(addr, "GET", "/api/long", &[("grpc-timeout", "100S")]),
        200,
        None,
        "capped",
    );
    expect(
        &send(addr, "GET", "/api/bad", &[("grpc-timeout", "soon")]),
        200,
        None,
        "malformed",
    );
    let absolute = epoch_ms(5_000);
    let header = "x-ballast-deadline";
    expect(
        &send(addr, "GET", "/api/abs", &[(header, absolute.as_str())]),
        200,
        None,
        "absolute",
    );
    let skewed = epoch_ms(-60_000);
    expect(
        &send(addr, "GET", "/api/skew", &[(header, skewed.as_str())]),
        200,
        None,
        "skewed",
    );
    let slow = [("grpc-timeout", "300m"), ("x-demo-delay-ms", "1500")];
    let timed_out = send(addr, "GET", "/api/slow", &slow);
    assert_eq!(timed_out.status, 504, "{}", timed_out.text());
    assert_eq!(timed_out.text().trim(), "upstream request timeout");
}

/// With the only slot held: a waiter leaves at its deadline, a `standard` waiter is displaced
/// by a `critical` one, a `standard` arrival finds the queue full, and the `critical` waiter's
/// wait (twice `max_wait`, 2 s) runs out before the holder (4 s) is done.
pub fn queue(addr: SocketAddr) {
    std::thread::scope(|scope| {
        let holder =
            scope.spawn(move || send(addr, "GET", "/api/hold", &[("x-demo-delay-ms", "4000")]));
        std::thread::sleep(Duration::from_millis(200));
        let dropped = send(addr, "GET", "/api/wait", &[("grpc-timeout", "300m")]);
        expect(&dropped, 504, Some("deadline"), "waiter past its deadline");
        let displaced = scope.spawn(move || send(addr, "GET", "/api/wait", &[]));
        std::thread::sleep(Duration::from_millis(150));
        let critical = [("x-ballast-priority", "critical")];
        let timed_out = scope.spawn(move || send(addr, "GET", "/api/wait", &critical));
        std::thread::sleep(Duration::from_millis(150));
        expect(
            &send(addr, "GET", "/api/wait", &[]),
            503,
            Some("concurrency"),
            "queue full",
        );
        expect(
            &joined(displaced),
            503,
            Some("displaced"),
            "displaced waiter",
        );
        expect(
            &joined(timed_out),
            503,
            Some("concurrency"),
            "critical waiter",
        );
        expect(&joined(holder), 200, None, "holder");
    });
}

fn joined(handle: std::thread::ScopedJoinHandle<'_, Response>) -> Response {
    handle
        .join()
        .unwrap_or_else(|_| panic!("a client thread panicked"))
}

/// `/stats/prometheus` and `/stats` (the raw names, tags still inside) of `envoy`.
pub fn scrape(envoy: &Envoy) -> Result<(String, String), String> {
    let prometheus = envoy.prometheus()?;
    let stats = get(envoy.admin(), "/stats")?.text();
    Ok((prometheus, stats))
}
