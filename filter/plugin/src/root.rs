//! The root context: configuration in, compiled policy out.
//!
//! Why reject loudly: `on_configure` is the only moment a bad configuration can be refused
//! before it meets traffic. Returning `false` makes Envoy fail the listener update (or refuse to
//! start), and the error-level log line carries the JSON path and reason from the policy crate.

use crate::concurrency::Limiter;
use crate::http::BallastHttp;
use crate::metrics::Metrics;
use crate::retry::Budget;
use ballast_policy::config::Config;
use ballast_policy::duration::Nanos;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType};
use std::rc::Rc;

/// What every HTTP context of this VM shares: the configuration and its metric handles.
pub struct Compiled {
    /// The validated configuration.
    pub config: Config,
    /// Metric handles, indexed like `config.policy_sets`.
    pub metrics: Metrics,
    /// Retry budgets, indexed like `config.policy_sets` (`None` where a set has none).
    pub budgets: Vec<Option<Budget>>,
    /// Concurrency limiters, indexed like `config.policy_sets`.
    pub limiters: Vec<Option<Limiter>>,
}

/// The host's clock in nanoseconds since the Unix epoch (0 if the host cannot tell).
pub fn now() -> Nanos {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| u64::try_from(d.as_nanos()).ok())
        .unwrap_or(0)
}

/// How often budgets flush locally counted first attempts and refresh their gauges.
const BUDGET_FLUSH_PERIOD: Nanos = 1_000_000_000;
/// Tick period without limiters (budgets only) and with them (queued requests wait on ticks).
const SLOW_TICK: std::time::Duration = std::time::Duration::from_secs(1);
const FAST_TICK: std::time::Duration = std::time::Duration::from_millis(10);

/// The plugin's root context (one per VM and plugin instance).
#[derive(Default)]
pub struct BallastRoot {
    compiled: Option<Rc<Compiled>>,
    last_budget_flush: Nanos,
}

impl Context for BallastRoot {}

impl RootContext for BallastRoot {
    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        let bytes = match hostcalls::get_buffer(
            BufferType::PluginConfiguration,
            0,
            plugin_configuration_size,
        ) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => Vec::new(),
            Err(status) => {
                log::error!("cannot read plugin configuration: {status:?}");
                return false;
            }
        };
        match Config::from_json(&bytes) {
            Ok(config) => {
                let metrics = Metrics::define(&config);
                // Shared-data keys are scoped by root id: two filter configurations on one VM
                // (e.g. a sidecar's inbound and outbound) must not share a budget or a limit.
                let scope = crate::request::property_text(&["plugin_root_id"])
                    .filter(|id| !id.is_empty())
                    .unwrap_or_else(|| "ballast".to_string());
                let budgets: Vec<Option<Budget>> = config
                    .policy_sets
                    .iter()
                    .map(|set| {
                        set.retry_budget
                            .map(|params| Budget::open(&scope, &set.name, params))
                    })
                    .collect();
                let started = now();
                let limiters: Vec<Option<Limiter>> = config
                    .policy_sets
                    .iter()
                    .zip(&metrics.policy_sets)
                    .map(|(set, m)| match (&set.concurrency, m.concurrency) {
                        (Some(c), Some(cm)) => {
                            Some(Limiter::open(&scope, &set.name, c.clone(), cm, started))
                        }
                        _ => None,
                    })
                    .collect();
                if limiters.iter().any(Option::is_some) {
                    let _ = hostcalls::set_tick_period(FAST_TICK);
                } else if budgets.iter().any(Option::is_some) {
                    let _ = hostcalls::set_tick_period(SLOW_TICK);
                }
                log::info!("{}", summary(&config));
                self.compiled = Some(Rc::new(Compiled {
                    config,
                    metrics,
                    budgets,
                    limiters,
                }));
                true
            }
            Err(err) => {
                log::error!("invalid configuration: {err}");
                false
            }
        }
    }

    fn on_tick(&mut self) {
        let Some(compiled) = &self.compiled else {
            return;
        };
        let now = now();
        for limiter in compiled.limiters.iter().flatten() {
            limiter.tick(now);
        }
        if now.saturating_sub(self.last_budget_flush) < BUDGET_FLUSH_PERIOD {
            return;
        }
        self.last_budget_flush = now;
        for (budget, metrics) in compiled.budgets.iter().zip(&compiled.metrics.policy_sets) {
            if let (Some(budget), Some(retry)) = (budget, metrics.retry) {
                if let Some(available) = budget.flush(now) {
                    if let Some(gauge) = retry.budget_available {
                        gauge.set(available);
                    }
                }
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(BallastHttp::new(
            self.compiled.clone(),
            context_id,
        )))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
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
