//! The root context: configuration in, the policy pipeline out, ticks through.
//!
//! Why reject loudly: `on_configure` is the only moment a bad configuration can be refused
//! before it meets traffic. Returning `false` makes Envoy fail the listener update (or refuse to
//! start), and the error-level log line carries the JSON path and reason from the policy crate.
//!
//! Why pipelines retire instead of being dropped: a replaced configuration still has streams
//! (some waiting in its queues, woken only by its ticks). Envoy gives the new configuration a
//! new root context and shuts the old one down once its streams are gone; a host may instead
//! call `on_configure` again on this root. Either way the old pipeline keeps ticking until no
//! stream holds it, then closes (budgets flushed, limiter entries removed from shared data), so
//! no request is lost and none is counted in two limiters.
//!
//! Why the configuration can lose its queues here: a waiter is resumed from a tick or from
//! another stream's callback, through `proxy_set_effective_context`. A host where that call
//! does nothing (ngx_wasm_module, APISIX) would leave every queued request paused until its
//! client gave up, so there the queues are off and a request over the limit is rejected at once.

use crate::abi;
use crate::host::{self, HostStore};
use crate::http::{BallastHttp, Plugin};
use crate::metrics::{define_host_errors, define_unmatched, SetTelemetry};
use ballast_policy::config::Config;
use ballast_policy::pipeline::{Pipeline, TickNeed};
use std::rc::Rc;
use std::time::Duration;

/// The plugin's root context (one per VM and plugin instance).
#[derive(Default)]
pub struct BallastRoot {
    plugin: Option<Rc<Plugin>>,
    /// Pipelines of configurations replaced on this root that streams still hold.
    retired: Vec<Rc<Plugin>>,
    /// The tick period asked of the host, in ms (0: none).
    tick_ms: u32,
}

impl BallastRoot {
    /// Every pipeline of this root: the active one, then the retired ones.
    fn plugins(&self) -> impl Iterator<Item = &Rc<Plugin>> {
        self.plugin.iter().chain(self.retired.iter())
    }

    /// Asks the host for the fastest tick any live pipeline needs (none: the timer stops).
    fn arm_ticks(&mut self) {
        let need = self.plugins().map(|p| p.pipeline.tick_need()).max();
        let period = match need {
            Some(TickNeed::Fast) => Duration::from_millis(10),
            Some(TickNeed::Slow) => Duration::from_secs(1),
            Some(TickNeed::None) | None => Duration::ZERO,
        };
        let period_ms = u32::try_from(period.as_millis()).unwrap_or(u32::MAX);
        if period_ms == self.tick_ms {
            return;
        }
        // ngx_wasm_module traps on a non-zero period while one is set: a running timer is only
        // stopped, or stopped first for faster ticks; a slower need keeps the faster ticks,
        // which every tick handler takes (it acts by the clock, not by the count).
        if self.tick_ms != 0 && period_ms != 0 {
            if period_ms > self.tick_ms || abi::set_tick_period_ms(0).is_err() {
                return;
            }
            self.tick_ms = 0;
        }
        if abi::set_tick_period_ms(period_ms).is_ok() {
            self.tick_ms = period_ms;
        }
    }

    /// Closes the retired pipelines no stream holds any more; re-arms the timer if one went.
    fn close_released(&mut self) {
        let before = self.retired.len();
        let now = host::now();
        self.retired.retain(|plugin| {
            // The root's own reference is the only one left: no stream uses it.
            let in_use = Rc::strong_count(plugin) > 1;
            if !in_use {
                plugin.pipeline.close(&HostStore, now);
            }
            in_use
        });
        if self.retired.len() != before {
            self.arm_ticks();
        }
    }
}

/// One tick of one pipeline: answers the waiters whose time ran out, resumes the admitted.
fn tick(plugin: &Plugin) {
    plugin.publish_host_errors();
    let outcome = plugin.pipeline.tick(&HostStore, host::now());
    for (stream, reply) in &outcome.reject {
        if host::switch_to(*stream) {
            host::send_reply(reply);
        }
    }
    for resume in &outcome.resume {
        host::resume(resume);
    }
}

