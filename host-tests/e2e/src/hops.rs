//! Chains of real Envoys: client → E1 → … → En → leaf, optionally with an application between
//! each pair, as the multi-hop tests and `make bench` build them.
//!
//! Why in the library: the retry and deadline chain tests assert what a chain does, and the
//! benchmarks report the same chains' numbers beside the native alternatives; both must build
//! the chain the same way, from the shipped bootstraps (`envoy-config/chain-hop-<n>.yaml`, one
//! per hop since each hop is its own Envoy process, written with ports wired to the next hop so
//! that a user can run the chain as shipped).

use crate::chain::{deadline_clients, hop_app, Leaf, LeafStart, Outcome, Server};
use crate::envoy::TemplatePorts;
use crate::{Envoy, EnvoyConfig};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Hops in the shipped chain (`envoy-config/chain-hop-1.yaml` to `-3.yaml`).
pub const SHIPPED_HOPS: usize = 3;

/// The shipped bootstrap of hop `hop` of the chain (1 is E1, the one clients call), as written:
/// E1 listens on 10001 and forwards to E2 on 10002, E2 to E3 on 10003, E3 to the leaf on 8081;
/// their admin ports are 9911 to 9913.
pub fn shipped_hop(hop: usize) -> Result<EnvoyConfig, String> {
    let ports = match hop {
        1 => (9911, 10001, 10002),
        2 => (9912, 10002, 10003),
        3 => (9913, 10003, 8081),
        _ => {
            return Err(format!(
                "the shipped chain has hops 1 to {SHIPPED_HOPS}, not {hop}"
            ))
        }
    };
    let (admin, listener, upstream) = ports;
    Ok(
        EnvoyConfig::from_file(&format!("envoy-config/chain-hop-{hop}.yaml"))?.template_ports(
            TemplatePorts {
                admin,
                listener,
                upstream,
            },
        ),
    )
}

/// What each Envoy of a deadline chain runs as its ballast configuration.
#[derive(Debug, Clone, Copy)]
pub enum Plugin<'a> {
    /// The shipped hop's own configuration, as a user copies it.
    Shipped,
    /// This JSON instead.
    Json(&'a str),
    /// No ballast filter: the same Envoys without the plugin.
    Without,
}

/// Starts `hops` Envoys from the leaf back: `configure(hop)` gives hop `hop`'s config (1 is
/// E1), which is then pointed at the next hop's port (the last at `leaf_port`). Returns E1
/// first.
pub fn envoy_chain(
    hops: usize,
    leaf_port: u16,
    configure: impl Fn(usize) -> Result<EnvoyConfig, String>,
) -> Result<Vec<Envoy>, String> {
    let mut next = leaf_port;
    let mut envoys = Vec::new();
    for hop in (1..=hops).rev() {
        let config = configure(hop)?.upstream_port(next);
        let envoy = Envoy::start(&config).map_err(|e| format!("E{hop}: {e}"))?;
        next = envoy.listener().port();
        envoys.push(envoy);
    }
    envoys.reverse();
    Ok(envoys)
}

/// Where the time of each hop is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// client → E1 → E2 → E3 → leaf: each hop's delay is in the Envoy, before ballast (Envoy's
    /// fault filter).
    EnvoyOnly,
    /// client → E1 → A1 → E2 → A2 → E3 → A3 → leaf: each application waits, copies headers
    /// verbatim and never cancels its outgoing call.
    AppsBetween,
}

/// A running deadline chain: `envoys[0]` is E1, `apps[0]` A1.
pub struct DeadlineChain {
    /// The Envoys, E1 first.
    pub envoys: Vec<Envoy>,
    /// The applications, A1 first (none in [`Shape::EnvoyOnly`]).
    pub apps: Vec<Server>,
    /// The last hop, which records when each request reached it.
    pub leaf: Leaf,
}

