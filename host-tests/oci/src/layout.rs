//! Writes the image as an OCI image layout directory (`oci-layout`, `index.json`,
//! `blobs/sha256/<hex>`), the on-disk form skopeo and umoci read as `oci:DIR:TAG` / `DIR:TAG`
//! and push from, plus `manifest-digest.txt` with the digest a WasmPlugin's `sha256` takes.
//!
//! A rebuild replaces the previous layout rather than adding to it, so the directory never
//! collects stale blobs or a second tag. The new layout is written beside the old one and
//! swapped in by renames; a directory that holds anything but an earlier layout is refused, so
//! a mistyped output path cannot delete unrelated files.

use crate::{Error, Image};
use std::fs;
use std::path::{Path, PathBuf};

/// The layout's marker file (its presence is what makes a directory replaceable here).
const OCI_LAYOUT_FILE: &str = "oci-layout";
/// Its content: the only layout version the spec defines, and the one umoci requires.
const OCI_LAYOUT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;
/// The file holding the manifest digest's 64 hex characters and a newline.
pub const DIGEST_FILE: &str = "manifest-digest.txt";

/// Writes `image` as a layout at `out_dir`, replacing an earlier layout there. Returns the
/// path of the digest file.
pub fn write(image: &Image, out_dir: &Path) -> Result<PathBuf, Error> {
    let name = out_dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::OutputNotNamed(out_dir.to_path_buf()))?;
    let parent = match out_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let replacing = check_replaceable(out_dir)?;

    fs::create_dir_all(&parent).map_err(Error::io("create", &parent))?;
    let staging = parent.join(format!(".{name}.new-{}", std::process::id()));
    remove_if_present(&staging)?;
    fill(image, &staging).inspect_err(|_| {
        // Best effort: the error being returned is the one that matters.
        let _ = fs::remove_dir_all(&staging);
    })?;

    if replacing {
        let old = parent.join(format!(".{name}.old-{}", std::process::id()));
        remove_if_present(&old)?;
        fs::rename(out_dir, &old).map_err(Error::io("move aside", out_dir))?;
        if let Err(source) = fs::rename(&staging, out_dir) {
            // Put the previous layout back so a failed rebuild leaves what was there.
            let _ = fs::rename(&old, out_dir);
            let _ = fs::remove_dir_all(&staging);
            return Err(Error::Io {
                action: "move into place",
                path: out_dir.to_path_buf(),
                source,
            });
        }
        fs::remove_dir_all(&old).map_err(Error::io("remove the previous layout at", &old))?;
    } else {
        fs::rename(&staging, out_dir).map_err(Error::io("move into place", out_dir))?;
    }
    Ok(out_dir.join(DIGEST_FILE))
}

/// Whether `out_dir` holds something to replace: `false` if it is absent or empty, `true` if
/// it is a layout, an error otherwise.
fn check_replaceable(out_dir: &Path) -> Result<bool, Error> {
    let metadata = match fs::symlink_metadata(out_dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io("inspect", out_dir)(e)),
    };
    if !metadata.is_dir() {
        return Err(Error::NotALayout(out_dir.to_path_buf()));
    }
    let mut entries = fs::read_dir(out_dir).map_err(Error::io("list", out_dir))?;
    if entries.next().is_none() {
        fs::remove_dir(out_dir).map_err(Error::io("remove the empty directory", out_dir))?;
        return Ok(false);
    }
    if out_dir.join(OCI_LAYOUT_FILE).is_file() {
        Ok(true)
    } else {
        Err(Error::NotALayout(out_dir.to_path_buf()))
    }
}

/// Writes every file of the layout under `dir` (which must not exist).
fn fill(image: &Image, dir: &Path) -> Result<(), Error> {
    let blobs = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).map_err(Error::io("create", &blobs))?;
    for blob in [&image.layer, &image.config, &image.manifest] {
        write_file(&blobs.join(blob.digest.hex()), &blob.bytes)?;
    }
    write_file(&dir.join(OCI_LAYOUT_FILE), OCI_LAYOUT.as_bytes())?;
    write_file(&dir.join("index.json"), &image.index_json)?;
    let digest_line = format!("{}\n", image.manifest.digest.hex());
    write_file(&dir.join(DIGEST_FILE), digest_line.as_bytes())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    fs::write(path, bytes).map_err(Error::io("write", path))
}

fn remove_if_present(dir: &Path) -> Result<(), Error> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("remove", dir)(e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{image, Tag};

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("ballast-oci-unit-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn image(wasm: &[u8]) -> Image {
        image::build(wasm, &Tag::parse("t").unwrap()).unwrap()
    }

    fn blob_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir.join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_rebuild_replaces_the_blobs_and_leaves_no_staging_directories() {
        let root = scratch("replace");
        let out = root.join("oci");
        write(&image(b"\0asm\x01\0\0\0first"), &out).unwrap();
        let second = image(b"\0asm\x01\0\0\0second");
        let digest_file = write(&second, &out).unwrap();

        let mut expected = vec![
            second.manifest.digest.hex(),
            second.config.digest.hex(),
            second.layer.digest.hex(),
        ];
        expected.sort();
        assert_eq!(blob_names(&out), expected, "only the new image's blobs");
        assert_eq!(
            fs::read_to_string(digest_file).unwrap(),
            format!("{}\n", second.manifest.digest.hex())
        );
        let leftovers: Vec<_> = fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("oci")]);
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn refuses_to_replace_a_directory_that_is_not_a_layout() {
        let root = scratch("refuse");
        let out = root.join("precious");
        fs::create_dir_all(&out).unwrap();
        fs::write(out.join("notes.txt"), "keep me").unwrap();
        let err = write(&image(b"\0asm\x01\0\0\0"), &out).unwrap_err();
        assert!(matches!(err, Error::NotALayout(_)), "{err}");
        assert_eq!(
            fs::read_to_string(out.join("notes.txt")).unwrap(),
            "keep me"
        );

        let file = root.join("a-file");
        fs::write(&file, "x").unwrap();
        assert!(matches!(
            write(&image(b"\0asm\x01\0\0\0"), &file),
            Err(Error::NotALayout(_))
        ));
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn an_unnamed_output_is_refused() {
        assert!(matches!(
            write(&image(b"\0asm\x01\0\0\0"), Path::new("..")),
            Err(Error::OutputNotNamed(_))
        ));
    }
}
