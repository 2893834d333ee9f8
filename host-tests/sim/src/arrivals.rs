//! When requests arrive: piecewise rate schedules with steps and ramps.
//!
//! Why thinning: a time-varying Poisson process is sampled exactly by drawing candidates at the
//! schedule's peak rate and keeping each with probability rate(t)/peak (Lewis–Shedler), so rate
//! steps and ramps need no approximation.

use crate::rng::Rng;
use crate::scenario::{ArrivalKind, RateSpec};
use ballast_policy::duration::{Nanos, SECOND};

/// A rate schedule: requests per second as a function of time.
#[derive(Debug, Clone)]
pub struct RateSchedule {
    points: Vec<(Nanos, f64, bool)>,
    peak: f64,
}

impl RateSchedule {
    /// From the scenario's rate.
    pub fn new(spec: &RateSpec) -> RateSchedule {
        let points: Vec<(Nanos, f64, bool)> = match spec {
            RateSpec::Constant(rps) => vec![(0, *rps, false)],
            RateSpec::Schedule(points) => points.iter().map(|p| (p.at.0, p.rps, p.ramp)).collect(),
        };
        let peak = points.iter().map(|p| p.1).fold(0.0, f64::max);
        RateSchedule { points, peak }
    }

    /// Requests per second at `t`.
    pub fn rate_at(&self, t: Nanos) -> f64 {
        let mut rate = 0.0;
        let mut previous: Option<(Nanos, f64)> = None;
        for &(at, rps, ramp) in &self.points {
            if t < at {
                if ramp {
                    if let Some((from, from_rps)) = previous {
                        let span = (at - from) as f64;
                        let done = (t.saturating_sub(from)) as f64;
                        return from_rps + (rps - from_rps) * (done / span);
                    }
                }
                return rate;
            }
            rate = rps;
            previous = Some((at, rps));
        }
        rate
    }

    /// The highest rate anywhere in the schedule.
    pub fn peak(&self) -> f64 {
        self.peak
    }
}

/// Generates the arrival times of one class.
#[derive(Debug, Clone)]
pub struct ArrivalProcess {
    schedule: RateSchedule,
    kind: ArrivalKind,
    rng: Rng,
    now: Nanos,
}

impl ArrivalProcess {
    /// A process for `spec`, starting at time 0.
    pub fn new(spec: &RateSpec, kind: ArrivalKind, rng: Rng) -> ArrivalProcess {
        ArrivalProcess {
            schedule: RateSchedule::new(spec),
            kind,
            rng,
            now: 0,
        }
    }

    /// The next arrival strictly before `end`, or `None`.
    pub fn next_before(&mut self, end: Nanos) -> Option<Nanos> {
        let peak = self.schedule.peak();
        if peak <= 0.0 {
            return None;
        }
        loop {
            let gap = match self.kind {
                ArrivalKind::Poisson => self.rng.exponential(SECOND as f64 / peak),
                ArrivalKind::Uniform => {
                    let rate = self.schedule.rate_at(self.now).max(peak / 1e6);
                    SECOND as f64 / rate
                }
            };
            self.now = self.now.saturating_add(gap.max(1.0) as Nanos);
            if self.now >= end {
                return None;
            }
            let keep = match self.kind {
                ArrivalKind::Poisson => self.rng.unit() * peak < self.schedule.rate_at(self.now),
                ArrivalKind::Uniform => self.schedule.rate_at(self.now) > 0.0,
            };
            if keep {
                return Some(self.now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{Dur, RatePoint};

    fn schedule() -> RateSpec {
        RateSpec::Schedule(vec![
            RatePoint {
                at: Dur(0),
                rps: 100.0,
                ramp: false,
            },
            RatePoint {
                at: Dur(10 * SECOND),
                rps: 300.0,
                ramp: true,
            },
            RatePoint {
                at: Dur(20 * SECOND),
                rps: 0.0,
                ramp: false,
            },
        ])
    }

    #[test]
    fn steps_and_ramps() {
        let s = RateSchedule::new(&schedule());
        assert_eq!(s.rate_at(0), 100.0);
        assert_eq!(s.rate_at(5 * SECOND), 200.0, "halfway up the ramp");
        assert_eq!(s.rate_at(10 * SECOND), 300.0);
        assert_eq!(s.rate_at(15 * SECOND), 300.0);
        assert_eq!(s.rate_at(25 * SECOND), 0.0);
        assert_eq!(s.peak(), 300.0);
    }

    #[test]
    fn poisson_counts_follow_the_schedule() {
        let mut p = ArrivalProcess::new(&schedule(), ArrivalKind::Poisson, Rng::new(3, 0));
        let mut first = 0;
        let mut second = 0;
        while let Some(t) = p.next_before(30 * SECOND) {
            if t < 10 * SECOND {
                first += 1
            } else if t < 20 * SECOND {
                second += 1
            } else {
                panic!("arrival at {t} after the rate dropped to 0");
            }
        }
        // Expected 2000 on the ramp (mean 200/s) and 3000 after.
        assert!((1850..2150).contains(&first), "{first}");
        assert!((2850..3150).contains(&second), "{second}");
    }

    #[test]
    fn uniform_is_evenly_spaced() {
        let mut p = ArrivalProcess::new(
            &RateSpec::Constant(10.0),
            ArrivalKind::Uniform,
            Rng::new(1, 0),
        );
        let times: Vec<Nanos> = std::iter::from_fn(|| p.next_before(SECOND + 1)).collect();
        assert_eq!(times.len(), 10);
        assert!(times.windows(2).all(|w| w[1] - w[0] == SECOND / 10));
    }
}
