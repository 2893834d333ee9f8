//! Root contexts across a configuration change, as Envoy keeps them.
//!
//! Why: a plugin must not lose requests when its configuration is replaced under traffic, and
//! that can only be tested against the host's real order of events. In Envoy (proxy-wasm-cpp-host
//! `WasmBase::start`, `PluginHandleBase`) the plugin key includes the configuration, so a new
//! configuration on the same VM is a **new root context**: `proxy_on_context_create(new, 0)`
//! and `proxy_on_configure(new, size)`, no second `proxy_on_vm_start`. New streams belong to it.
//! Every stream holds the plugin handle it began with, so the old root context stays alive,
//! keeps its own timer (timers are keyed by root context) and serves its streams; when the last
//! of them is gone it gets `proxy_on_done` (and `proxy_on_delete`, at once or after it calls
//! `proxy_done`). Envoy checks a configuration on a canary first and keeps the old one if it is
//! refused; here each worker answers for itself, and a worker that refuses keeps its old root.
//!
//! Other hosts may call `proxy_on_configure` again on the same root context (the ABI allows
//! it): [`Host::reconfigure_in_place`].

use std::sync::Arc;

use crate::error::Result;
use crate::host::Host;
use crate::worker::WorkerState;

/// The root context of a replaced configuration, alive until its streams are gone.
#[derive(Debug, Clone)]
pub(crate) struct RetiringRoot {
    pub(crate) id: u32,
    pub(crate) tick_period_ms: u32,
    pub(crate) next_tick_ns: Option<u64>,
    /// `proxy_on_done` returned false: it is deleted when it calls `proxy_done`.
    pub(crate) pending_done: bool,
}

impl WorkerState {
    /// Whether `id` is a live root context of this VM (the active one or a retiring one).
    pub(crate) fn is_root(&self, id: u32) -> bool {
        id == self.root_id || self.retiring.iter().any(|r| r.id == id)
    }

    /// The root context that `context` belongs to (itself if it is a root; the active root
    /// for an unknown context).
    pub(crate) fn root_of(&self, context: u32) -> u32 {
        if self.is_root(context) {
            return context;
        }
        self.streams
            .get(&context)
            .map_or(self.root_id, |stream| stream.root)
    }

    /// The timer (period, next due time) of root context `root`: a retiring root's, else
    /// the active root's.
    fn timer_mut(&mut self, root: u32) -> (&mut u32, &mut Option<u64>) {
        match self.retiring.iter_mut().find(|r| r.id == root) {
            Some(r) => (&mut r.tick_period_ms, &mut r.next_tick_ns),
            None => (&mut self.tick_period_ms, &mut self.next_tick_ns),
        }
    }

    /// The tick period of root context `root` in ms (0: no timer).
    pub(crate) fn tick_period_of(&self, root: u32) -> u32 {
        match self.retiring.iter().find(|r| r.id == root) {
            Some(r) => r.tick_period_ms,
            None => self.tick_period_ms,
        }
    }

    /// Arms (or with period 0 stops) the timer of root context `root`.
    pub(crate) fn set_timer(&mut self, root: u32, period_ms: u32, next_ns: Option<u64>) {
        let (period, next) = self.timer_mut(root);
        *period = period_ms;
        *next = next_ns;
    }

    /// The earliest armed timer of this VM: (due time, root context).
    pub(crate) fn next_due(&self) -> Option<(u64, u32)> {
        let active = self.next_tick_ns.map(|t| (t, self.root_id));
        let retiring = self
            .retiring
            .iter()
            .filter_map(|r| r.next_tick_ns.map(|t| (t, r.id)));
        active.into_iter().chain(retiring).min()
    }

    /// The root contexts whose timer is due at `at`.
    pub(crate) fn overdue(&self, at: u64) -> Vec<u32> {
        let active = self.next_tick_ns.filter(|t| *t <= at).map(|_| self.root_id);
        let retiring = self
            .retiring
            .iter()
            .filter(|r| r.next_tick_ns.is_some_and(|t| t <= at))
            .map(|r| r.id);
        active.into_iter().chain(retiring).collect()
    }

    /// After `root`'s tick at `at`: its next one a period later, if it is still armed.
    pub(crate) fn rearm(&mut self, root: u32, at: u64, fired: bool) {
        if !self.is_root(root) {
            return;
        }
        let (period, next) = self.timer_mut(root);
        *next = (fired && *period > 0).then(|| at.saturating_add(u64::from(*period) * 1_000_000));
    }

    /// `root` called `proxy_done`: whether it was waiting to (then it is deleted next).
    pub(crate) fn take_pending_done(&mut self, root: u32) -> bool {
        if root == self.root_id && self.root_pending_done {
            self.root_pending_done = false;
            return true;
        }
        match self
            .retiring
            .iter_mut()
            .find(|r| r.id == root && r.pending_done)
        {
            Some(r) => {
                r.pending_done = false;
                true
            }
            None => false,
        }
    }

    /// Makes `bytes` the plugin configuration `proxy_on_configure` reads; returns the old one.
    fn replace_plugin_config(&mut self, bytes: &[u8]) -> Arc<crate::worker::HostConfig> {
        let new = Arc::new(crate::worker::HostConfig {
            plugin_config: bytes.to_vec(),
            ..(*self.cfg).clone()
        });
        std::mem::replace(&mut self.cfg, new)
    }

    /// `root` got `proxy_on_delete`.
    pub(crate) fn root_deleted_now(&mut self, root: u32) {
        if root == self.root_id {
            self.root_deleted = true;
        } else {
            self.retiring.retain(|r| r.id != root);
        }
    }
}

