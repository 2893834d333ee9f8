//! Settings of the demo upstream: the startup configuration ([`UpstreamConfig`]), the part
//! that can change while it runs ([`Settings`]) and a partial update of it ([`ConfigPatch`],
//! the body of `POST /__demo/config`). Kept apart from the server so validation is testable.

use std::net::{Ipv4Addr, SocketAddr};

use serde::{Deserialize, Deserializer, Serialize};

use crate::Error;

/// The behaviour of the service model; every field can be changed live.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Settings {
    /// How many requests are served at once; the rest wait in a FIFO queue. `0` = unlimited.
    pub capacity: usize,
    /// How many requests may wait for a slot before new ones are answered 503 at once.
    /// `None` = unlimited; `Some(0)` = never queue.
    pub queue_limit: Option<usize>,
    /// How long each request holds its slot (ms); `x-demo-delay-ms` overrides it.
    pub service_time_ms: u64,
    /// Uniform random extra service time in `[0, service_jitter_ms]` (seeded).
    pub service_jitter_ms: u64,
    /// Injected latency (ms) added to every request's service time, also while holding the slot.
    pub extra_latency_ms: u64,
    /// Fraction of requests answered with `failure_status`; `x-demo-fail-ratio` overrides it.
    pub failure_ratio: f64,
    /// The status of an injected failure.
    pub failure_status: u16,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            capacity: 0,
            queue_limit: None,
            service_time_ms: 0,
            service_jitter_ms: 0,
            extra_latency_ms: 0,
            failure_ratio: 0.0,
            failure_status: 503,
        }
    }
}

impl Settings {
    /// Checks ranges: the failure ratio is in `[0, 1]` and the failure status is 200..=599.
    pub fn validate(&self) -> Result<(), Error> {
        check_ratio("failure_ratio", self.failure_ratio)?;
        check_status("failure_status", self.failure_status)?;
        Ok(())
    }
}

/// Startup configuration: where to listen, the seed, and the initial [`Settings`].
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamConfig {
    /// Must be a loopback address; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Seed of the RNGs behind failure injection and jitter.
    pub seed: u64,
    /// Initial live settings.
    pub settings: Settings,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            seed: 1,
            settings: Settings::default(),
        }
    }
}

impl UpstreamConfig {
    /// Refuses non-loopback listen addresses and out-of-range settings.
    pub fn validate(&self) -> Result<(), Error> {
        check_loopback(self.listen)?;
        self.settings.validate()
    }
}

/// `Ok` only for loopback addresses (127.0.0.0/8, ::1).
pub fn check_loopback(addr: SocketAddr) -> Result<(), Error> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(Error::NonLoopback(addr))
    }
}

pub(crate) fn check_ratio(name: &str, ratio: f64) -> Result<(), Error> {
    if ratio.is_finite() && (0.0..=1.0).contains(&ratio) {
        Ok(())
    } else {
        Err(Error::InvalidConfig(format!(
            "{name} must be between 0.0 and 1.0, got {ratio}"
        )))
    }
}

pub(crate) fn check_status(name: &str, status: u16) -> Result<(), Error> {
    if (200..=599).contains(&status) {
        Ok(())
    } else {
        Err(Error::InvalidConfig(format!(
            "{name} must be an HTTP status between 200 and 599, got {status}"
        )))
    }
}

/// A partial update of [`Settings`]; absent fields keep their value. Unknown fields are
/// rejected. `"queue_limit": null` makes the queue unlimited again.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigPatch {
    /// New [`Settings::capacity`].
    pub capacity: Option<usize>,
    /// New [`Settings::queue_limit`]: absent = keep, `null` = unlimited, `n` = limit.
    #[serde(default, deserialize_with = "present")]
    pub queue_limit: Option<Option<usize>>,
    /// New [`Settings::service_time_ms`].
    pub service_time_ms: Option<u64>,
    /// New [`Settings::service_jitter_ms`].
    pub service_jitter_ms: Option<u64>,
    /// New [`Settings::extra_latency_ms`].
    pub extra_latency_ms: Option<u64>,
    /// New [`Settings::failure_ratio`].
    pub failure_ratio: Option<f64>,
    /// New [`Settings::failure_status`].
    pub failure_status: Option<u16>,
}

/// Distinguishes a field given as `null` (`Some(None)`) from an absent one (`None`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<usize>>, D::Error> {
    Option::<usize>::deserialize(d).map(Some)
}

impl ConfigPatch {
    /// Parses a JSON body; the error message names the offending field.
    pub fn from_json(body: &[u8]) -> Result<Self, Error> {
        serde_json::from_slice(body)
            .map_err(|e| Error::InvalidConfig(format!("bad /__demo/config body: {e}")))
    }

    /// The settings with this patch applied, validated; `current` is left untouched.
    pub fn apply_to(&self, current: &Settings) -> Result<Settings, Error> {
        let mut s = current.clone();
        if let Some(v) = self.capacity {
            s.capacity = v;
        }
        if let Some(v) = self.queue_limit {
            s.queue_limit = v;
        }
        if let Some(v) = self.service_time_ms {
            s.service_time_ms = v;
        }
        if let Some(v) = self.service_jitter_ms {
            s.service_jitter_ms = v;
        }
        if let Some(v) = self.extra_latency_ms {
            s.extra_latency_ms = v;
        }
        if let Some(v) = self.failure_ratio {
            s.failure_ratio = v;
        }
        if let Some(v) = self.failure_status {
            s.failure_status = v;
        }
        s.validate()?;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_only() {
        assert!(check_loopback("127.0.0.1:0".parse().unwrap()).is_ok());
        assert!(check_loopback("[::1]:80".parse().unwrap()).is_ok());
        for bad in ["0.0.0.0:0", "10.1.2.3:80", "[::]:0"] {
            let err = check_loopback(bad.parse().unwrap()).unwrap_err();
            assert!(matches!(err, Error::NonLoopback(_)), "{bad}");
            assert!(err.to_string().contains("loopback"), "{err}");
        }
    }

    #[test]
    fn patch_applies_only_given_fields() {
        let p = ConfigPatch::from_json(br#"{"failure_ratio":0.5,"capacity":4}"#).unwrap();
        let s = p.apply_to(&Settings::default()).unwrap();
        assert_eq!(s.failure_ratio, 0.5);
        assert_eq!(s.capacity, 4);
        assert_eq!(s.service_time_ms, 0);
        assert_eq!(s.failure_status, 503);
    }

    #[test]
    fn patch_queue_limit_null_vs_absent() {
        let base = Settings {
            queue_limit: Some(3),
            ..Settings::default()
        };
        let keep = ConfigPatch::from_json(b"{}")
            .unwrap()
            .apply_to(&base)
            .unwrap();
        assert_eq!(keep.queue_limit, Some(3));
        let clear = ConfigPatch::from_json(br#"{"queue_limit":null}"#).unwrap();
        assert_eq!(clear.apply_to(&base).unwrap().queue_limit, None);
    }

    #[test]
    fn patch_rejects_unknown_fields_and_bad_ranges() {
        let err = ConfigPatch::from_json(br#"{"capacty":1}"#).unwrap_err();
        assert!(err.to_string().contains("capacty"), "{err}");
        let p = ConfigPatch::from_json(br#"{"failure_ratio":1.5}"#).unwrap();
        assert!(p.apply_to(&Settings::default()).is_err());
        let p = ConfigPatch::from_json(br#"{"failure_status":99}"#).unwrap();
        assert!(p.apply_to(&Settings::default()).is_err());
    }
}
