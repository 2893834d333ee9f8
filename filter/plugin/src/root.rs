//! The root context: configuration in, the policy pipeline out, ticks through.
//!
//! Why reject loudly: `on_configure` is the only moment a bad configuration can be refused
//! before it meets traffic. Returning `false` makes Envoy fail the listener update (or refuse to
//! start), and the error-level log line carries the JSON path and reason from the policy crate.

use crate::abi;
use crate::host::{self, HostStore};
use crate::http::{BallastHttp, Plugin};
use crate::metrics::{define_host_errors, define_unmatched, SetTelemetry};
use ballast_policy::config::Config;
use ballast_policy::pipeline::{Pipeline, TickNeed};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;
use std::rc::Rc;
use std::time::Duration;

/// The plugin's root context (one per VM and plugin instance).
#[derive(Default)]
pub struct BallastRoot {
    plugin: Option<Rc<Plugin>>,
}

impl Context for BallastRoot {}

impl RootContext for BallastRoot {
    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        let bytes = match abi::plugin_configuration(plugin_configuration_size) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => Vec::new(),
            Err(status) => {
                log::error!("cannot read plugin configuration: {status:?}");
                return false;
            }
        };
        let config = match Config::from_json(&bytes) {
            Ok(config) => config,
            Err(err) => {
                log::error!("invalid configuration: {err}");
                return false;
            }
        };
        log::info!("{}", summary(&config));
        // Shared-data keys are scoped by root id: two filter configurations on one VM (e.g. a
        // sidecar's inbound and outbound) must not share a budget or a limit.
        let scope = host::property(&["plugin_root_id"])
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| "ballast".to_string());
        let prefix = config.metric_prefix.clone();
        let unmatched = define_unmatched(&prefix);
        let host_errors = define_host_errors(&prefix);
        let classes = config.priority.classes.clone();
        let pipeline = Pipeline::open(config, &HostStore, &scope, host::now(), |set| {
            SetTelemetry::define(&prefix, set, &classes)
        });
        let period = match pipeline.tick_need() {
            TickNeed::Fast => Some(Duration::from_millis(10)),
            TickNeed::Slow => Some(Duration::from_secs(1)),
            TickNeed::None => None,
        };
        if let Some(period) = period {
            let period_ms = u32::try_from(period.as_millis()).unwrap_or(u32::MAX);
            let _ = abi::set_tick_period_ms(period_ms);
        }
        self.plugin = Some(Rc::new(Plugin {
            pipeline,
            unmatched,
            host_errors,
        }));
        true
    }

    fn on_tick(&mut self) {
        let Some(plugin) = &self.plugin else {
            return;
        };
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

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(BallastHttp::new(self.plugin.clone(), context_id)))
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
