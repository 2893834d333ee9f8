//! The model's world: the process's shared data (a store that also notices when an update lost
//! every race, and counts reads and writes), the worker VMs (live, replaced by a new
//! configuration, closed or dead), the requests in flight, and the model that holds them with
//! the clock, the ledger and the counters it expects, with the constructor and the accessors
//! (the current second, `ttl`, the floor, the decoded budget, what the VMs may hold) that the
//! operations and the checks go through. It is apart from both so that what the model is can
//! be read in one place, before what is done to it (`operations`, `lifecycle`) and what is
//! asserted about it (`checks`).

use crate::checks::Ledger;
use crate::common::{Rng, Worker};
use crate::coverage::Coverage;
use crate::{SCOPE, START_SECOND, TICK, WORKERS};
use ballast_policy::config::Config;
use ballast_policy::duration::{Nanos, SECOND};
use ballast_policy::metrics::Metric;
use ballast_policy::pipeline::{Exchange, Pipeline};
use ballast_policy::retry::lease::SPARE_REQUESTS;
use ballast_policy::retry::{BudgetParams, BudgetState};
use ballast_policy::store::{self, Cas, MemoryStore, SharedStore, StoreError, MAX_CAS_ATTEMPTS};
use std::cell::Cell;

/// The process's shared data: a [`MemoryStore`] that also notices when an update lost every
/// race (as many refused writes in a row as an update makes), which no metric reports for a
/// budget flush, and counts reads and stored writes.
#[derive(Default)]
pub(crate) struct Store {
    pub(crate) inner: MemoryStore,
    pub(crate) refused_in_a_row: Cell<u32>,
    pub(crate) contended_updates: Cell<u64>,
    pub(crate) reads: Cell<u64>,
    pub(crate) writes: Cell<u64>,
}

impl SharedStore for Store {
    fn get(&self, key: &str) -> Result<store::Versioned, StoreError> {
        self.reads.set(self.reads.get() + 1);
        self.inner.get(key)
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<Cas>) -> Result<(), StoreError> {
        let result = self.inner.set(key, value, cas);
        if result.is_ok() {
            self.refused_in_a_row.set(0);
            self.writes.set(self.writes.get() + 1);
        } else {
            let refused = self.refused_in_a_row.get() + 1;
            self.refused_in_a_row.set(refused);
            if refused.is_multiple_of(MAX_CAS_ATTEMPTS) {
                self.contended_updates.set(self.contended_updates.get() + 1);
            }
        }
        result
    }
}

/// Where a worker VM's pipeline is in its life.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Life {
    /// Serving new requests.
    Live,
    /// Its configuration was replaced: it serves its requests in flight and ticks, and closes
    /// at the first tick after the last one ended.
    Retired,
    /// Closed: everything it held was written back.
    Closed,
    /// The VM died: what it held and owed is gone.
    Dead,
}

/// One pipeline of a worker VM, and what the model knows of what it may hold.
pub(crate) struct Vm {
    pub(crate) worker: Worker,
    /// The worker (VM) it runs in: a VM that dies takes all its pipelines with it.
    pub(crate) slot: usize,
    pub(crate) life: Life,
    /// Unused retries given back to it since it last wrote to the shared budget (every write
    /// writes all it owes).
    pub(crate) owed: u64,
}

/// A request between its first attempt and its end.
pub(crate) struct InFlight {
    /// The VM (index into `Model::vms`) whose pipeline it went through.
    pub(crate) vm: usize,
    pub(crate) exchange: Exchange,
    pub(crate) get: bool,
    /// Retries granted (`x-envoy-max-retries`).
    pub(crate) granted: u32,
    /// The second it was granted in (the bucket of its reservation).
    pub(crate) second: u64,
}

pub(crate) struct Model {
    pub(crate) seed: u64,
    pub(crate) step: usize,
    pub(crate) rng: Rng,
    pub(crate) config: Config,
    pub(crate) params: BudgetParams,
    pub(crate) max_retries: u32,
    pub(crate) key: String,
    pub(crate) store: Store,
    /// When an update of the budget last lost every race or a VM died (then first attempts
    /// may reach the shared budget a flush later than usual, or never).
    pub(crate) last_disruption: Option<Nanos>,
    pub(crate) contended_seen: u64,
    /// Every pipeline opened, in order; `live[w]` is the one worker `w` serves requests with.
    pub(crate) vms: Vec<Vm>,
    pub(crate) live: Vec<usize>,
    /// What VMs that died (or closed with a write that lost every race) may have left booked
    /// in the shared budget, by the second they ended in: it stays counted until it ages out.
    pub(crate) left_behind: Vec<(u64, u64)>,
    pub(crate) in_flight: Vec<InFlight>,
    pub(crate) now: Nanos,
    pub(crate) next_id: u32,
    pub(crate) ledger: Ledger,
    /// Expected totals of counters over all workers: allowed, denied by the budget, denied as
    /// not idempotent.
    pub(crate) allowed: u64,
    pub(crate) denied_budget: u64,
    pub(crate) denied_not_idempotent: u64,
    pub(crate) seen: Coverage,
}

