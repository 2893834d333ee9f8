//! Header edits the stages ask for, carried out by the plugin.
//!
//! Why a value: a stage decides what the next hop must see; only the plugin touches the host.
//! The same edit list is applied at once for a forwarded request, or later, when a request that
//! waited in the concurrency queue leaves it (with values computed at that moment).

use std::borrow::Cow;

/// A header name: a constant of ballast's, or one from the configuration.
pub type HeaderName = Cow<'static, str>;

/// Set a header (replacing any value) or, with `None`, remove it.
pub type HeaderEdit = (HeaderName, Option<String>);
