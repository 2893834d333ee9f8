//! Every deadline header parser, alone and together through `deadline::read`: any values give a
//! deadline or none, never a panic; what ballast forwards parses back.
#![no_main]

use ballast_policy::deadline::{self, wire, Arrived, DeadlineConfig, Hints};
use libfuzzer_sys::fuzz_target;

/// Splits the input into up to four header values at 0xFF bytes (lossy UTF-8, as the plugin
/// reads headers).
fn values(data: &[u8]) -> Vec<String> {
    data.split(|b| *b == 0xFF)
        .take(4)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let v = values(data);
    let get = |i: usize| v.get(i).cloned();
    for value in &v {
        if let Some(nanos) = wire::parse_grpc_timeout(value) {
            let again = wire::parse_grpc_timeout(&wire::format_grpc_timeout(nanos));
            assert!(again.is_some(), "ballast's own grpc-timeout parses: {value:?}");
        }
        if let Some(nanos) = wire::parse_timeout_ms(value) {
            assert!(wire::parse_timeout_ms(&wire::format_timeout_ms(nanos)).is_some());
        }
        let _ = wire::is_no_timeout_ms(value);
        if let Some(at) = wire::parse_epoch_ms(value) {
            assert!(wire::parse_epoch_ms(&wire::format_epoch_ms(at)).is_some());
        }
    }
    let hints = Hints {
        grpc_timeout: get(0),
        envoy_expected: get(1),
        envoy_upstream: get(2),
        absolute: get(3),
    };
    let now = 1_700_000_000_000_000_000u64;
    let configs = [
        DeadlineConfig::default(),
        DeadlineConfig {
            default: Some(1_000_000_000),
            max: Some(5_000_000_000),
            ..DeadlineConfig::default()
        },
    ];
    for config in &configs {
        for trusted in [true, false] {
            let reading = deadline::read(config, &hints, || Arrived { at: now, now }, || trusted);
            if let (Some(max), Some(deadline)) = (config.max, reading.deadline) {
                assert!(deadline.at <= now.saturating_add(max), "max caps every deadline");
            }
        }
    }
});
