//! Embeds the web UI (`web/dist`, built by `npm ci && npm run build` in `web/`) into uvmmd.
//!
//! Why a build script and not a crate like rust-embed: it is forty lines, needs no new
//! dependency, and decides in one place what happens when the UI was not built:
//! - `web/dist/index.html` exists: every file under `web/dist` is embedded with its content
//!   type and an ETag computed here;
//! - it does not: uvmmd is built with a single page that says "the web UI was not built
//!   into this uvmmd" and how to build it (never a silent empty UI), and cargo prints a
//!   warning. With `UVMM_REQUIRE_WEB=1` (set by scripts/demo.sh and scripts/test.sh, and
//!   for release builds) a missing UI is a build error instead.
//!
//! The Rust build never runs Node itself: building the UI is the README's step before
//! cargo, so `cargo build` works on a machine without Node.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let web = manifest.join("../../web");
    let dist = web.join("dist");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it")).join("web_assets.rs");
    println!("cargo:rerun-if-env-changed=UVMM_REQUIRE_WEB");
    let mut files = Vec::new();
    if dist.join("index.html").is_file() {
        println!("cargo:rerun-if-changed={}", dist.display());
        collect(&dist, &dist, &mut files);
        files.sort();
    } else {
        // Watch web/ itself (a few hundred files with node_modules): building the UI
        // creates web/dist there, and the next cargo build picks it up.
        println!("cargo:rerun-if-changed={}", web.display());
        if std::env::var("UVMM_REQUIRE_WEB").is_ok_and(|v| v == "1") {
            panic!(
                "UVMM_REQUIRE_WEB=1 but the web UI is not built: run `npm ci && npm run build` in {}",
                web.display()
            );
        }
        println!(
            "cargo:warning=web/dist is missing: uvmmd serves a 'web UI not built' page at /; build it with `npm ci && npm run build` in web/"
        );
    }
    let mut code = String::new();
    writeln!(
        code,
        "/// Whether the real UI was embedded (false: the 'not built' page)."
    )
    .unwrap();
    writeln!(code, "pub const UI_BUILT: bool = {};", !files.is_empty()).unwrap();
    writeln!(
        code,
        "/// (URL path, content, ETag) of every embedded file."
    )
    .unwrap();
    writeln!(code, "pub static FILES: &[(&str, &[u8], &str)] = &[").unwrap();
    for (url, path) in &files {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        writeln!(
            code,
            "    ({url:?}, include_bytes!({:?}), \"\\\"{:016x}\\\"\"),",
            path.display().to_string(),
            fnv1a(&bytes)
        )
        .unwrap();
    }
    writeln!(code, "];").unwrap();
    std::fs::write(&out, code).unwrap_or_else(|e| panic!("write {}: {e}", out.display()));
}

/// Every regular file below `dir`, as (URL path from `root`, file path).
fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            collect(root, &path, files);
        } else if path.is_file() {
            let rel = path.strip_prefix(root).expect("below root");
            let url: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            files.push((format!("/{}", url.join("/")), path));
        }
    }
}

/// A content hash for the ETag: stable across builds of the same file.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