impl Model {
    pub(crate) fn new(seed: u64) -> Model {
        let mut rng = Rng(seed | 1);
        let (ratio, ratio_ppm) = *rng.pick(&[("0.1", 100_000), ("0.2", 200_000), ("0.5", 500_000)]);
        let min = *rng.pick(&[0u32, 1, 2, 30]);
        let ttl = *rng.pick(&[1u32, 2, 3, 5, 10]);
        let max_retries = *rng.pick(&[1u32, 2, 3]);
        let json = format!(
            r#"{{"policy_sets": {{"api": {{
                "retry_budget": {{"ratio": {ratio}, "min_retries_per_second": {min}, "ttl": "{ttl}s"}},
                "retry": {{"max_retries_per_request": {max_retries}}}}}}},
                "default_policy_set": "api"}}"#
        );
        let config = Config::from_json(json.as_bytes()).unwrap();
        let params = config.policy_sets[0].retry_budget.unwrap();
        assert_eq!(
            params,
            BudgetParams {
                ratio_ppm,
                min_retries_per_second: min,
                ttl_seconds: ttl,
            },
            "seed {seed}: {json}"
        );
        let mut model = Model {
            seed,
            step: 0,
            rng,
            config,
            params,
            max_retries,
            key: format!("ballast.{SCOPE}.retry_budget.api"),
            store: Store::default(),
            last_disruption: None,
            contended_seen: 0,
            vms: Vec::new(),
            live: Vec::new(),
            left_behind: Vec::new(),
            in_flight: Vec::new(),
            now: START_SECOND * SECOND,
            next_id: 1,
            ledger: Ledger::default(),
            allowed: 0,
            denied_budget: 0,
            denied_not_idempotent: 0,
            seen: Coverage::default(),
        };
        for slot in 0..WORKERS {
            let vm = model.open_vm(slot);
            model.live.push(vm);
        }
        assert!(
            model.store.inner.keys().contains(&model.key),
            "seed {seed}: the budget is stored under {}",
            model.key
        );
        model
    }

    /// Opens a pipeline on worker `slot` (a new VM, or a new configuration of one), first
    /// ticking within a tick period; returns its index.
    pub(crate) fn open_vm(&mut self, slot: usize) -> usize {
        let phase = 1 + self.rng.below(TICK);
        let worker = Worker::open(&self.config, &self.store, SCOPE, self.now, self.now + phase);
        self.vms.push(Vm {
            worker,
            slot,
            life: Life::Live,
            owed: 0,
        });
        self.vms.len() - 1
    }

    /// Calls `f` on the pipeline of VM `vm`; if it wrote to the shared budget, the VM owes
    /// nothing any more.
    pub(crate) fn with_vm<R>(
        &mut self,
        vm: usize,
        f: impl FnOnce(&Pipeline<crate::common::Metrics>, &Store) -> R,
    ) -> R {
        let writes = self.store.writes.get();
        let out = f(&self.vms[vm].worker.pipeline, &self.store);
        if self.store.writes.get() > writes {
            self.vms[vm].owed = 0;
        }
        out
    }

    /// Spare retries one VM may hold: `SPARE_REQUESTS` requests' worth.
    pub(crate) fn spare_cap(&self) -> u64 {
        u64::from(SPARE_REQUESTS * self.max_retries)
    }

    /// Pipelines that run (live, or replaced and still serving).
    pub(crate) fn running_vms(&self) -> u64 {
        let n = self
            .vms
            .iter()
            .filter(|vm| matches!(vm.life, Life::Live | Life::Retired))
            .count();
        u64::try_from(n).unwrap()
    }

    /// The most retries the shared budget may count in its window beyond the ledger's grants
    /// less refunds: what each running VM may hold spare or owe, and what VMs left behind in
    /// seconds still in the window.
    pub(crate) fn held_bound(&self) -> u64 {
        let running: u64 = self
            .vms
            .iter()
            .filter(|vm| matches!(vm.life, Life::Live | Life::Retired))
            .map(|vm| self.spare_cap() + vm.owed)
            .sum();
        let oldest = self.second().saturating_sub(self.ttl() - 1);
        let left: u64 = self
            .left_behind
            .iter()
            .filter(|(second, _)| *second >= oldest)
            .map(|(_, n)| n)
            .sum();
        running + left
    }

    pub(crate) fn ctx(&self) -> String {
        format!("seed {} step {}", self.seed, self.step)
    }

    pub(crate) fn ttl(&self) -> u64 {
        u64::from(self.params.ttl_seconds)
    }

    /// The floor of the budget: `min_retries_per_second × ttl` retries.
    pub(crate) fn floor(&self) -> u64 {
        u64::from(self.params.min_retries_per_second) * self.ttl()
    }

    /// The current second, relative to the start.
    pub(crate) fn second(&self) -> u64 {
        self.now / SECOND - START_SECOND
    }

    /// The shared budget, decoded (read-only: the test takes no part in what it observes).
    pub(crate) fn budget(&self) -> BudgetState {
        BudgetState::decode(&store::read(&self.store, &self.key).unwrap()).unwrap()
    }

    pub(crate) fn contended(&self, vm: usize) -> u64 {
        self.vms[vm]
            .worker
            .metrics
            .0
            .get(Metric::RetryBudgetContended)
    }
}
