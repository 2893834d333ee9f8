//! The limiter's state shared by every worker: requests in flight and the learned limit.
//!
//! Why one shared record: Envoy runs one VM per worker; a limit enforced per worker would let
//! through anywhere between limit/N and limit×N requests. Admission (`try_acquire`), release
//! and feeding a window's sample to the algorithm are each one compare-and-swap of this record,
//! so in flight never exceeds the limit across workers (except by admissions made when every
//! CAS attempt lost, which the plugin counts).

use super::noload::NoLoadSnapshot;
use super::ProbedLimit;
use super::{
    Aimd, AimdParams, Bounds, Gradient2, Gradient2Params, LimitAlgorithm, Sample, Vegas,
    VegasParams,
};
use crate::duration::Nanos;

/// Which algorithm, with its parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AlgorithmParams {
    /// Gradient2.
    Gradient2(Gradient2Params),
    /// Vegas.
    Vegas(VegasParams),
    /// AIMD.
    Aimd(AimdParams),
    /// A fixed limit.
    Fixed(Bounds),
}

impl AlgorithmParams {
    /// A fresh algorithm.
    pub fn start(&self) -> LimitAlgorithm {
        match *self {
            AlgorithmParams::Gradient2(p) => LimitAlgorithm::Gradient2(Gradient2::new(p)),
            AlgorithmParams::Vegas(p) => LimitAlgorithm::Vegas(Vegas::new(p)),
            AlgorithmParams::Aimd(p) => LimitAlgorithm::Aimd(Aimd::new(p)),
            AlgorithmParams::Fixed(b) => LimitAlgorithm::Fixed(b.initial),
        }
    }

    /// Stable name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            AlgorithmParams::Gradient2(_) => "gradient2",
            AlgorithmParams::Vegas(_) => "vegas",
            AlgorithmParams::Aimd(_) => "aimd",
            AlgorithmParams::Fixed(_) => "fixed",
        }
    }
}

/// Shared limiter record.
#[derive(Debug, Clone)]
pub struct LimiterState {
    /// Requests admitted and not yet released, all workers.
    pub in_flight: u32,
    /// The algorithm with its learned state.
    pub algorithm: LimitAlgorithm,
    /// The last aggregated RTT fed to the algorithm.
    pub last_rtt: Nanos,
}

const ENCODED_LEN: usize = 1 + 4 + 8 + 8 + 8 + 8 + 8 + 8 + 4 + 8 + 8 + 1;

impl LimiterState {
    /// Layout version of [`LimiterState::encode`]; part of the shared-data key, so VMs of two
    /// plugin versions side by side (during a reload) keep separate records instead of
    /// resetting each other's.
    pub const VERSION: u8 = 4;

    /// A fresh record for `params`.
    pub fn new(params: &AlgorithmParams) -> LimiterState {
        LimiterState {
            in_flight: 0,
            algorithm: params.start(),
            last_rtt: 0,
        }
    }

    /// The limit enforced at `now`.
    pub fn limit(&self, now: Nanos) -> u32 {
        self.algorithm.limit_at(now)
    }

    /// The learned no-load RTT (ns; 0 when not learned or the algorithm has none).
    pub fn noload_rtt(&self) -> Nanos {
        let rtt = match &self.algorithm {
            LimitAlgorithm::Gradient2(g) => g.noload_rtt(),
            LimitAlgorithm::Vegas(v) => v.noload_rtt(),
            LimitAlgorithm::Aimd(_) | LimitAlgorithm::Fixed(_) => 0.0,
        };
        rtt as Nanos
    }

    /// Admits one request if a slot is free at `now`.
    pub fn try_acquire(&mut self, now: Nanos) -> bool {
        if self.in_flight < self.limit(now) {
            self.in_flight += 1;
            true
        } else {
            false
        }
    }

