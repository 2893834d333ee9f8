//! Header maps and their wire format.
//!
//! The ABI serializes a map as: u32 count, then count × (u32 key length, u32 value length),
//! then each key and value followed by a NUL byte (all little-endian). Envoy returns an
//! empty map as a null pointer with size 0 (the Rust SDK turns that into an empty Vec; a
//! 1-byte buffer would make it panic). Parsing follows proxy-wasm-cpp-host: any malformed
//! input yields an empty list rather than an error.
//!
//! Keys are lower-cased on every write, as Envoy's `LowerCaseString` does, and pseudo
//! headers (`:name`) are kept in front of regular ones, as Envoy's header map does.

/// Envoy's cap on the size of a serialized map it will parse (PROXY_WASM_HOST_PAIRS_MAX_BYTES).
const MAX_PAIRS_BYTES: usize = 32 * 1024 * 1024;
/// Envoy's cap on the number of pairs (PROXY_WASM_HOST_PAIRS_MAX_COUNT).
const MAX_PAIRS_COUNT: usize = 1024 * 1024;

/// An ordered multi-map of header names to values, as bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HeaderMap {
    entries: Vec<(Vec<u8>, Vec<u8>)>,
    len: usize,
}

fn lower(key: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(key);
    out.make_ascii_lowercase();
}

impl HeaderMap {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + Clone {
        self.entries[..self.len]
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
    }

    /// Removes every entry, keeping the allocations for reuse.
    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }

    /// Sum of key and value lengths (Envoy's `byteSize()`).
    pub(crate) fn byte_size(&self) -> usize {
        self.iter().map(|(k, v)| k.len() + v.len()).sum()
    }

    pub(crate) fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    }

    /// Appends a pair (key lower-cased); pseudo headers go after the last pseudo header.
    pub(crate) fn add(&mut self, key: &[u8], value: &[u8]) {
        if self.len == self.entries.len() {
            self.entries.push((Vec::new(), Vec::new()));
        }
        let slot = self.len;
        if let Some((k, v)) = self.entries.get_mut(slot) {
            lower(key, k);
            v.clear();
            v.extend_from_slice(value);
        }
        self.len += 1;
        // A pseudo header moves in front of the regular ones, unless it already follows a
        // pseudo header (or is first): then no regular one precedes it.
        let after_pseudo = match slot.checked_sub(1) {
            None => true,
            Some(prev) => self.entries[prev].0.first() == Some(&b':'),
        };
        if key.first() == Some(&b':') && !after_pseudo {
            let pos = self.entries[..slot]
                .iter()
                .position(|(k, _)| k.first() != Some(&b':'));
            if let Some(pos) = pos {
                self.entries[pos..=slot].rotate_right(1);
            }
        }
    }

    pub(crate) fn remove(&mut self, key: &[u8]) {
        let mut i = 0;
        while i < self.len {
            if self.entries[i].0.eq_ignore_ascii_case(key) {
                self.entries[i..self.len].rotate_left(1);
                self.len -= 1;
            } else {
                i += 1;
            }
        }
    }

    /// Envoy's `setCopy`: the first entry takes the value, later duplicates go.
    pub(crate) fn replace(&mut self, key: &[u8], value: &[u8]) {
        let first = self.entries[..self.len]
            .iter()
            .position(|(k, _)| k.eq_ignore_ascii_case(key));
        match first {
            Some(i) => {
                if let Some((_, v)) = self.entries.get_mut(i) {
                    v.clear();
                    v.extend_from_slice(value);
                }
                let mut j = i + 1;
                while j < self.len {
                    if self.entries[j].0.eq_ignore_ascii_case(key) {
                        self.entries[j..self.len].rotate_left(1);
                        self.len -= 1;
                    } else {
                        j += 1;
                    }
                }
            }
            None => self.add(key, value),
        }
    }

    pub(crate) fn set_all<'a>(&mut self, pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) {
        self.clear();
        for (k, v) in pairs {
            self.add(k, v);
        }
    }

    /// Size of the serialized form.
    #[cfg(test)]
    pub(crate) fn serialized_size(&self) -> usize {
        4 + self
            .iter()
            .map(|(k, v)| 8 + k.len() + v.len() + 2)
            .sum::<usize>()
    }

    /// Appends the serialized form to `out`.
    pub(crate) fn serialize_into(&self, out: &mut Vec<u8>) {
        serialize_pairs(self.iter(), self.len, out);
    }

    pub(crate) fn to_strings(&self) -> Vec<(String, String)> {
        self.iter()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect()
    }
}

