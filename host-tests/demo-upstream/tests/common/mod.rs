//! Minimal HTTP client for the tests (hyper's low-level client over a fresh loopback
//! connection per request), so no heavy client crate is needed.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::http::HeaderMap;
use hyper::{Request, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

/// Upper bound for any single request in these tests.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound for a whole test.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub trailers: Option<HeaderMap>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn build(
    version: Version,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Request<Full<Bytes>> {
    let uri = if version == Version::HTTP_2 {
        format!("http://{addr}{path}")
    } else {
        path.to_owned()
    };
    let mut req = Request::builder().method(method).uri(uri).version(version);
    if version != Version::HTTP_2 {
        req = req.header("host", addr.to_string());
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(Full::new(Bytes::from(body.to_owned()))).unwrap()
}

async fn collect(resp: hyper::Response<hyper::body::Incoming>) -> Reply {
    let (parts, body) = resp.into_parts();
    let collected = body.collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: collected.to_bytes(),
        trailers,
    }
}

/// One HTTP/1.1 request on a new connection.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let req = build(Version::HTTP_11, addr, method, path, headers, body);
    tokio::time::timeout(REQUEST_TIMEOUT, async move {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        collect(sender.send_request(req).await.unwrap()).await
    })
    .await
    .expect("request timed out")
}

/// One HTTP/2 (prior knowledge, h2c) request on a new connection.
pub async fn send_h2(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let req = build(Version::HTTP_2, addr, method, path, headers, body);
    tokio::time::timeout(REQUEST_TIMEOUT, async move {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        collect(sender.send_request(req).await.unwrap()).await
    })
    .await
    .expect("request timed out")
}

pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    send(addr, "GET", path, &[], "").await
}

pub async fn stats(addr: SocketAddr) -> serde_json::Value {
    let r = get(addr, "/__demo/stats").await;
    assert_eq!(r.status, 200);
    r.json()
}

pub async fn configure(addr: SocketAddr, body: &str) -> Reply {
    send(
        addr,
        "POST",
        "/__demo/config",
        &[("content-type", "application/json")],
        body,
    )
    .await
}

/// Sends `n` identical GETs at once; returns the statuses in completion order.
pub async fn concurrent(addr: SocketAddr, path: &str, n: usize) -> Vec<u16> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let path = path.to_owned();
        set.spawn(async move { get(addr, &path).await.status });
    }
    let mut out = Vec::new();
    while let Some(status) = set.join_next().await {
        out.push(status.unwrap());
    }
    out
}
