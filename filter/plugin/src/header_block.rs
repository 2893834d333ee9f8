//! A request's headers read in one host call, then looked up in the VM.
//!
//! Why one call: every host call crosses the V8 boundary, and a header that is present also
//! makes the host call back into the VM to allocate room for its value. ballast asks for up to
//! a dozen request headers (priority, deadline hints, retry marks, idempotency key, route
//! conditions) and most are absent; one `proxy_get_header_map_pairs` costs about what two or
//! three single reads do and answers all of them, pseudo-headers included, with no allocation
//! per lookup.
//!
//! The serialised form (proxy-wasm ABI 0.2.1): a little-endian `u32` count, then for each pair
//! its name length and value length (`u32` each), then each name and value followed by a NUL.
//! A block that does not parse reads as empty: every header absent, as a failed read would be.

use std::ops::Range;

/// One header: where its name and value are in the block.
struct Entry {
    name: Range<usize>,
    value: Range<usize>,
}

/// The headers of one map, as the host serialised them.
#[derive(Default)]
pub struct HeaderBlock {
    bytes: Vec<u8>,
    entries: Vec<Entry>,
    /// Values that are not UTF-8, made text (U+FFFD for each bad sequence) when first asked.
    converted: Vec<(usize, String)>,
}

fn u32_at(bytes: &[u8], at: usize) -> Option<usize> {
    let word: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(word)).ok()
}

fn parse(bytes: &[u8]) -> Option<Vec<Entry>> {
    let count = u32_at(bytes, 0)?;
    // Each pair takes at least 10 bytes (two lengths, two NULs): a count beyond that is a lie.
    if count > bytes.len() / 10 {
        return None;
    }
    let mut entries = Vec::with_capacity(count);
    let mut data = 4usize.checked_add(count.checked_mul(8)?)?;
    for pair in 0..count {
        let lengths = 4 + pair * 8;
        let (name_len, value_len) = (u32_at(bytes, lengths)?, u32_at(bytes, lengths + 4)?);
        let name = data..data.checked_add(name_len)?;
        let value_start = name.end.checked_add(1)?;
        let value = value_start..value_start.checked_add(value_len)?;
        data = value.end.checked_add(1)?;
        if data > bytes.len() {
            return None;
        }
        entries.push(Entry { name, value });
    }
    Some(entries)
}

impl HeaderBlock {
    /// The block `bytes` holds (empty when `None` or malformed).
    pub fn new(bytes: Option<Vec<u8>>) -> HeaderBlock {
        let bytes = bytes.unwrap_or_default();
        let entries = if bytes.is_empty() {
            Vec::new()
        } else {
            parse(&bytes).unwrap_or_default()
        };
        HeaderBlock {
            bytes,
            entries,
            converted: Vec::new(),
        }
    }

    /// The first value of header `name` (ASCII case-insensitive, as Envoy's lookup is), as
    /// text.
    pub fn get(&mut self, name: &str) -> Option<&str> {
        let index = self.entries.iter().position(|entry| {
            self.bytes
                .get(entry.name.clone())
                .is_some_and(|n| n.eq_ignore_ascii_case(name.as_bytes()))
        })?;
        let raw = self.bytes.get(self.entries.get(index)?.value.clone())?;
        if std::str::from_utf8(raw).is_err() && !self.converted.iter().any(|(i, _)| *i == index) {
            let text = String::from_utf8_lossy(raw).into_owned();
            self.converted.push((index, text));
        }
        if let Some((_, text)) = self.converted.iter().find(|(i, _)| *i == index) {
            return Some(text);
        }
        let raw = self.bytes.get(self.entries.get(index)?.value.clone())?;
        std::str::from_utf8(raw).ok()
    }
}
