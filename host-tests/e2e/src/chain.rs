//! The pieces of a multi-hop deadline test that are not Envoy: a leaf server that records when
//! each request reached it, an application hop that copies headers and forwards, and a client
//! that sends requests with a deadline and times what comes back.
//!
//! Why these are written here and not taken from the demo upstream: the question a chain test
//! asks is whether the *last* hop starts work its caller has already given up on, so the leaf
//! must record its own arrival time against the client's deadline; and the application between
//! two proxies must behave like a typical service that knows nothing of deadlines — it copies
//! request headers verbatim (as services copy trace headers), waits, never cancels its
//! outgoing call when its caller goes away, and relays whatever comes back. A proxy-only chain
//! cannot show whether a deadline survives such an application; this one can.
//!
//! Everything listens on and talks to 127.0.0.1 only, every socket has a timeout, and
//! [`Server::stop`] (or drop) wakes the accept loop and joins every thread it started.

use crate::client::{request_within, Response};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The test header carrying the client's deadline (Unix epoch ms) to the leaf, untouched by
/// ballast, so the leaf can tell whether it started after the client stopped caring.
pub const CLIENT_DEADLINE_HEADER: &str = "x-test-client-deadline";
/// Response header each application hop appends its name to, so the client can tell how deep
/// in the chain its answer was made.
pub const VIA_HEADER: &str = "x-test-via";

/// How long any socket read, write or forwarded call may take before it is given up.
const IO_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest request head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// Now, in Unix epoch milliseconds (the unit of `x-ballast-deadline`).
pub fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A request as a server in the chain received it.
#[derive(Debug, Clone)]
pub struct Request {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Header names lower-cased, values as raw bytes, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Body (by `content-length`).
    pub body: Vec<u8>,
}

impl Request {
    /// First value of a header, as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
}

/// What a handler answers.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers (framing headers are added by the server).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

type Handler = Arc<dyn Fn(Request) -> Reply + Send + Sync>;

/// A loopback HTTP/1.1 server: one request per connection, answered with `connection: close`
/// (so a proxy never reuses a connection the server is about to close).
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Server {
    /// Listens on a free loopback port; every request goes to `handler` on its own thread.
    pub fn start(handler: Handler) -> Result<Server, String> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let (stop_flag, handles) = (Arc::clone(&stop), Arc::clone(&connections));
        let acceptor = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop_flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let handler = Arc::clone(&handler);
                let handle = std::thread::spawn(move || serve_one(stream, &handler));
                if let Ok(mut all) = handles.lock() {
                    all.push(handle);
                }
            }
        });
        Ok(Server {
            addr,
            stop,
            acceptor: Some(acceptor),
            connections,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and waits for every request in progress to finish.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, IO_TIMEOUT); // wakes the accept loop
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let handles = self
            .connections
            .lock()
            .map(|mut all| std::mem::take(&mut *all))
            .unwrap_or_default();
        for handle in handles {
            let _ = handle.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve_one(mut stream: TcpStream, handler: &Handler) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let Ok(request) = read_request(&mut stream) else {
        return; // the accept loop's wake-up, or a peer that went away
    };
    let reply = handler(request);
    let mut raw = format!("HTTP/1.1 {} X\r\n", reply.status).into_bytes();
    for (name, value) in &reply.headers {
        raw.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    raw.extend_from_slice(
        format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            reply.body.len()
        )
        .as_bytes(),
    );
    raw.extend_from_slice(&reply.body);
    // The caller may have hung up (an Envoy whose timeout fired): nothing to do then.
    let _ = stream.write_all(&raw);
}

fn read_request(stream: &mut TcpStream) -> Result<Request, String> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 8 * 1024];
    let head_end = loop {
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        if received.len() > MAX_HEAD {
            return Err("request head too large".into());
        }
        let n = stream.read(&mut buffer).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed before a request".into());
        }
        received.extend_from_slice(buffer.get(..n).unwrap_or_default());
    };
    let head = received.get(..head_end).unwrap_or_default();
    let mut lines = head
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request_line = String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
    let mut parts = request_line.split_whitespace();
    let (method, path) = match (parts.next(), parts.next()) {
        (Some(m), Some(p)) => (m.to_string(), p.to_string()),
        _ => return Err(format!("bad request line `{request_line}`")),
    };
    let headers: Vec<(String, Vec<u8>)> = lines
        .filter_map(|line| {
            let colon = line.iter().position(|b| *b == b':')?;
            let name = String::from_utf8_lossy(line.get(..colon)?).to_ascii_lowercase();
            let value = line.get(colon + 1..)?.trim_ascii().to_vec();
            Some((name.trim().to_string(), value))
        })
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| String::from_utf8_lossy(v).trim().parse().ok())
        .unwrap_or(0);
    let mut body = received.get(head_end + 4..).unwrap_or_default().to_vec();
    while body.len() < length {
        let n = stream.read(&mut buffer).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed inside the body".into());
        }
        body.extend_from_slice(buffer.get(..n).unwrap_or_default());
    }
    Ok(Request {
        method,
        path,
        headers,
        body,
    })
}

