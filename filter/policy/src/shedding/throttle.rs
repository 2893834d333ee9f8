//! Client-side throttling (Google SRE book, "Handling Overload"): when the upstream refuses
//! much of what it is sent, stop sending most of what it would refuse.
//!
//! Per class, over a sliding window of `BUCKETS` buckets: `requests` (everything this stage
//! let through that got an upstream answer, plus what it throttled itself) and `accepts`
//! (upstream answers that were not overload refusals: 429/503, gRPC RESOURCE_EXHAUSTED or
//! UNAVAILABLE). A request is throttled with probability `max(0, (requests − K × accepts) /
//! (requests + 1))`, at most `max_reject_probability`, and only above `min_rps`. Requests
//! refused by ballast's own later stages (admission level, limiter) count neither way: they
//! say nothing about the upstream, and counting them would make the throttle linger after an
//! overload ballast itself absorbed. Rejections are spread exactly (an accumulator), not drawn.

use super::ThrottleParams;
use crate::duration::{Nanos, SECOND};
use crate::numeric::approx_f64;

const BUCKETS: usize = 10;

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    requests: u64,
    accepts: u64,
}

/// One class's window.
#[derive(Debug, Clone)]
pub struct ClassWindow {
    buckets: [Bucket; BUCKETS],
    /// Start of the current bucket.
    current_start: Nanos,
    current: usize,
    credit: f64,
}

impl ClassWindow {
    /// An empty window.
    pub fn new(now: Nanos) -> ClassWindow {
        ClassWindow {
            buckets: [Bucket::default(); BUCKETS],
            current_start: now,
            current: 0,
            credit: 0.0,
        }
    }

    fn bucket_len(params: &ThrottleParams) -> Nanos {
        (params.window / BUCKETS as u64).max(1)
    }

    /// Moves the current bucket to `now`, clearing the buckets passed over.
    fn advance(&mut self, params: &ThrottleParams, now: Nanos) {
        let len = Self::bucket_len(params);
        if now < self.current_start {
            // The clock stepped back: count from here.
            self.current_start = now;
            return;
        }
        let steps = (now - self.current_start) / len;
        if steps == 0 {
            return;
        }
        let clear = usize::try_from(steps.min(BUCKETS as u64)).unwrap_or(BUCKETS);
        for _ in 0..clear {
            self.current = (self.current + 1) % BUCKETS;
            if let Some(bucket) = self.buckets.get_mut(self.current) {
                *bucket = Bucket::default();
            }
        }
        self.current_start = self.current_start.saturating_add(steps.saturating_mul(len));
    }

    fn totals(&self) -> Bucket {
        self.buckets
            .iter()
            .fold(Bucket::default(), |sum, b| Bucket {
                requests: sum.requests.saturating_add(b.requests),
                accepts: sum.accepts.saturating_add(b.accepts),
            })
    }

    fn record(&mut self, requests: u64, accepts: u64) {
        if let Some(bucket) = self.buckets.get_mut(self.current) {
            bucket.requests = bucket.requests.saturating_add(requests);
            bucket.accepts = bucket.accepts.saturating_add(accepts);
        }
    }

    /// The rejection probability now.
    pub fn probability(&mut self, params: &ThrottleParams, now: Nanos) -> f64 {
        self.advance(params, now);
        let totals = self.totals();
        let seconds = approx_f64(params.window) / approx_f64(SECOND);
        let requests = approx_f64(totals.requests);
        if seconds <= 0.0 || requests / seconds < params.min_rps {
            return 0.0;
        }
        let accepts = approx_f64(totals.accepts);
        let p = (requests - params.k * accepts) / (requests + 1.0);
        // Not `clamp`: its panic path (bounds out of order) drags float printing into the
        // .wasm (18 KB); `max_reject_probability` is validated into (0, 1] and `p` is finite.
        p.max(0.0).min(params.max_reject_probability)
    }

    /// Whether a request arriving `now` is throttled; a throttled request is counted here.
    pub fn throttles(&mut self, params: &ThrottleParams, now: Nanos) -> bool {
        let p = self.probability(params, now);
        if p <= 0.0 {
            return false;
        }
        self.credit += p;
        if self.credit >= 1.0 {
            self.credit -= 1.0;
            self.record(1, 0);
            true
        } else {
            false
        }
    }

    /// An upstream answer to a request this stage let through: accepted unless `refused`.
    pub fn answered(&mut self, params: &ThrottleParams, refused: bool, now: Nanos) {
        self.advance(params, now);
        self.record(1, u64::from(!refused));
    }
}

/// Whether an upstream answer is an overload refusal, for the throttle.
pub fn is_refusal(status: u16, grpc_status: Option<&str>) -> bool {
    if status == 429 || status == 503 {
        return true;
    }
    matches!(grpc_status.map(str::trim), Some("8") | Some("14"))
}