/// Serializes pairs in the ABI format.
pub(crate) fn serialize_pairs<'a>(
    pairs: impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
    count: usize,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(&u32::try_from(count).unwrap_or(u32::MAX).to_le_bytes());
    for (k, v) in pairs.clone() {
        out.extend_from_slice(&u32::try_from(k.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(&u32::try_from(v.len()).unwrap_or(u32::MAX).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k);
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
}

fn read_u32(bytes: &[u8], at: usize) -> Option<usize> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    let arr: [u8; 4] = b.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(arr)).ok()
}

/// Parses a serialized map; malformed input gives an empty list (as Envoy's `toPairs`).
pub(crate) fn parse_pairs(bytes: &[u8]) -> Vec<(&[u8], &[u8])> {
    parse_pairs_checked(bytes).unwrap_or_default()
}

fn parse_pairs_checked(bytes: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    if bytes.len() > MAX_PAIRS_BYTES {
        return None;
    }
    let count = read_u32(bytes, 0)?;
    if count > MAX_PAIRS_COUNT {
        return None;
    }
    let mut pos = 4usize.checked_add(count.checked_mul(8)?)?;
    if pos > bytes.len() {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let klen = read_u32(bytes, 4 + i * 8)?;
        let vlen = read_u32(bytes, 8 + i * 8)?;
        let key = bytes.get(pos..pos.checked_add(klen)?)?;
        pos += klen;
        if *bytes.get(pos)? != 0 {
            return None;
        }
        pos += 1;
        let value = bytes.get(pos..pos.checked_add(vlen)?)?;
        pos += vlen;
        if *bytes.get(pos)? != 0 {
            return None;
        }
        pos += 1;
        out.push((key, value));
    }
    (pos == bytes.len()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_pseudo_order() {
        let mut m = HeaderMap::default();
        m.add(b"X-A", b"1");
        m.add(b":path", b"/");
        m.add(b":method", b"GET");
        let names: Vec<_> = m.iter().map(|(k, _)| k.to_vec()).collect();
        assert_eq!(
            names,
            vec![b":path".to_vec(), b":method".to_vec(), b"x-a".to_vec()]
        );
        let mut out = Vec::new();
        m.serialize_into(&mut out);
        assert_eq!(out.len(), m.serialized_size());
        let parsed = parse_pairs(&out);
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[2], (&b"x-a"[..], &b"1"[..]));
    }

    #[test]
    fn replace_and_remove() {
        let mut m = HeaderMap::default();
        m.add(b"a", b"1");
        m.add(b"b", b"2");
        m.add(b"a", b"3");
        m.replace(b"A", b"9");
        assert_eq!(
            m.to_strings(),
            vec![("a".into(), "9".into()), ("b".into(), "2".into())]
        );
        m.remove(b"a");
        assert_eq!(m.len(), 1);
        assert_eq!(m.byte_size(), 2);
    }

    #[test]
    fn malformed_is_empty() {
        assert!(parse_pairs(&[]).is_empty());
        assert!(parse_pairs(&[1, 0, 0, 0]).is_empty());
        assert!(parse_pairs(&[0, 0, 0, 0]).is_empty());
        assert!(parse_pairs(&[0, 0, 0, 0, 7]).is_empty());
    }
}
