//! A ustar archive holding one regular file: the layer's content, `plugin.wasm`.
//!
//! Written here rather than with a tar crate because one fixed header is all the layer needs and
//! every byte of it must be reproducible: the header carries no clock, owner or umask (mtime 0,
//! uid/gid 0, mode 0644, no user or group names), so the same module always gives the same
//! archive, the same `diff_id` and, through the layer and config, the same manifest digest. The
//! readers that matter (Istio's, umoci's and skopeo's, all Go's `archive/tar`, and GNU tar)
//! identify ustar by its magic and check the header checksum.

use crate::Error;

/// Size of a tar block: headers, padded file data and the end-of-archive marker are all blocks.
const BLOCK: usize = 512;

/// Largest size the 11 octal digits of a ustar size field hold (8 GiB - 1).
const MAX_SIZE: u64 = 0o777_7777_7777;

/// Offset of the 8-byte checksum field in the header.
const CHECKSUM_AT: usize = 148;

/// The ustar archive of one regular file named `name` with `contents`: a header block, the data
/// padded with zeros to a whole block, and two zero blocks that end the archive.
///
/// `name` must fit the 100-byte name field; the caller passes a constant.
pub fn single_file(name: &str, contents: &[u8]) -> Result<Vec<u8>, Error> {
    let size = u64::try_from(contents.len()).map_err(|_| Error::TooLarge(u64::MAX))?;
    if size > MAX_SIZE {
        return Err(Error::TooLarge(size));
    }
    let header = header(name, size);
    let padding = (BLOCK - contents.len() % BLOCK) % BLOCK;
    let mut archive = Vec::with_capacity(BLOCK + contents.len() + padding + 2 * BLOCK);
    archive.extend_from_slice(&header);
    archive.extend_from_slice(contents);
    archive.resize(archive.len() + padding + 2 * BLOCK, 0);
    Ok(archive)
}

/// The 512-byte ustar header of a regular file, checksum included.
fn header(name: &str, size: u64) -> Vec<u8> {
    let mut header = Vec::with_capacity(BLOCK);
    field(&mut header, name.as_bytes(), 100); // name
    octal(&mut header, 0o644, 8); // mode
    octal(&mut header, 0, 8); // uid
    octal(&mut header, 0, 8); // gid
    octal(&mut header, size, 12); // size
    octal(&mut header, 0, 12); // mtime: the epoch, so the bytes never depend on the clock
    field(&mut header, b"        ", 8); // checksum: counted as spaces, filled in below
    field(&mut header, b"0", 1); // typeflag: regular file
    field(&mut header, b"", 100); // linkname
    field(&mut header, b"ustar\0", 6); // magic
    field(&mut header, b"00", 2); // version
    field(&mut header, b"", 32); // uname
    field(&mut header, b"", 32); // gname
    octal(&mut header, 0, 8); // devmajor
    octal(&mut header, 0, 8); // devminor
    field(&mut header, b"", 155); // prefix
    header.resize(BLOCK, 0);

    // The checksum is the sum of the header's bytes as unsigned values, taken while the
    // checksum field holds spaces; written as six octal digits, a NUL and a space.
    let sum: u32 = header.iter().map(|&byte| u32::from(byte)).sum();
    let mut checksum = Vec::with_capacity(8);
    octal(&mut checksum, u64::from(sum), 7);
    checksum.push(b' ');
    if let Some(slot) = header.get_mut(CHECKSUM_AT..CHECKSUM_AT + 8) {
        slot.copy_from_slice(&checksum);
    }
    header
}

/// Appends `value` NUL-padded to `width` bytes (truncated if longer; callers pass short values).
fn field(out: &mut Vec<u8>, value: &[u8], width: usize) {
    let start = out.len();
    out.extend(value.iter().take(width));
    out.resize(start + width, 0);
}

/// Appends `value` as `width - 1` zero-padded octal digits and a NUL terminator.
fn octal(out: &mut Vec<u8>, value: u64, width: usize) {
    let digits = format!("{value:0>pad$o}", pad = width - 1);
    field(out, digits.as_bytes(), width - 1);
    out.push(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(bytes: &[u8]) -> &str {
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        std::str::from_utf8(&bytes[..end]).unwrap()
    }

    #[test]
    fn header_fields_sit_at_their_ustar_offsets() {
        let archive = single_file("plugin.wasm", b"\0asm\x01\0\0\0").unwrap();
        let h = &archive[..BLOCK];
        assert_eq!(text(&h[0..100]), "plugin.wasm");
        assert_eq!(&h[100..108], b"0000644\0");
        assert_eq!(&h[108..116], b"0000000\0");
        assert_eq!(&h[116..124], b"0000000\0");
        assert_eq!(&h[124..136], b"00000000010\0");
        assert_eq!(&h[136..148], b"00000000000\0");
        assert_eq!(h[156], b'0');
        assert_eq!(&h[257..265], b"ustar\x0000");
    }

    #[test]
    fn checksum_is_the_byte_sum_with_its_own_field_as_spaces() {
        let archive = single_file("plugin.wasm", &[7u8; 1000]).unwrap();
        let h = &archive[..BLOCK];
        let stored = u32::from_str_radix(text(&h[148..154]), 8).unwrap();
        assert_eq!(&h[154..156], b"\0 ");
        let recomputed: u32 = h
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    u32::from(b' ')
                } else {
                    u32::from(b)
                }
            })
            .sum();
        assert_eq!(stored, recomputed);
    }

    #[test]
    fn data_is_padded_to_blocks_and_followed_by_two_zero_blocks() {
        for (len, blocks) in [(0, 3), (1, 4), (512, 4), (513, 5), (1024, 5)] {
            let contents = vec![0xabu8; len];
            let archive = single_file("plugin.wasm", &contents).unwrap();
            assert_eq!(archive.len(), blocks * BLOCK, "{len} bytes of data");
            assert_eq!(&archive[BLOCK..BLOCK + len], &contents[..]);
            assert!(archive[BLOCK + len..].iter().all(|&b| b == 0));
        }
    }
}
