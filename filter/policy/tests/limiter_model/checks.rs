//! The checks against the truth: that a stream the limiter resumes is the next waiter of the
//! same worker still before its time to leave, what the streams really hold and wait for, the
//! record and the last writer's gauges against them, and the settling pause after which the
//! limit and "no request waits beside a free slot" must hold. They are apart so that the
//! properties the module doc of `main.rs` lists can be read against the code that asserts them,
//! without the operations around them.

use crate::world::{Model, Phase, Stream};
use ballast_policy::duration::MILLISECOND;
use ballast_policy::metrics::Metric;
use ballast_policy::pipeline::Resume;

impl Model {
    /// The limiter named `resumed` as holding a slot now: it must be a stream of the same
    /// worker that is still waiting, and not yet past the time it had to leave by.
    pub(crate) fn resume(&mut self, worker: usize, resumed: Option<Resume>, by_tick: bool) {
        let Some(id) = resumed.map(|r| r.stream) else {
            return;
        };
        if by_tick {
            self.seen.resumed_by_tick += 1;
        } else {
            self.seen.handed_over += 1;
        }
        let (ctx, now) = (self.ctx(), self.now);
        assert!(
            self.streams.iter().any(|s| s.id == id),
            "{ctx}: resumed stream {id} is not live"
        );
        // The queue's order among this worker's waiters that can still be served (ids grow
        // with arrival).
        let live = self.streams.iter().filter(|s| {
            s.worker == worker
                && matches!(s.phase, Phase::Waiting { leave_by, .. } if leave_by > now)
        });
        let next = if self.lifo {
            live.map(|s| s.id).max()
        } else {
            live.map(|s| s.id).min()
        };
        assert_eq!(
            Some(id),
            next,
            "{ctx}: resumed stream {id} out of {} order",
            if self.lifo { "lifo" } else { "fifo" }
        );
        let stream = self.streams.iter_mut().find(|s| s.id == id).unwrap();
        assert_eq!(stream.worker, worker, "{ctx}: resumed on another worker");
        let Phase::Waiting { leave_by, .. } = stream.phase else {
            panic!(
                "{ctx}: resumed stream {id} was not waiting but {:?}",
                stream.phase
            );
        };
        assert!(
            now < leave_by,
            "{ctx}: stream {id} got a slot {} ns after it had to leave",
            now - leave_by
        );
        stream.phase = Phase::Forwarded;
    }
    fn holds_slot(&self, stream: &Stream) -> bool {
        match stream.phase {
            Phase::Forwarded => true,
            Phase::Streaming => self.end_of_stream,
            Phase::Waiting { .. } => false,
        }
    }

    /// (holding a slot, of which admitted failing open, waiting).
    pub(crate) fn truth(&self) -> (usize, usize, usize) {
        let holding: Vec<&Stream> = self.streams.iter().filter(|s| self.holds_slot(s)).collect();
        let fail_open = holding.iter().filter(|s| s.fail_open).count();
        let waiting = self
            .streams
            .iter()
            .filter(|s| matches!(s.phase, Phase::Waiting { .. }))
            .count();
        (holding.len(), fail_open, waiting)
    }

    /// After an operation, with no lost race since the last settling pause: every slot in use
    /// is reserved in the record, the reservations stay within the limit (beyond fail-open
    /// admissions; not in dry run, which counts requests over it), and while nobody leases
    /// spare slots the record's in-flight total is exact.
    pub(crate) fn check_reservations(&mut self) {
        let ctx = self.ctx();
        let record = self.record();
        let (holding, fail_open, waiting) = self.truth();
        let reserved = usize::try_from(record.reserved()).unwrap();
        let in_flight = usize::try_from(record.in_flight()).unwrap();
        assert!(
            holding <= reserved,
            "{ctx}: {holding} streams hold a slot, {reserved} are reserved in the record"
        );
        if !self.dry_run {
            assert!(
                reserved <= self.limit + fail_open,
                "{ctx}: {reserved} slots reserved, over the limit of {} (+{fail_open} failed \
                 open)",
                self.limit
            );
        }
        if reserved == in_flight {
            assert_eq!(
                in_flight, holding,
                "{ctx}: in flight in the record against the streams, without lost races or leases"
            );
            self.seen.exact += 1;
        } else {
            self.seen.leased += 1;
            self.seen.waited_beside_a_lease += u64::from(waiting > 0);
        }
    }

    /// The record's totals against the streams, and the last writer's gauges against the
    /// record (in flight only while nobody leases spare slots: a worker that does counts its
    /// own requests, not its entry, in the gauge).
    pub(crate) fn check_bookkeeping(&self, what: &str) {
        let ctx = self.ctx();
        let record = self.record();
        let (holding, _, waiting) = self.truth();
        let leased = record.reserved() != record.in_flight();
        let in_flight = usize::try_from(record.in_flight()).unwrap();
        let queued = usize::try_from(record.queued()).unwrap();
        assert_eq!(
            queued, waiting,
            "{ctx}: {what}: the record's queued total against the streams"
        );
        if !leased {
            assert_eq!(
                in_flight, holding,
                "{ctx}: {what}: the record's in-flight total against the streams"
            );
        }
        if let Some(writer) = self.last_writer {
            let metrics = &self.worker(writer).metrics.0;
            let gauge = |metric| usize::try_from(metrics.get(metric)).unwrap();
            assert_eq!(
                gauge(Metric::ConcurrencyQueued),
                queued,
                "{ctx}: {what}: queued gauge of worker {writer}, which wrote last"
            );
            if !leased {
                assert_eq!(
                    gauge(Metric::ConcurrencyInFlight),
                    in_flight,
                    "{ctx}: {what}: in-flight gauge of worker {writer}, which wrote last"
                );
            }
        }
    }

    pub(crate) fn settle_and_check(&mut self) {
        self.store.lose_next_races(0);
        self.advance(30 * MILLISECOND);
        self.check_bookkeeping("after 30 ms");
        self.clean = true;
        self.seen.settled += 1;
        if self.dry_run {
            return;
        }
        let ctx = self.ctx();
        let (holding, fail_open, waiting) = self.truth();
        let limit = self.limit;
        assert!(
            holding <= limit + fail_open,
            "{ctx}: {holding} hold slots, over the limit of {limit} (+{fail_open} failed open)"
        );
        // Spare slots another worker leased come back within two ticks of anyone waiting.
        assert!(
            holding >= limit || waiting == 0,
            "{ctx}: {waiting} wait beside a free slot ({holding} of {limit} held)"
        );
        self.seen.settled_full_with_waiters += u64::from(waiting > 0);
    }
}