impl Host {
    /// Replaces the plugin configuration as Envoy does on a listener update that changes only
    /// it: each worker's VM gets a new root context configured with `plugin_config`; streams
    /// that began before keep the old root context, which keeps ticking and is shut down when
    /// the last of them finishes. Returns per worker whether it accepted the configuration; a
    /// worker that refused (or whose VM crashed) keeps the old one.
    pub fn reconfigure(&mut self, plugin_config: impl Into<Vec<u8>>) -> Result<Vec<bool>> {
        let bytes = plugin_config.into();
        let mut accepted = Vec::with_capacity(self.workers.len());
        for w in 0..self.workers.len() {
            if self.workers[w].failed.is_some() {
                accepted.push(false);
                continue;
            }
            let old_cfg = self.workers[w]
                .store
                .data_mut()
                .replace_plugin_config(&bytes);
            let st = self.workers[w].store.data_mut();
            let old_root = RetiringRoot {
                id: st.root_id,
                tick_period_ms: st.tick_period_ms,
                next_tick_ns: st.next_tick_ns,
                pending_done: false,
            };
            let new_root = st.next_context_id;
            st.next_context_id = st.next_context_id.wrapping_add(1);
            st.retiring.push(old_root.clone());
            st.root_id = new_root;
            st.tick_period_ms = 0;
            st.next_tick_ns = None;
            let len = bytes.len() as i32;
            self.call_export(
                w,
                |e| e.on_context_create.as_ref(),
                new_root,
                (new_root as i32, 0),
            )?;
            let ok = self.configure_root(w, new_root, len)?;
            if !ok {
                // Refused: the new root goes away, the old one is active again.
                self.call_export(w, |e| e.on_delete.as_ref(), new_root, new_root as i32)?;
                let st = self.workers[w].store.data_mut();
                st.retiring.retain(|r| r.id != old_root.id);
                st.root_id = old_root.id;
                st.tick_period_ms = old_root.tick_period_ms;
                st.next_tick_ns = old_root.next_tick_ns;
                st.cfg = old_cfg;
            }
            self.settle()?;
            self.retire_idle_roots(w)?;
            accepted.push(ok);
        }
        Ok(accepted)
    }

    /// Calls `proxy_on_configure` again on each worker's active root context with
    /// `plugin_config` (what a host may do instead of a new root context). Returns per worker
    /// what the plugin answered.
    pub fn reconfigure_in_place(&mut self, plugin_config: impl Into<Vec<u8>>) -> Result<Vec<bool>> {
        let bytes = plugin_config.into();
        let mut accepted = Vec::with_capacity(self.workers.len());
        for w in 0..self.workers.len() {
            if self.workers[w].failed.is_some() {
                accepted.push(false);
                continue;
            }
            let st = self.workers[w].store.data_mut();
            st.replace_plugin_config(&bytes);
            let root = st.root_id;
            let ok = self.configure_root(w, root, bytes.len() as i32)?;
            self.settle()?;
            accepted.push(ok);
        }
        Ok(accepted)
    }

    /// `proxy_on_configure` on root context `root` of worker `w`.
    pub(crate) fn configure_root(&mut self, w: usize, root: u32, len: i32) -> Result<bool> {
        self.workers[w].store.data_mut().in_configure = true;
        let configured = self.call_export(w, |e| e.on_configure.as_ref(), root, (root as i32, len));
        self.workers[w].store.data_mut().in_configure = false;
        Ok(configured?.is_none_or(|r| r != 0))
    }

    /// Shuts down every retiring root context of worker `w` whose streams are all gone.
    pub(crate) fn retire_idle_roots(&mut self, w: usize) -> Result<()> {
        let st = self.workers[w].store.data();
        let idle: Vec<u32> = st
            .retiring
            .iter()
            .filter(|r| !r.pending_done && !st.streams.values().any(|s| s.root == r.id))
            .map(|r| r.id)
            .collect();
        for root in idle {
            self.shut_root(w, root)?;
        }
        Ok(())
    }

    /// `proxy_on_done` on root context `root`, then `proxy_on_delete` if it is done at once
    /// (else when it calls `proxy_done`). Returns whether it was done at once.
    pub(crate) fn shut_root(&mut self, w: usize, root: u32) -> Result<bool> {
        if self.workers[w].failed.is_some() {
            return Ok(false);
        }
        let done = self
            .call_export(w, |e| e.on_done.as_ref(), root, root as i32)?
            .is_none_or(|r| r != 0);
        if done {
            self.call_export(w, |e| e.on_delete.as_ref(), root, root as i32)?;
            self.workers[w].store.data_mut().root_deleted_now(root);
        } else {
            let st = self.workers[w].store.data_mut();
            if root == st.root_id {
                st.root_pending_done = true;
            } else if let Some(r) = st.retiring.iter_mut().find(|r| r.id == root) {
                r.pending_done = true;
            }
        }
        self.settle()?;
        Ok(done)
    }

    /// The live root contexts of `worker`'s VM: the active one first, then those of replaced
    /// configurations that still serve streams.
    pub fn root_contexts(&self, worker: usize) -> Vec<u32> {
        self.workers.get(worker).map_or_else(Vec::new, |w| {
            let st = w.store.data();
            std::iter::once(st.root_id)
                .filter(|_| !st.root_deleted)
                .chain(st.retiring.iter().map(|r| r.id))
                .collect()
        })
    }
}
