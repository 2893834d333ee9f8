//! Properties (Envoy "attributes") and their encodings.
//!
//! Envoy serializes a CEL value by type: strings and bytes raw, int64/uint64/double 8 bytes
//! little-endian, bool 1 byte, timestamps and durations as int64 nanoseconds, maps and lists
//! as serialized pairs. A path is its segments joined by NUL (`xds.route_name` arrives as
//! `xds\0route_name`), so the tables are keyed by that wire form and a lookup costs one hash
//! of the bytes the plugin sent.
//!
//! Scope follows Envoy: `plugin_name`, `plugin_root_id`, `plugin_vm_id` and `node.*` are
//! readable from every context; stream attributes (`request.*`, `xds.*`, `source.*`, ...)
//! only from an HTTP context. `proxy_set_property` stores into the stream's filter state
//! (NOT_FOUND from a root context) and is readable back through a single-segment path.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use crate::clock::unix_ns;
use crate::pairs::serialize_pairs;

/// A typed property value, encoded as Envoy encodes the CEL value.
#[derive(Debug, Clone, PartialEq)]
pub enum PropertyValue {
    String(String),
    Bytes(Vec<u8>),
    Int(i64),
    Uint(u64),
    Double(f64),
    Bool(bool),
    Timestamp(SystemTime),
    Duration(Duration),
    Map(Vec<(String, String)>),
}

impl PropertyValue {
    /// The bytes Envoy hands to the plugin.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::String(s) => s.as_bytes().to_vec(),
            Self::Bytes(b) => b.clone(),
            Self::Int(i) => i.to_le_bytes().to_vec(),
            Self::Uint(u) => u.to_le_bytes().to_vec(),
            Self::Double(d) => d.to_le_bytes().to_vec(),
            Self::Bool(b) => vec![u8::from(*b)],
            Self::Timestamp(t) => i64::try_from(unix_ns(*t))
                .unwrap_or(i64::MAX)
                .to_le_bytes()
                .to_vec(),
            Self::Duration(d) => i64::try_from(d.as_nanos())
                .unwrap_or(i64::MAX)
                .to_le_bytes()
                .to_vec(),
            Self::Map(pairs) => {
                let mut out = Vec::new();
                serialize_pairs(
                    pairs.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())),
                    pairs.len(),
                    &mut out,
                );
                out
            }
        }
    }
}

impl From<&str> for PropertyValue {
    fn from(s: &str) -> Self {
        Self::String(s.to_string())
    }
}

impl From<String> for PropertyValue {
    fn from(s: String) -> Self {
        Self::String(s)
    }
}

impl From<i64> for PropertyValue {
    fn from(i: i64) -> Self {
        Self::Int(i)
    }
}

impl From<u64> for PropertyValue {
    fn from(u: u64) -> Self {
        Self::Uint(u)
    }
}

impl From<bool> for PropertyValue {
    fn from(b: bool) -> Self {
        Self::Bool(b)
    }
}

impl From<SystemTime> for PropertyValue {
    fn from(t: SystemTime) -> Self {
        Self::Timestamp(t)
    }
}

impl From<Duration> for PropertyValue {
    fn from(d: Duration) -> Self {
        Self::Duration(d)
    }
}

/// Converts a dotted path (`xds.route_name`) to the ABI form (`xds\0route_name`).
/// A path given with NUL separators already is kept as is.
pub fn wire_path(path: &str) -> Vec<u8> {
    if path.contains('\0') {
        return path.as_bytes().to_vec();
    }
    path.bytes()
        .map(|b| if b == b'.' { 0 } else { b })
        .collect()
}

/// Top-level attribute names Envoy resolves itself; anything else is looked up in the
/// filter state written by `proxy_set_property`.
const RESERVED_ROOTS: &[&[u8]] = &[
    b"request",
    b"response",
    b"connection",
    b"upstream",
    b"source",
    b"destination",
    b"metadata",
    b"filter_state",
    b"upstream_filter_state",
    b"xds",
    b"node",
    b"plugin_name",
    b"plugin_root_id",
    b"plugin_vm_id",
    b"connection_id",
];

/// Names readable from every context (root included).
const GLOBAL_ROOTS: &[&[u8]] = &[b"node", b"plugin_name", b"plugin_root_id", b"plugin_vm_id"];

pub(crate) fn first_segment(path: &[u8]) -> &[u8] {
    match path.iter().position(|b| *b == 0) {
        Some(i) => &path[..i],
        None => path,
    }
}

pub(crate) fn is_reserved(root: &[u8]) -> bool {
    RESERVED_ROOTS.contains(&root)
}

pub(crate) fn is_global(root: &[u8]) -> bool {
    GLOBAL_ROOTS.contains(&root)
}

/// A table of encoded properties keyed by wire path.
#[derive(Debug, Clone, Default)]
pub(crate) struct PropertyTable {
    map: HashMap<Vec<u8>, Vec<u8>>,
}

impl PropertyTable {
    pub(crate) fn set(&mut self, path: &str, value: &PropertyValue) {
        self.map.insert(wire_path(path), value.encode());
    }

    pub(crate) fn set_raw(&mut self, path: &[u8], value: &[u8]) {
        match self.map.get_mut(path) {
            Some(v) => {
                v.clear();
                v.extend_from_slice(value);
            }
            None => {
                self.map.insert(path.to_vec(), value.to_vec());
            }
        }
    }

    pub(crate) fn get(&self, path: &[u8]) -> Option<&[u8]> {
        self.map.get(path).map(Vec::as_slice)
    }

    pub(crate) fn clear(&mut self) {
        self.map.clear();
    }
}
