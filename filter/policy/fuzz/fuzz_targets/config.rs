//! Configuration parsing and validation: any bytes give a configuration or an error that
//! names a path and a reason, never a panic (a panic in `on_configure` kills the VM).
#![no_main]

use ballast_policy::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Config::from_json(data) {
        Ok(config) => {
            // What the plugin does with an accepted configuration at once.
            for set in &config.policy_sets {
                let _ = set.enabled_sections();
            }
        }
        Err(error) => assert!(!error.reason.is_empty(), "an error says why"),
    }
});
