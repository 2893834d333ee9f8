//! Shared-state records: whatever bytes are in shared data (corrupted, foreign, from another
//! version) decode to a state or to nothing, never a panic; a decoded state encodes to bytes
//! that decode to the same state.
#![no_main]

use ballast_policy::concurrency::holders::Holders;
use ballast_policy::concurrency::LimiterState;
use ballast_policy::config::Config;
use ballast_policy::retry::BudgetState;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const CONFIG: &str = r#"{"policy_sets": {"g": {"concurrency": {}},
    "v": {"concurrency": {"algorithm": "vegas"}}, "a": {"concurrency": {"algorithm": "aimd"}},
    "f": {"concurrency": {"algorithm": "fixed", "initial_limit": 7}}}}"#;

fn config() -> &'static Config {
    static CONFIG_ONCE: OnceLock<Config> = OnceLock::new();
    CONFIG_ONCE.get_or_init(|| Config::from_json(CONFIG.as_bytes()).unwrap())
}

fuzz_target!(|data: &[u8]| {
    if let Some(budget) = BudgetState::decode(data) {
        assert_eq!(BudgetState::decode(&budget.encode()), Some(budget));
    }
    if let Some(holders) = Holders::decode(data) {
        let mut bytes = Vec::with_capacity(holders.encoded_len());
        holders.encode_into(&mut bytes);
        assert!(Holders::decode(&bytes).is_some(), "holders re-encode");
    }
    for set in &config().policy_sets {
        let Some(concurrency) = &set.concurrency else {
            continue;
        };
        if let Some(state) = LimiterState::decode(&concurrency.algorithm, data) {
            let bytes = state.encode();
            assert!(
                LimiterState::decode(&concurrency.algorithm, &bytes).is_some(),
                "limiter state re-encodes"
            );
            let _ = state.limit(1_000_000_000);
            let _ = state.in_flight();
        }
    }
});
