//! The coverage of paths: how often each path of the model (full, partial and denied grants,
//! grants from a worker's lease, reservations and failure writes that lost every race, stale
//! refunds, resets, deaths, replaced configurations and their closes, quiet spells with and
//! without dead VMs' leftovers, windows near the bound) was taken, summed over all cases and required to be non-zero at the end. It
//! is apart because it is bookkeeping about the test rather than about the budget: its only job
//! is that a change which stops reaching a path, and with it the checks on that path, fails
//! instead of passing quietly.

/// How often each path of the model was taken, so a change that stops reaching one (and with it
/// the checks on it) fails instead of passing quietly.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Coverage {
    pub(crate) full_grants: u64,
    pub(crate) partial_grants: u64,
    pub(crate) denied_grants: u64,
    pub(crate) lease_grants: u64,
    pub(crate) contended_reserves: u64,
    pub(crate) contended_failure_writes: u64,
    pub(crate) stale_refunds: u64,
    pub(crate) earned_checks: u64,
    pub(crate) resets: u64,
    pub(crate) deaths: u64,
    pub(crate) reconfigurations: u64,
    pub(crate) closes: u64,
    pub(crate) quiet_spells: u64,
    /// Quiet spells after which the shared budget matched the ledger exactly.
    pub(crate) exact_returns: u64,
    pub(crate) windows: u64,
    /// Windows whose used retries reached more than half of what the bound allows.
    pub(crate) tight_windows: u64,
}

impl Coverage {
    pub(crate) fn assert_complete(&self) {
        let paths = [
            ("a full grant", self.full_grants),
            ("a partial grant", self.partial_grants),
            ("a GET granted nothing", self.denied_grants),
            ("a GET served from its worker's lease", self.lease_grants),
            (
                "a reservation that lost every race",
                self.contended_reserves,
            ),
            (
                "a final failure whose write lost every race",
                self.contended_failure_writes,
            ),
            ("a refund after its bucket aged out", self.stale_refunds),
            (
                "a short grant checked against the first attempts",
                self.earned_checks,
            ),
            ("a reset", self.resets),
            ("a VM that died", self.deaths),
            ("a configuration replaced", self.reconfigurations),
            ("a replaced configuration closed", self.closes),
            ("a quiet spell", self.quiet_spells),
            ("a quiet spell with every token back", self.exact_returns),
            ("a window checked", self.windows),
            ("a window near the bound", self.tight_windows),
        ];
        for (path, taken) in paths {
            assert!(taken > 0, "no case reached: {path} ({self:?})");
        }
    }

    pub(crate) fn add(&mut self, o: Coverage) {
        self.full_grants += o.full_grants;
        self.partial_grants += o.partial_grants;
        self.denied_grants += o.denied_grants;
        self.lease_grants += o.lease_grants;
        self.contended_reserves += o.contended_reserves;
        self.contended_failure_writes += o.contended_failure_writes;
        self.stale_refunds += o.stale_refunds;
        self.earned_checks += o.earned_checks;
        self.resets += o.resets;
        self.deaths += o.deaths;
        self.reconfigurations += o.reconfigurations;
        self.closes += o.closes;
        self.quiet_spells += o.quiet_spells;
        self.exact_returns += o.exact_returns;
        self.windows += o.windows;
        self.tight_windows += o.tight_windows;
    }
}