/// When one request reached the leaf, against its client's deadline.
#[derive(Debug, Clone)]
pub struct LeafStart {
    /// Arrival, Unix epoch ms.
    pub at_ms: u64,
    /// The client's deadline from [`CLIENT_DEADLINE_HEADER`], if the request carried one.
    pub client_deadline_ms: Option<u64>,
    /// The `grpc-timeout` the last hop forwarded: the budget the leaf was told it had.
    pub grpc_timeout: Option<String>,
}

impl LeafStart {
    /// Whether the leaf started this request after its client's deadline had passed.
    pub fn after_deadline(&self) -> bool {
        self.client_deadline_ms.is_some_and(|d| self.at_ms > d)
    }
}

/// The last hop: records each arrival and answers 200 `leaf` at once.
pub struct Leaf {
    server: Server,
    starts: Arc<Mutex<Vec<LeafStart>>>,
}

impl Leaf {
    /// Starts the leaf on a free loopback port.
    pub fn start() -> Result<Leaf, String> {
        let starts = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&starts);
        let server = Server::start(Arc::new(move |request: Request| {
            let start = LeafStart {
                at_ms: epoch_ms(),
                client_deadline_ms: request
                    .header(CLIENT_DEADLINE_HEADER)
                    .and_then(|v| v.trim().parse().ok()),
                grpc_timeout: request.header("grpc-timeout"),
            };
            if let Ok(mut all) = record.lock() {
                all.push(start);
            }
            Reply {
                status: 200,
                headers: Vec::new(),
                body: b"leaf".to_vec(),
            }
        }))?;
        Ok(Leaf { server, starts })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The arrivals recorded so far, which are then forgotten.
    pub fn take_starts(&self) -> Vec<LeafStart> {
        self.starts
            .lock()
            .map(|mut all| std::mem::take(&mut *all))
            .unwrap_or_default()
    }

    /// Stops the leaf (waits for requests in progress).
    pub fn stop(&mut self) {
        self.server.stop();
    }
}

/// Request headers an application does not copy to its own outgoing request: they describe
/// the connection, not the request (the client writes its own host, connection, length).
const HOP_BY_HOP: [&str; 9] = [
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
];

/// An application between two proxies: reads the request, works `delay`, then forwards it to
/// `next` with every other request header copied verbatim (deadline headers included, never
/// decremented), never cancelling when its own caller goes away, and relays the response with
/// its `name` appended to [`VIA_HEADER`]. A failed forward is answered 502.
pub fn hop_app(name: &str, delay: Duration, next: SocketAddr) -> Result<Server, String> {
    let name = name.to_string();
    Server::start(Arc::new(move |request: Request| {
        std::thread::sleep(delay);
        let headers: Vec<(&str, &[u8])> = request
            .headers
            .iter()
            .filter(|(n, _)| !HOP_BY_HOP.contains(&n.as_str()))
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect();
        let forwarded = request_within(
            next,
            &request.method,
            &request.path,
            &headers,
            &request.body,
            IO_TIMEOUT,
        );
        match forwarded {
            Ok(response) => relay(&name, response),
            Err(error) => Reply {
                status: 502,
                headers: vec![(VIA_HEADER.to_string(), name.clone())],
                body: format!("{name}: {error}").into_bytes(),
            },
        }
    }))
}

