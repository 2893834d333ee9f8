//! `ballast-oci`'s refusals, as `make oci` users meet them: a wrong input file, a tag a
//! registry would reject, and an output directory that is not an earlier layout (left as it
//! was). Each exits non-zero with a message naming what is wrong.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)] // test code: a panic is a failure

mod common;

use common::{failure, scratch};
use std::process::Command;

fn ballast_oci() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ballast-oci"))
}

#[test]
fn refuses_bad_input_bad_tags_and_foreign_directories() {
    let root = scratch("cli");
    let not_wasm = root.join("plugin.txt");
    std::fs::write(&not_wasm, "hello, not a module").unwrap();
    let stderr = failure(ballast_oci().arg(&not_wasm).arg(root.join("out")));
    assert!(stderr.contains("is not a WebAssembly module"), "{stderr}");
    assert!(
        !root.join("out").exists(),
        "nothing written for a refused input"
    );

    let missing = root.join("missing.wasm");
    let stderr = failure(ballast_oci().arg(&missing).arg(root.join("out")));
    assert!(
        stderr.contains("cannot read the plugin") && stderr.contains("missing.wasm"),
        "{stderr}"
    );

    let wasm = root.join("tiny.wasm");
    std::fs::write(&wasm, b"\0asm\x01\0\0\0").unwrap();
    let stderr = failure(
        ballast_oci()
            .arg(&wasm)
            .arg(root.join("out"))
            .args(["--tag", "a:b"]),
    );
    assert!(stderr.contains("not a valid image tag"), "{stderr}");

    let foreign = root.join("src");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("main.rs"), "fn main() {}").unwrap();
    let stderr = failure(ballast_oci().arg(&wasm).arg(&foreign));
    assert!(
        stderr.contains("refusing to replace") && stderr.contains("not an OCI image layout"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(foreign.join("main.rs")).unwrap(),
        "fn main() {}"
    );
}
