//! Shared state across worker VMs, as a trait: read a value with its version, write it back
//! only if nobody wrote in between.
//!
//! Why a trait here: every state that must be one per proxy process (a retry budget, a
//! concurrency limit with its holder table) is a protocol of read-decode-change-encode-CAS
//! rounds. Written once against [`SharedStore`], each protocol runs unchanged over proxy-wasm
//! shared data in the plugin (a thin adapter over the host calls) and over [`MemoryStore`] in
//! native tests, where workers, interleavings and lost races are chosen by the test.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

/// A value's version: a write carrying it succeeds only if the value has not changed since.
pub type Cas = u32;

/// A key's current value (`None` when absent) and version (`None`: write unconditionally).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Versioned {
    /// The stored bytes.
    pub value: Option<Vec<u8>>,
    /// Their version.
    pub cas: Option<Cas>,
}

/// Why a store operation did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// The value changed since it was read (a write with a stale version).
    Mismatch,
    /// The store refused the operation (not expected from Envoy).
    Failed,
}

/// A process-wide key-value store with compare-and-swap, as proxy-wasm shared data is.
pub trait SharedStore {
    /// The current value of `key` and its version.
    fn get(&self, key: &str) -> Result<Versioned, StoreError>;
    /// Stores `value` under `key` if its version is still `cas` (always, with `None`).
    fn set(&self, key: &str, value: &[u8], cas: Option<Cas>) -> Result<(), StoreError>;
}

/// Attempts of one read-change-write before giving up, so a request never spins.
pub const MAX_CAS_ATTEMPTS: u32 = 8;

/// Result of [`update`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update<T> {
    /// The new value was stored; `T` is what the change returned with it.
    Stored(T),
    /// Every attempt lost a race with another writer.
    Contended,
    /// The store refused the operation.
    Failed,
}

impl<T> Update<T> {
    /// The value stored with the update, if it was.
    pub fn stored(self) -> Option<T> {
        match self {
            Update::Stored(out) => Some(out),
            Update::Contended | Update::Failed => None,
        }
    }
}

/// Applies `change` to the current bytes of `key` (`None` when absent) and stores the result
/// if nobody wrote in between, up to [`MAX_CAS_ATTEMPTS`] times. `change` may run more than
/// once, so it must not have effects outside its return value.
pub fn update<T>(
    store: &dyn SharedStore,
    key: &str,
    mut change: impl FnMut(Option<&[u8]>) -> (Vec<u8>, T),
) -> Update<T> {
    for _ in 0..MAX_CAS_ATTEMPTS {
        let Ok(current) = store.get(key) else {
            return Update::Failed;
        };
        let (next, out) = change(current.value.as_deref());
        // A missing key has no version and is stored unconditionally; keys are created when a
        // policy opens, so this only happens on the first write of a fresh process.
        match store.set(key, &next, current.cas) {
            Ok(()) => return Update::Stored(out),
            Err(StoreError::Mismatch) => continue,
            Err(StoreError::Failed) => return Update::Failed,
        }
    }
    Update::Contended
}

/// The current bytes of `key` (`None` when absent or unreadable).
pub fn read(store: &dyn SharedStore, key: &str) -> Option<Vec<u8>> {
    store.get(key).ok().and_then(|found| found.value)
}

/// Creates `key` with `initial` unless it exists (the first VM of the process wins).
pub fn ensure(store: &dyn SharedStore, key: &str, initial: &[u8]) {
    if let Ok(Versioned { value: None, .. }) = store.get(key) {
        // Versionless, like Envoy's first write of a key; a racing VM's write may win instead.
        let _ = store.set(key, initial, None);
    }
}

/// An in-memory [`SharedStore`] with Envoy's semantics (versions start at 1 and grow with each
/// write; a versioned write to a missing key is stored), for tests: one store shared by the
/// simulated workers of a process, with lost races on demand.
#[derive(Debug, Default)]
pub struct MemoryStore {
    entries: RefCell<BTreeMap<String, (Vec<u8>, Cas)>>,
    lose_next: Cell<u32>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Makes the next `n` versioned writes fail with [`StoreError::Mismatch`], as if another
    /// worker had written just before each.
    pub fn lose_next_races(&self, n: u32) {
        self.lose_next.set(n);
    }

    /// Every key held.
    pub fn keys(&self) -> Vec<String> {
        self.entries.borrow().keys().cloned().collect()
    }

    /// Total bytes held (keys and values).
    pub fn size(&self) -> usize {
        self.entries
            .borrow()
            .iter()
            .map(|(k, (v, _))| k.len() + v.len())
            .sum()
    }
}

impl SharedStore for MemoryStore {
    fn get(&self, key: &str) -> Result<Versioned, StoreError> {
        Ok(match self.entries.borrow().get(key) {
            Some((value, cas)) => Versioned {
                value: Some(value.clone()),
                cas: Some(*cas),
            },
            None => Versioned::default(),
        })
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<Cas>) -> Result<(), StoreError> {
        let mut entries = self.entries.borrow_mut();
        let current = entries.get(key).map(|(_, c)| *c);
        if let (Some(expected), Some(current)) = (cas, current) {
            let lose = self.lose_next.get();
            if lose > 0 {
                self.lose_next.set(lose - 1);
                return Err(StoreError::Mismatch);
            }
            if expected != current {
                return Err(StoreError::Mismatch);
            }
        }
        let next = current.map_or(1, |c| c.wrapping_add(1).max(1));
        entries.insert(key.to_string(), (value.to_vec(), next));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::test;

    #[test]
    fn a_stale_version_is_refused_and_update_retries() {
        let store = MemoryStore::new();
        ensure(&store, "k", b"a");
        ensure(&store, "k", b"ignored");
        assert_eq!(read(&store, "k").as_deref(), Some(&b"a"[..]));
        let first = store.get("k").unwrap();
        store.set("k", b"b", first.cas).unwrap();
        assert_eq!(store.set("k", b"c", first.cas), Err(StoreError::Mismatch));

        let mut runs = 0;
        store.lose_next_races(2);
        let out = update(&store, "k", |bytes| {
            runs += 1;
            let mut next = bytes.unwrap_or_default().to_vec();
            next.push(b'!');
            (next, runs)
        });
        assert_eq!(out, Update::Stored(3), "two lost races, then stored");
        assert_eq!(read(&store, "k").as_deref(), Some(&b"b!"[..]));

        store.lose_next_races(MAX_CAS_ATTEMPTS);
        let out = update(&store, "k", |_| (b"x".to_vec(), ()));
        assert_eq!(out, Update::Contended);
        assert_eq!(read(&store, "k").as_deref(), Some(&b"b!"[..]));
    }

    #[test]
    fn an_absent_key_is_written_without_a_version() {
        let store = MemoryStore::new();
        assert_eq!(store.get("k").unwrap(), Versioned::default());
        assert_eq!(
            update(&store, "k", |b| (b"v".to_vec(), b.is_none())),
            Update::Stored(true)
        );
        assert_eq!(store.keys(), vec!["k".to_string()]);
        assert_eq!(store.size(), 2);
    }
}