fn relay(name: &str, response: Response) -> Reply {
    let mut via = name.to_string();
    let mut headers = Vec::new();
    for (header, value) in response.headers {
        if header == VIA_HEADER {
            via = format!("{value} {name}");
        } else if !HOP_BY_HOP.contains(&header.as_str()) {
            headers.push((header, value));
        }
    }
    headers.push((VIA_HEADER.to_string(), via));
    Reply {
        status: response.status,
        headers,
        body: response.body,
    }
}

/// What one client request got, and when.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The response, or the client's error (connection refused, timed out).
    pub response: Result<Response, String>,
    /// From sending to the complete response (or the error).
    pub latency: Duration,
}

/// Sends `total` GETs of `path` from `threads` threads to `addr` (loopback only), each with
/// `grpc-timeout: <deadline_ms>m` and [`CLIENT_DEADLINE_HEADER`] = send time + `deadline_ms`,
/// and waits up to `wait` for each answer: longer than the deadline, so that what arrives late
/// is seen and timed instead of hidden by the client hanging up.
pub fn deadline_clients(
    addr: SocketAddr,
    path: &str,
    total: usize,
    threads: usize,
    deadline_ms: u64,
    wait: Duration,
) -> Result<Vec<Outcome>, String> {
    if !addr.ip().is_loopback() {
        return Err(format!("{addr} is not loopback"));
    }
    Ok(crate::load::on_threads(total, threads, |_| {
        let grpc_timeout = format!("{deadline_ms}m");
        let started = Instant::now();
        let client_deadline = (epoch_ms() + deadline_ms).to_string();
        let headers: [(&str, &[u8]); 2] = [
            ("grpc-timeout", grpc_timeout.as_bytes()),
            (CLIENT_DEADLINE_HEADER, client_deadline.as_bytes()),
        ];
        let response = request_within(addr, "GET", path, &headers, b"", wait);
        Outcome {
            response,
            latency: started.elapsed(),
        }
    }))
}

/// The `percent`th percentile (nearest rank) of `values`; zero when there are none.
pub fn percentile(values: &[Duration], percent: usize) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    let rank = (sorted.len() * percent).div_ceil(100).max(1);
    sorted.get(rank - 1).copied().unwrap_or_default()
}

/// ballast's deadline counters a chain test reads from each hop, in the order of the indexes
/// below.
pub const DEADLINE_METRICS: [&str; 5] = [
    "ballast_deadline_seen_grpc_timeout",
    "ballast_deadline_seen_absolute",
    "ballast_deadline_expired_on_arrival",
    "ballast_deadline_upstream_timeouts",
    "ballast_deadline_untrusted_ignored",
];
/// Index of `ballast_deadline_seen_grpc_timeout` in a hop's counters.
pub const SEEN_GRPC: usize = 0;
/// Index of `ballast_deadline_seen_absolute`.
pub const SEEN_ABSOLUTE: usize = 1;
/// Index of `ballast_deadline_expired_on_arrival`.
pub const EXPIRED_ON_ARRIVAL: usize = 2;
/// Index of `ballast_deadline_upstream_timeouts`.
pub const UPSTREAM_TIMEOUTS: usize = 3;
/// Index of `ballast_deadline_untrusted_ignored`.
pub const UNTRUSTED_IGNORED: usize = 4;

/// Reads [`DEADLINE_METRICS`] (policy set `api`) from each hop's `/stats/prometheus` text and
/// prints them under `heading`, one line per hop (E1, E2, …); returns `[hop][metric]`.
pub fn print_deadline_counters(heading: &str, stats: &[String]) -> Result<Vec<[f64; 5]>, String> {
    println!("  {heading}, per hop:");
    let mut values = Vec::new();
    for (hop, text) in stats.iter().enumerate() {
        let mut hop_values = [0.0; 5];
        let mut parts = Vec::new();
        for (slot, name) in hop_values.iter_mut().zip(DEADLINE_METRICS) {
            *slot = crate::prometheus::sample(text, name, &[("policy_set", "api")])
                .ok_or_else(|| format!("E{}: no {name} in\n{text}", hop + 1))?;
            parts.push(format!(
                "{}={slot}",
                name.trim_start_matches("ballast_deadline_")
            ));
        }
        println!("    E{}: {}", hop + 1, parts.join(" "));
        values.push(hop_values);
    }
    Ok(values)
}