    /// Releases one admitted request.
    pub fn release(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// Feeds an aggregated window sample taken at `now`; returns the new limit.
    pub fn observe(&mut self, sample: Sample, now: Nanos) -> u32 {
        self.last_rtt = sample.rtt;
        self.algorithm.update(sample, now)
    }

    /// Bytes for shared data.
    pub fn encode(&self) -> Vec<u8> {
        let (limit, noload) = match &self.algorithm {
            LimitAlgorithm::Gradient2(g) => g.snapshot(),
            LimitAlgorithm::Vegas(v) => v.snapshot(),
            LimitAlgorithm::Aimd(a) => (a.limit(), NoLoadSnapshot::default()),
            LimitAlgorithm::Fixed(l) => (*l, NoLoadSnapshot::default()),
        };
        let mut out = Vec::with_capacity(ENCODED_LEN);
        out.push(Self::VERSION);
        out.extend_from_slice(&self.in_flight.to_le_bytes());
        out.extend_from_slice(&self.last_rtt.to_le_bytes());
        out.extend_from_slice(&limit.to_le_bytes());
        out.extend_from_slice(&noload.rtt.to_le_bytes());
        out.extend_from_slice(&noload.next_probe.to_le_bytes());
        out.extend_from_slice(&noload.probing_since.to_le_bytes());
        out.extend_from_slice(&noload.probe_sum.to_le_bytes());
        out.extend_from_slice(&noload.probe_windows.to_le_bytes());
        out.extend_from_slice(&noload.rise_since.to_le_bytes());
        out.extend_from_slice(&noload.last_fastest.to_le_bytes());
        out.push(
            u8::from(noload.probed)
                | (u8::from(noload.for_rise) << 1)
                | (u8::from(noload.pending_rise) << 2),
        );
        out
    }

    /// Parses [`LimiterState::encode`] output for `params`; `None` when malformed.
    pub fn decode(params: &AlgorithmParams, bytes: &[u8]) -> Option<LimiterState> {
        if bytes.len() != ENCODED_LEN || bytes.first() != Some(&Self::VERSION) {
            return None;
        }
        let u32_at = |at: usize| {
            bytes
                .get(at..at + 4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_le_bytes)
        };
        let u64_at = |at: usize| {
            bytes
                .get(at..at + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)
        };
        let f64_at = |at: usize| u64_at(at).map(f64::from_bits);
        let in_flight = u32_at(1)?;
        let last_rtt = u64_at(5)?;
        let limit = f64_at(13)?;
        let flags = *bytes.get(73)?;
        let noload = NoLoadSnapshot {
            rtt: f64_at(21)?,
            next_probe: u64_at(29)?,
            probing_since: u64_at(37)?,
            probe_sum: f64_at(45)?,
            probe_windows: u32_at(53)?,
            rise_since: u64_at(57)?,
            last_fastest: f64_at(65)?,
            probed: flags & 1 != 0,
            for_rise: flags & 2 != 0,
            pending_rise: flags & 4 != 0,
        };
        let algorithm = match *params {
            AlgorithmParams::Gradient2(p) => {
                LimitAlgorithm::Gradient2(Gradient2::restore(p, (limit, noload)))
            }
            AlgorithmParams::Vegas(p) => LimitAlgorithm::Vegas(Vegas::restore(p, (limit, noload))),
            AlgorithmParams::Aimd(p) => LimitAlgorithm::Aimd(Aimd::restore(p, limit)),
            AlgorithmParams::Fixed(b) => LimitAlgorithm::Fixed(b.initial),
        };
        Some(LimiterState {
            in_flight,
            algorithm,
            last_rtt,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::concurrency::noload::ProbeParams;
    use crate::concurrency::script::steady;
    use crate::duration::{MILLISECOND, SECOND};
    use crate::test_support::test;

    fn gradient() -> AlgorithmParams {
        AlgorithmParams::Gradient2(Gradient2Params {
            bounds: Bounds {
                initial: 3.0,
                min: 1.0,
                max: 100.0,
            },
            smoothing: 0.2,
            rtt_tolerance: 1.5,
            queue_size: 4.0,
            probe: ProbeParams {
                interval: 10 * SECOND,
                duration: 500 * MILLISECOND,
            },
        })
    }

    #[test]
    fn acquire_up_to_the_limit_then_release() {
        let mut s = LimiterState::new(&gradient());
        assert!(s.try_acquire(0) && s.try_acquire(0) && s.try_acquire(0));
        assert!(!s.try_acquire(0), "limit 3");
        s.release();
        assert!(s.try_acquire(0));
        for _ in 0..10 {
            s.release();
        }
        assert_eq!(s.in_flight, 0, "release never goes below zero");
    }

    #[test]
    fn round_trips_learned_state() {
        let params = gradient();
        let mut s = LimiterState::new(&params);
        s.in_flight = 2;
        for (i, sample) in (1..).zip(steady(150, 10, 100)) {
            s.observe(sample, i * 100 * MILLISECOND);
        }
        assert!(
            matches!(&s.algorithm, LimitAlgorithm::Gradient2(g) if g.noload_rtt() > 0.0),
            "learned a no-load RTT"
        );
        let decoded = LimiterState::decode(&params, &s.encode()).unwrap();
        assert_eq!(decoded.in_flight, 2);
        assert_eq!(decoded.limit(0), s.limit(0));
        assert_eq!(decoded.last_rtt, s.last_rtt);
        assert_eq!(decoded.encode(), s.encode());
        assert!(LimiterState::decode(&params, &[1, 2, 3]).is_none());
        let fixed = AlgorithmParams::Fixed(Bounds {
            initial: 7.0,
            min: 7.0,
            max: 7.0,
        });
        assert_eq!(LimiterState::new(&fixed).limit(0), 7);
    }
}
