//! Priority mapping: any header value gives one of the configured classes (or the default),
//! never a panic, and an untrusted peer's value never changes the class.
#![no_main]

use ballast_policy::config::Config;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const CONFIG: &str = r#"{"priority": {"classes": ["critical", "normal", "sheddable"],
    "default": "normal", "values": {"0-7": "critical", "crit": "critical", "24-31": "sheddable"}}}"#;

fn config() -> &'static Config {
    static CONFIG_ONCE: OnceLock<Config> = OnceLock::new();
    CONFIG_ONCE.get_or_init(|| Config::from_json(CONFIG.as_bytes()).unwrap())
}

fuzz_target!(|data: &[u8]| {
    let value = String::from_utf8_lossy(data);
    let priority = &config().priority;
    let (class, _) = priority.classify(Some(&value), true);
    assert!(class.0 < priority.classes.len());
    let (untrusted, ignored) = priority.classify(Some(&value), false);
    assert_eq!(untrusted, priority.default, "an untrusted value is ignored");
    assert!(ignored);
});