impl BallastRoot {
    /// The host is done with this root (its replaced configuration's last stream ended, or
    /// the VM stops): every pipeline closes.
    pub fn on_done(&mut self) -> bool {
        let now = host::now();
        let mut closed = 0;
        for plugin in self.plugins() {
            plugin.pipeline.close(&HostStore, now);
            closed += 1;
        }
        // Envoy calls this when a replaced configuration's last stream has ended (or at exit).
        log::info!("root context done: {closed} configuration(s) closed");
        true
    }
}

impl BallastRoot {
    /// A configuration for this root: validated, then its pipeline serves new streams.
    pub fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        let bytes = match abi::plugin_configuration(plugin_configuration_size) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => Vec::new(),
            Err(status) => {
                log::error!("cannot read plugin configuration: {status:?}");
                return false;
            }
        };
        let mut config = match Config::from_json(&bytes) {
            Ok(config) => config,
            Err(err) => {
                log::error!("invalid configuration: {err}");
                return false;
            }
        };
        if !host::switches_contexts() {
            without_queues(&mut config);
        }
        log::info!("{}", summary(&config));
        // Shared-data keys are scoped by root id: two filter configurations on one VM (e.g. a
        // sidecar's inbound and outbound) must not share a budget or a limit.
        let scope = host::property("plugin_root_id")
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| "ballast".to_string());
        let prefix = config.metric_prefix.clone();
        let unmatched = define_unmatched(&prefix);
        let host_errors = define_host_errors(&prefix);
        let classes = config.priority.classes.clone();
        let pipeline = Pipeline::open(config, &HostStore, &scope, host::now(), |set| {
            SetTelemetry::define(&prefix, set, &classes)
        });
        let replaced = self.plugin.replace(Rc::new(Plugin {
            pipeline,
            unmatched,
            host_errors,
        }));
        if let Some(old) = replaced {
            log::info!(
                "configuration replaced; the previous one serves its streams until they end"
            );
            self.retired.push(old);
        }
        self.close_released();
        self.arm_ticks();
        true
    }

    /// The timer: every live pipeline ticks; retired ones no stream holds close.
    pub fn on_tick(&mut self) {
        for plugin in self.plugins() {
            tick(plugin);
        }
        if !self.retired.is_empty() {
            self.close_released();
        }
    }

    /// A stream's context, governed by the active configuration.
    pub fn create_http_context(&self, context_id: u32) -> BallastHttp {
        BallastHttp::new(self.plugin.clone(), context_id)
    }
}

/// Turns every concurrency queue off, for a host that cannot switch contexts: it could never
/// resume a waiter (that happens from a tick or from another stream's callback), so a queued
/// request would hang until its client gave up. A request over the limit is then rejected at
/// once, as by a full queue.
fn without_queues(config: &mut Config) {
    let mut off = 0;
    for set in &mut config.policy_sets {
        if let Some(queue) = set.concurrency.as_mut().map(|c| &mut c.queue) {
            off += usize::from(queue.size > 0);
            queue.size = 0;
        }
    }
    if off > 0 {
        log::warn!("host cannot resume a paused request (proxy_set_effective_context is a no-op): {off} concurrency queue(s) off, requests over the limit are rejected at once");
    }
}

/// One log line describing what was loaded, so an operator can confirm the deployment.
fn summary(config: &Config) -> String {
    let sets: Vec<String> = config
        .policy_sets
        .iter()
        .map(|set| {
            let sections = set.enabled_sections();
            if sections.is_empty() {
                set.name.clone()
            } else {
                format!("{}[{}]", set.name, sections.join(","))
            }
        })
        .collect();
    let default = config
        .routes
        .default
        .and_then(|id| config.policy_set(id))
        .map_or("none", |set| set.name.as_str());
    format!(
        "configured: policy sets {{{}}}, {} route(s), default {}, dry_run {}",
        sets.join(" "),
        config.routes.routes.len(),
        default,
        config.dry_run
    )
}
