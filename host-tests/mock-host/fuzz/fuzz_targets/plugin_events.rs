//! libFuzzer's driver for the `plugin_events` grammar (`src/plugin_events/`: the events and
//! the properties). Coverage comes from the host's code (which host functions ran, with which
//! outcomes), not from the plugin's, which runs as JIT-compiled wasm; the grammar does the rest.
#![no_main]

#[path = "../src/plugin_events/mod.rs"]
mod plugin_events;

use ballast_mock_host::PluginModule;
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

fn module() -> &'static PluginModule {
    static MODULE: OnceLock<PluginModule> = OnceLock::new();
    MODULE.get_or_init(|| {
        let path = std::env::var_os("BALLAST_WASM")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../../../target/ballast.wasm"
                ))
            });
        PluginModule::load(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run `make build`)", path.display()))
    })
}

fuzz_target!(|scenario: plugin_events::Scenario| {
    let _exercised = plugin_events::run(module(), scenario);
});
