//! `ballast-oci <plugin.wasm> <out-dir> [--tag TAG]`: writes the plugin's OCI image layout
//! (what `make oci` runs) and says which digest a WasmPlugin's `sha256` takes.

use ballast_oci::{pack_file, Tag};
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// Packs a proxy-wasm module as an OCI image layout in the shape Istio's WasmPlugin pulls
/// (compat variant: one tar+gzip layer holding plugin.wasm). Push it with
/// `skopeo copy --preserve-digests oci:<out-dir>:<tag> docker://<registry>/<repo>:<tag>`.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The module to pack (stored in the image as plugin.wasm).
    wasm: PathBuf,
    /// The layout directory to write; an earlier layout there is replaced, anything else is
    /// left alone and refused.
    out_dir: PathBuf,
    /// The tag naming the image in the layout (the version of ballast by default).
    #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
    tag: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = Tag::parse(&args.tag)
        .and_then(|tag| pack_file(&args.wasm, &args.out_dir, &tag).map(|written| (tag, written)));
    match result {
        Ok((tag, written)) => {
            println!(
                "wrote {} (tag {tag}): plugin.wasm {} bytes, layer {} bytes gzip",
                args.out_dir.display(),
                written.wasm_bytes,
                written.layer_bytes,
            );
            println!("manifest digest: {}", written.manifest_digest);
            println!(
                "digest file: {} (the hex is a WasmPlugin's sha256 for this image)",
                written.digest_file.display()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("ballast-oci: {error}");
            ExitCode::FAILURE
        }
    }
}
