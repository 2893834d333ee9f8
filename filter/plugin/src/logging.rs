//! Log lines and the panic message go to the host through [`crate::abi`], never through a call
//! that can panic.
//!
//! Why not the SDK's logger: it `unwrap()`s the host's answer to every log call, and its panic
//! hook does too, so a host that refuses one log line would turn a log call into a trap.

use crate::abi;

struct HostLogger;

static LOGGER: HostLogger = HostLogger;

/// `proxy_log_level_t` of a `log` level.
fn level(level: log::Level) -> u32 {
    match level {
        log::Level::Trace => 0,
        log::Level::Debug => 1,
        log::Level::Info => 2,
        log::Level::Warn => 3,
        log::Level::Error => 4,
    }
}

impl log::Log for HostLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            // A line the host refuses is lost, and counted by the host layer.
            let _ = abi::log(level(record.level()), &record.args().to_string());
        }
    }

    fn flush(&self) {}
}

/// Installs the logger (info and above) and the panic hook; once per VM.
pub fn init() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
        std::panic::set_hook(Box::new(|info| {
            let _ = abi::log(5, &info.to_string());
        }));
    }
}