impl DeadlineChain {
    /// Starts `hops` hops of `shape`, each spending `hop_delay`, with ballast configured by
    /// `plugin` in every Envoy (`None`: the same Envoys without the plugin).
    pub fn start(
        shape: Shape,
        hops: usize,
        hop_delay: Duration,
        plugin: Option<&str>,
    ) -> Result<DeadlineChain, String> {
        let plugin = plugin.map_or(Plugin::Without, Plugin::Json);
        DeadlineChain::start_with(shape, hops, hop_delay, plugin)
    }

    /// Starts `hops` hops (at most [`SHIPPED_HOPS`]) of `shape` from the shipped hop bootstraps,
    /// each spending `hop_delay`, with `plugin` as ballast's configuration in every Envoy.
    pub fn start_with(
        shape: Shape,
        hops: usize,
        hop_delay: Duration,
        plugin: Plugin<'_>,
    ) -> Result<DeadlineChain, String> {
        let leaf = Leaf::start()?;
        let mut next = leaf.addr();
        let (mut envoys, mut apps) = (Vec::new(), Vec::new());
        for hop in (1..=hops).rev() {
            if shape == Shape::AppsBetween {
                let app = hop_app(&format!("A{hop}"), hop_delay, next)?;
                next = app.addr();
                apps.push(app);
            }
            let mut config = shipped_hop(hop)?;
            if shape == Shape::EnvoyOnly {
                let ms = u64::try_from(hop_delay.as_millis()).map_err(|e| e.to_string())?;
                config = config.delay_before_plugin(ms);
            }
            config = match plugin {
                Plugin::Shipped => config,
                Plugin::Json(json) => config.plugin_json(json),
                Plugin::Without => config.without_plugin(),
            };
            let envoy = Envoy::start(&config.upstream_port(next.port()))
                .map_err(|e| format!("E{hop}: {e}"))?;
            next = envoy.listener();
            envoys.push(envoy);
        }
        envoys.reverse();
        apps.reverse();
        Ok(DeadlineChain { envoys, apps, leaf })
    }

    /// Where clients send: E1's listener.
    pub fn entry(&self) -> SocketAddr {
        self.envoys
            .first()
            .map_or_else(|| self.leaf.addr(), Envoy::listener)
    }

    /// Sends `requests` GETs of `path` from `threads` threads, each with a deadline of
    /// `deadline_ms` (see [`deadline_clients`]), waiting up to `wait` for each answer; then
    /// lets every hop finish what it started (the applications front to back, since each
    /// waits for the next) before reading the stats and the leaf's record.
    pub fn run(
        mut self,
        path: &str,
        requests: usize,
        threads: usize,
        deadline_ms: u64,
        wait: Duration,
    ) -> Result<ChainRun, String> {
        let started = Instant::now();
        let outcomes = deadline_clients(self.entry(), path, requests, threads, deadline_ms, wait)?;
        let elapsed = started.elapsed();
        for app in &mut self.apps {
            app.stop();
        }
        std::thread::sleep(Duration::from_millis(300)); // anything still on its way to the leaf
        let stats = self
            .envoys
            .iter()
            .map(Envoy::prometheus)
            .collect::<Result<Vec<_>, _>>()?;
        self.leaf.stop();
        Ok(ChainRun {
            outcomes,
            leaf_starts: self.leaf.take_starts(),
            stats,
            elapsed,
        })
    }
}

/// What one run of a deadline chain produced.
pub struct ChainRun {
    /// What each client request got.
    pub outcomes: Vec<Outcome>,
    /// When each request reached the leaf.
    pub leaf_starts: Vec<LeafStart>,
    /// `/stats/prometheus` of E1, E2, … once every hop has finished.
    pub stats: Vec<String>,
    /// How long the load took.
    pub elapsed: Duration,
}

impl ChainRun {
    /// Requests the leaf started after their client's deadline had passed: wasted work.
    pub fn late_starts(&self) -> usize {
        self.leaf_starts
            .iter()
            .filter(|s| s.after_deadline())
            .count()
    }
}
