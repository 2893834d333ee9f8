//! The lives of worker VMs: a VM that dies (Envoy restarts it; its requests in flight die with
//! it), a configuration replaced on a worker (the old pipeline serves its requests in flight
//! and closes at the first tick after the last one ended), and that close. With leases a VM
//! holds spare retries and owes refunds and first attempts between its writes to the shared
//! budget; these are the moments that could lose them or count them twice. What a dead VM (or a
//! close whose write lost every race) may have left booked is noted by the second it happened,
//! so the checks can allow for it until it ages out, and no longer.

use crate::checks::slot;
use crate::world::{Life, Model};
use crate::WORKERS;

impl Model {
    /// The VM of a random worker dies with every pipeline it runs; a new VM takes its place.
    pub(crate) fn kill(&mut self) {
        let slot_of = self.rng.index(WORKERS);
        let dying: Vec<usize> = (0..self.vms.len())
            .filter(|&i| {
                self.vms[i].slot == slot_of
                    && matches!(self.vms[i].life, Life::Live | Life::Retired)
            })
            .collect();
        for &vm in &dying {
            self.vms[vm].life = Life::Dead;
            let held = self.spare_cap() + self.vms[vm].owed;
            self.left_behind.push((self.second(), held));
        }
        // Its requests die with it: Envoy may have made some of their retries, and nothing is
        // refunded.
        let mut i = 0;
        while i < self.in_flight.len() {
            if dying.contains(&self.in_flight[i].vm) {
                let request = self.in_flight.remove(i);
                let used = self.rng.below(u64::from(request.granted) + 1);
                *slot(&mut self.ledger.used, request.second) += used;
            } else {
                i += 1;
            }
        }
        // Its unwritten first attempts never reach the budget.
        self.last_disruption = Some(self.now);
        self.live[slot_of] = self.open_vm(slot_of);
        self.seen.deaths += 1;
    }

    /// A new configuration (the same policy set, so the same budget) on a random worker.
    pub(crate) fn reconfigure(&mut self) {
        let slot_of = self.rng.index(WORKERS);
        let old = self.live[slot_of];
        self.vms[old].life = Life::Retired;
        self.live[slot_of] = self.open_vm(slot_of);
        self.seen.reconfigurations += 1;
    }

    /// A replaced configuration with no request left closes: it writes back all it holds and
    /// owes.
    pub(crate) fn close(&mut self, vm: usize) {
        let contended = self.store.contended_updates.get();
        let now = self.now;
        self.with_vm(vm, |pipeline, store| pipeline.close(store, now));
        if self.store.contended_updates.get() > contended {
            // Its write lost every race: what it held stays booked until it ages out.
            let held = self.spare_cap() + self.vms[vm].owed;
            self.left_behind.push((self.second(), held));
            self.last_disruption = Some(now);
        }
        self.vms[vm].life = Life::Closed;
        self.seen.closes += 1;
    }
}
