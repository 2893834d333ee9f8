//! The shedding stage of one policy set as one worker VM runs it: rate limits, then
//! throttling, then the admission level, each a refusal with its reason and a count per class.
//!
//! Why this order: a rate limit is a contract (the operator's number), so it is checked first
//! and its refusal says when to come back (429 with `retry-after`); throttling and the level
//! react to overload (503), the throttle to the upstream's refusals, the level to ballast's own
//! queue. What passes goes on to the concurrency limiter with its rank.

use super::level::{AdmissionLevel, Pressure};
use super::rate::{ClassRateLimit, RateDecision};
use super::throttle::{is_refusal, ClassWindow};
use super::{Rank, SheddingConfig};
use crate::config::PriorityId;
use crate::duration::{Nanos, SECOND};
use crate::env::Env;
use crate::metrics::{ClassMetric, Metric, ShedReason};
use crate::reply::{GrpcCode, LocalReply};
use std::borrow::Cow;
use std::cell::RefCell;

/// One policy set's shedding, in this VM.
pub struct SheddingPolicy {
    config: SheddingConfig,
    level: Option<RefCell<AdmissionLevel>>,
    /// Throttling windows by class (empty when throttling is off).
    throttle: RefCell<Vec<ClassWindow>>,
    /// Rate limits by class.
    rates: Vec<Option<ClassRateLimit>>,
}

/// The shared-data key of a shared rate limit.
pub fn rate_key(prefix: &str, set_name: &str, class: &str) -> String {
    format!("{prefix}.ratelimit.v1.{set_name}.{class}")
}

impl SheddingPolicy {
    /// The stage for `config` over `classes` (their names key shared rate limits under
    /// `<prefix>.ratelimit.v1.<set>.<class>`).
    pub fn new(
        config: SheddingConfig,
        classes: &[String],
        prefix: &str,
        set_name: &str,
        now: Nanos,
    ) -> SheddingPolicy {
        let level = config.admission.map(|params| {
            RefCell::new(AdmissionLevel::new(params, Rank::count(classes.len()), now))
        });
        let throttle = match config.throttle {
            Some(_) => classes.iter().map(|_| ClassWindow::new(now)).collect(),
            None => Vec::new(),
        };
        let rates = (0..classes.len())
            .map(|index| {
                let (_, params) = config
                    .rate_limits
                    .iter()
                    .find(|(class, _)| class.0 == index)?;
                let name = classes.get(index)?;
                ClassRateLimit::new(params, rate_key(prefix, set_name, name))
            })
            .collect();
        SheddingPolicy {
            config,
            level,
            throttle: RefCell::new(throttle),
            rates,
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &SheddingConfig {
        &self.config
    }

    /// Whether throttling is on (then the stage needs the upstream's answers).
    pub fn throttles(&self) -> bool {
        self.config.throttle.is_some()
    }

    /// A request of `rank` arrives: pass it on (`Ok`) or refuse it. `grpc` is asked only for
    /// a refusal.
    pub fn arrive(
        &self,
        env: Env<'_>,
        rank: Rank,
        grpc: impl FnOnce() -> bool,
        now: Nanos,
    ) -> Result<(), LocalReply> {
        let class = rank.class;
        if let Some(rate) = self.rates.get(class.0).and_then(Option::as_ref) {
            match rate.check(env.store, now) {
                RateDecision::Allowed => {}
                RateDecision::Contended => env.metrics.add(Metric::SheddingRateLimitContended, 1),
                RateDecision::Limited(wait) => {
                    return Err(self.refuse(env, class, ShedReason::RateLimited, grpc(), wait));
                }
            }
        }
        if let Some(params) = &self.config.throttle {
            let throttled = self
                .throttle
                .borrow_mut()
                .get_mut(class.0)
                .is_some_and(|window| window.throttles(params, now));
            if throttled {
                return Err(self.refuse(env, class, ShedReason::Throttled, grpc(), 0));
            }
        }
        if let Some(level) = &self.level {
            if !level.borrow_mut().admits(rank.index()) {
                return Err(self.refuse(env, class, ShedReason::AdmissionLevel, grpc(), 0));
            }
        }
        env.metrics.add_class(ClassMetric::Admitted, class, 1);
        Ok(())
    }

    /// The upstream answered a request of `class` that passed this stage (`grpc_status` of a
    /// gRPC response, when it has one in its headers).
    pub fn answered(&self, class: PriorityId, status: u16, grpc_status: Option<&str>, now: Nanos) {
        if let Some(params) = &self.config.throttle {
            if let Some(window) = self.throttle.borrow_mut().get_mut(class.0) {
                window.answered(params, is_refusal(status, grpc_status), now);
            }
        }
    }

    /// Whether the admission level sheds some of `rank` now: that rank overflows, and the
    /// limiter's queue serves it newest first (see `concurrency::overflow`).
    pub fn level_sheds(&self, rank: Rank) -> bool {
        self.level
            .as_ref()
            .is_some_and(|level| level.borrow().sheds(rank.index()))
    }

    /// The limiter's queue pressure since the last call; moves the admission level when due.
    pub fn observe(&self, env: Env<'_>, pressure: Pressure, now: Nanos) {
        if let Some(level) = &self.level {
            let mut level = level.borrow_mut();
            if level.observe(pressure, now) {
                env.metrics.set(
                    Metric::SheddingAdmissionLevel,
                    crate::numeric::saturating_u64((level.level() * 100.0).round()),
                );
            }
        }
    }

    /// The current admission level in ranks (all ranks when it is off).
    pub fn level(&self) -> Option<f64> {
        self.level.as_ref().map(|level| level.borrow().level())
    }

    /// The refusal for `reason`, counted for `class`. `wait`: when a rate limit has room again.
    fn refuse(
        &self,
        env: Env<'_>,
        class: PriorityId,
        reason: ShedReason,
        grpc: bool,
        wait: Nanos,
    ) -> LocalReply {
        env.metrics.add_class(ClassMetric::Shed(reason), class, 1);
        let rate_limited = reason == ShedReason::RateLimited;
        let retry_after = if rate_limited {
            u32::try_from(wait.div_ceil(SECOND))
                .unwrap_or(u32::MAX)
                .max(1)
        } else {
            self.config.retry_after_seconds
        };
        let mut headers = vec![("x-ballast-rejected", reason.name().to_string())];
        if retry_after > 0 {
            headers.push(("retry-after", retry_after.to_string()));
        }
        let message: Cow<'static, str> = match &self.config.body {
            Some(body) => Cow::Owned(body.clone()),
            None => Cow::Borrowed(match reason {
                ShedReason::RateLimited => "ballast: rate limit of this priority class reached",
                ShedReason::Throttled => {
                    "ballast: throttled: the upstream is refusing requests of this class"
                }
                _ => "ballast: overloaded: shedding this priority class",
            }),
        };
        let (status, grpc_status) = if rate_limited {
            (self.config.rate_limit_status, GrpcCode::ResourceExhausted)
        } else {
            (self.config.overload_status, GrpcCode::Unavailable)
        };
        LocalReply {
            grpc,
            status,
            grpc_status,
            headers,
            message,
        }
    }
}
