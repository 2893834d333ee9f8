//! The retry stage at the response: settling a request's reservation and deciding the final
//! mark the proxies above see (see [`crate::retry::chain`]).
//!
//! Why apart from [`super::exchange`]: it is the one response step that reads peers (the
//! upstream that may have marked the response, the downstream that may not see marks) and
//! edits headers both ways; the exchange only calls it for a response that reached the router.

use super::exchange::{ResponseView, Stages};
use crate::duration::Nanos;
use crate::headers::HeaderEdit;
use crate::metrics::Metric;
use crate::retry::chain;
use crate::retry::policy::{FinalResponse, RetryPolicy, ATTEMPT_COUNT_HEADER};
use crate::retry::RetryPlan;

/// Settles the retry plan at a response that reached the router: the refund, the final
/// mark for the hops above (toward a downstream that is not trusted, only gRPC's pushback:
/// the internal marks of a failure are removed), the explain header. Peers are looked up only
/// when a mark is involved.
pub(super) fn settle_retries(
    stages: &Stages<'_>,
    retry: &RetryPolicy,
    plan: &RetryPlan,
    response: &mut dyn ResponseView,
    status: u16,
    grpc_request: bool,
    now: Nanos,
) -> Vec<HeaderEdit> {
    // A gRPC failure is a trailers-only response: its status is in the headers (the only
    // place Envoy's router looks for retries). Marks matter only on failures.
    let grpc_status = if status < 500 {
        response.header("grpc-status")
    } else {
        None
    };
    let grpc = grpc_request || grpc_status.is_some();
    let failed = chain::is_retriable_failure(status, grpc_status.as_deref());
    let (ratelimited, final_mark) = if failed {
        (
            response.header(chain::ENVOY_RATELIMITED_HEADER),
            response.header(chain::FINAL_MARK_HEADER),
        )
    } else {
        (None, None)
    };
    let marked = chain::carries_mark(final_mark.as_deref(), ratelimited.as_deref());
    // A failure marked below is final if the hop that marked it is trusted; an untrusted
    // hop's marks are not passed on (the router here honoured it anyway: a mark only takes
    // retries away).
    let upstream_trusted = marked.then(|| {
        let address = response.upstream_address();
        trusted(stages, address, || response.upstream_principal())
    });
    if upstream_trusted == Some(false) {
        stages.env.metrics.add(Metric::RetryMarksUntrusted, 1);
    }
    let upstream_final = upstream_trusted == Some(true);
    // Attempts matter only to refund a reservation: with none, no retry could be made.
    let attempts = if plan.reserved > 0 {
        response.header(ATTEMPT_COUNT_HEADER)
    } else {
        None
    };
    let settled = retry.on_response(
        stages.env,
        plan,
        FinalResponse {
            failed,
            attempt_count: attempts.as_deref(),
            upstream_final,
        },
        now,
    );
    let mut edits: Vec<HeaderEdit> = Vec::new();
    if let Some(explained) = settled.explanation {
        edits.push((explained.header.into(), Some(explained.value)));
    }
    let rules = retry.chain();
    let toward_untrusted =
        (marked || settled.mark.is_some()) && rules.strip_marks_to_untrusted && {
            let address = response.downstream_address();
            !trusted(stages, address, || response.downstream_principal())
        };
    if let (Some(_), true) = (settled.mark, grpc) {
        // gRPC's own "do not retry" is meant for clients: it goes to every peer.
        edits.push((chain::GRPC_PUSHBACK_HEADER.into(), Some("-1".into())));
    }
    match settled.mark {
        Some(reason) if !toward_untrusted => {
            stages.env.metrics.add(Metric::RetryFinalMarksEmitted, 1);
            edits.push((chain::ENVOY_RATELIMITED_HEADER.into(), Some("true".into())));
            edits.push((
                chain::FINAL_MARK_HEADER.into(),
                Some(reason.as_str().into()),
            ));
        }
        _ if toward_untrusted || upstream_trusted == Some(false) => {
            if toward_untrusted && marked {
                stages.env.metrics.add(Metric::RetryMarksStripped, 1);
            }
            if ratelimited.is_some() {
                edits.push((chain::ENVOY_RATELIMITED_HEADER.into(), None));
            }
            if final_mark.is_some() {
                edits.push((chain::FINAL_MARK_HEADER.into(), None));
            }
        }
        _ => {}
    }
    edits
}

/// Whether a peer at `address` is trusted; its principal is looked up only when
/// `trusted_peers` names principals.
fn trusted(
    stages: &Stages<'_>,
    address: Option<String>,
    principal: impl FnOnce() -> Option<String>,
) -> bool {
    let principal = if stages.trusted_peers.needs_principal() {
        principal()
    } else {
        None
    };
    stages
        .trusted_peers
        .is_trusted(address.as_deref(), principal.as_deref())
}
