//! Raw host calls from hand-written WAT: a test module imports a host function and re-exports it
//! as `t_<name>`, so a test can call the host with exactly the arguments it chooses and read the
//! status it answers. Signatures are strings of `i` (i32) and `I` (i64), one letter a parameter;
//! every import returns an i32 status.

use ballast_mock_host::Val;

fn wasm_types(signature: &str) -> String {
    signature
        .chars()
        .map(|c| if c == 'I' { "i64" } else { "i32" })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `(import "<module>" "<name>" (func $<name> …))`, one line.
pub fn import(module: &str, name: &str, signature: &str) -> String {
    format!(
        "  (import \"{module}\" \"{name}\" (func ${name} (param {}) (result i32)))\n",
        wasm_types(signature)
    )
}

/// The export `t_<name>` passing its parameters to the import `$<name>`, one line.
pub fn trampoline(name: &str, signature: &str) -> String {
    let gets: String = (0..signature.len())
        .map(|i| format!("local.get {i} "))
        .collect();
    format!(
        "  (func (export \"t_{name}\") (param {}) (result i32) {gets}call ${name})\n",
        wasm_types(signature)
    )
}

/// `args` as the wasm values `signature` declares.
pub fn values(args: &[i64], signature: &str) -> Vec<Val> {
    args.iter()
        .zip(signature.chars())
        .map(|(a, p)| {
            if p == 'I' {
                Val::I64(*a)
            } else {
                Val::I32(*a as i32)
            }
        })
        .collect()
}
