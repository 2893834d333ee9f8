//! The VM's contexts: root contexts (one per plugin configuration) and one HTTP context per
//! stream, found by the id the host gives each callback.
//!
//! Why each context in its own `RefCell` behind an `Rc`: a callback of one stream can make the
//! host call into the VM for another (resuming a waiter from a tick, a reply sent to a paused
//! stream). The map is borrowed only to find a context, never across a callback, so such a
//! nested call finds its own stream; a nested call for a context that is already busy (which
//! no host should make) is answered as if the plugin were absent — continue, done — instead of
//! panicking.

use crate::abi::exports::Action;
use crate::http::BallastHttp;
use crate::root::BallastRoot;
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;

/// Hashes a context id: ids are small distinct integers, so one multiplication spreads them
/// (SipHash would cost more than the rest of a lookup).
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 << 8 | u64::from(*byte)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, id: u32) {
        self.0 = u64::from(id).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

#[derive(Default)]
struct Contexts {
    /// Root contexts by id: one per plugin configuration on this VM (two while one replaces
    /// another), so a short list.
    roots: Vec<(u32, Rc<RefCell<BallastRoot>>)>,
    streams: HashMap<u32, Rc<RefCell<BallastHttp>>, BuildHasherDefault<IdHasher>>,
}

thread_local! {
    static CONTEXTS: RefCell<Contexts> = RefCell::new(Contexts::default());
}

fn root(id: u32) -> Option<Rc<RefCell<BallastRoot>>> {
    CONTEXTS.with(|c| {
        c.borrow()
            .roots
            .iter()
            .find(|(root_id, _)| *root_id == id)
            .map(|(_, root)| Rc::clone(root))
    })
}

fn stream(id: u32) -> Option<Rc<RefCell<BallastHttp>>> {
    CONTEXTS.with(|c| c.borrow().streams.get(&id).cloned())
}

/// A new context: a root (no parent) or a stream of the root `parent`. A stream of a root
/// this VM does not know gets no context: its callbacks then let it through untouched.
pub fn create(id: u32, parent: u32) {
    if parent == 0 {
        let root = Rc::new(RefCell::new(BallastRoot::default()));
        CONTEXTS.with(|c| c.borrow_mut().roots.push((id, root)));
        return;
    }
    let Some(root) = root(parent) else { return };
    let Ok(root) = root.try_borrow() else { return };
    let stream = Rc::new(RefCell::new(root.create_http_context(id)));
    CONTEXTS.with(|c| c.borrow_mut().streams.insert(id, stream));
}

/// `on_configure` of root `id` (`false`: refused, or no such root).
pub fn configure(id: u32, size: usize) -> bool {
    root(id)
        .and_then(|root| root.try_borrow_mut().ok().map(|mut r| r.on_configure(size)))
        .unwrap_or(false)
}

/// `on_tick` of root `id`.
pub fn tick(id: u32) {
    if let Some(root) = root(id) {
        if let Ok(mut root) = root.try_borrow_mut() {
            root.on_tick();
        }
    }
}

/// Runs an HTTP callback on stream `id`; a stream without a context continues.
pub fn with_stream(id: u32, callback: impl FnOnce(&mut BallastHttp) -> Action) -> Action {
    match stream(id) {
        Some(stream) => match stream.try_borrow_mut() {
            Ok(mut stream) => callback(&mut stream),
            Err(_) => Action::Continue,
        },
        None => Action::Continue,
    }
}

/// `on_done` of a stream or a root (`true`: done now, as it always is for ballast). A context
/// that is done is forgotten here: ballast exports no `proxy_on_delete` (nor `proxy_on_log`),
/// which saves the host two calls into the VM per request; nothing reaches a context after
/// its `on_done` but those two.
pub fn done(id: u32) -> bool {
    let stream = CONTEXTS.with(|c| c.borrow_mut().streams.remove(&id));
    if let Some(stream) = stream {
        return stream.try_borrow_mut().map_or(true, |mut s| s.on_done());
    }
    let Some(root) = root(id) else {
        return true;
    };
    let done = root.try_borrow_mut().map_or(true, |mut r| r.on_done());
    CONTEXTS.with(|c| c.borrow_mut().roots.retain(|(root_id, _)| *root_id != id));
    done
}
