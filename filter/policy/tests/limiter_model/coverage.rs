//! The coverage of paths: how often each path of the model (waits, hand-offs, admissions by the
//! tick, time-outs, deadline drops, refusals, fail-open admissions, crashes, settling pauses,
//! leases)
//! was taken, summed over all cases and required to be non-zero at the end. It is apart because
//! it is bookkeeping about the test rather than about the limiter: its only job is that a change
//! which stops reaching a path, and with it the checks on that path, fails instead of passing
//! quietly.

/// How often each path of the model was taken, so a change that stops reaching one (and with it
/// the checks on it) fails instead of passing quietly.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Coverage {
    pub(crate) waited: u64,
    pub(crate) handed_over: u64,
    pub(crate) resumed_by_tick: u64,
    pub(crate) timed_out: u64,
    pub(crate) deadline_dropped: u64,
    pub(crate) refused_full: u64,
    pub(crate) refused_past_deadline: u64,
    pub(crate) failed_open: u64,
    pub(crate) crashes: u64,
    pub(crate) settled: u64,
    pub(crate) settled_full_with_waiters: u64,
    pub(crate) exact: u64,
    pub(crate) leased: u64,
    pub(crate) waited_beside_a_lease: u64,
}

impl Coverage {
    /// Every path was taken in some case.
    pub(crate) fn assert_complete(&self) {
        let paths = [
            ("waited", self.waited),
            ("handed over", self.handed_over),
            ("resumed by a tick", self.resumed_by_tick),
            ("timed out", self.timed_out),
            ("deadline dropped", self.deadline_dropped),
            ("refused, queue full", self.refused_full),
            ("refused, past its deadline", self.refused_past_deadline),
            ("failed open", self.failed_open),
            ("crashes", self.crashes),
            ("settled", self.settled),
            ("settled, full with waiters", self.settled_full_with_waiters),
            ("exact after an operation", self.exact),
            ("spare slots leased after an operation", self.leased),
            (
                "a settling pause began with a lease beside waiters",
                self.waited_beside_a_lease,
            ),
        ];
        for (path, taken) in paths {
            assert!(taken > 0, "no case reached: {path} ({self:?})");
        }
    }

    pub(crate) fn add(&mut self, o: Coverage) {
        self.waited += o.waited;
        self.handed_over += o.handed_over;
        self.resumed_by_tick += o.resumed_by_tick;
        self.timed_out += o.timed_out;
        self.deadline_dropped += o.deadline_dropped;
        self.refused_full += o.refused_full;
        self.refused_past_deadline += o.refused_past_deadline;
        self.failed_open += o.failed_open;
        self.crashes += o.crashes;
        self.settled += o.settled;
        self.settled_full_with_waiters += o.settled_full_with_waiters;
        self.exact += o.exact;
        self.leased += o.leased;
        self.waited_beside_a_lease += o.waited_beside_a_lease;
    }
}
