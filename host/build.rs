//! Builds every plugin under `plugins/` (bundled into the binary) and
//! `tests/plugins/` (used by the integration tests) for `wasm32-wasip2`,
//! once, with a nested cargo in its own target directory (so it never
//! waits on the outer build's lock), and generates `bundled.rs` naming them.

use std::path::{Path, PathBuf};
use std::process::Command;

fn plugin_dirs(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.join("Cargo.toml").exists() && path.join("plugin.toml").exists() {
            out.push((entry.file_name().to_string_lossy().into_owned(), path));
        }
    }
    out.sort();
    out
}

/// Asks cargo to rerun this script when `path` or any file below it changes.
fn watch(path: &Path) {
    println!("cargo:rerun-if-changed={}", path.display());
    if let Ok(entries) = std::fs::read_dir(path) {
        for entry in entries.flatten() {
            if entry.file_name() != "target" {
                watch(&entry.path());
            }
        }
    }
}

fn main() {
    let manifest_dir =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .parent()
        .expect("host/ lives in the workspace root")
        .to_path_buf();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    // OUT_DIR is <target>/<profile>/build/<crate>-<hash>/out.
    let target_dir = out_dir
        .ancestors()
        .nth(4)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| out_dir.join("t"));
    let wasm_target = target_dir.join("wasm-plugins");

    for watched in [
        "plugins",
        "tests/plugins",
        "sdk",
        "wit",
        "Cargo.lock",
        ".cargo/config.toml",
    ] {
        // Every file is named: cargo's own scan of a watched directory
        // missed edits deep inside it and left stale plugins in the tests.
        watch(&root.join(watched));
    }

    let bundled = plugin_dirs(&root.join("plugins"));
    let test_plugins = plugin_dirs(&root.join("tests/plugins"));
    let all: Vec<_> = bundled.iter().chain(test_plugins.iter()).collect();

    if !all.is_empty() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(&root)
            .args([
                "build",
                "--profile",
                "plugin",
                "--target",
                "wasm32-wasip2",
                "--locked",
            ])
            .env("CARGO_TARGET_DIR", &wasm_target)
            // The outer build's flags and wrappers are for the host target.
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("RUSTFLAGS")
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .env_remove("RUSTC_WRAPPER")
            .env_remove("CARGO_BUILD_TARGET");
        for (name, _) in &all {
            cmd.args(["-p", name]);
        }
        let status = cmd
            .status()
            .expect("run cargo for the wasm32-wasip2 plugins");
        assert!(
            status.success(),
            "building the plugins for wasm32-wasip2 failed (is the target installed? `rustup target add wasm32-wasip2`)"
        );
    }

    let wasm = |name: &str| {
        wasm_target
            .join("wasm32-wasip2/plugin")
            .join(format!("{}.wasm", name.replace('-', "_")))
    };
    let mut code = String::from(
        "/// Plugins shipped inside the binary: (name, plugin.toml, component).\npub const BUNDLED: &[(&str, &str, &[u8])] = &[\n",
    );
    for (name, dir) in &bundled {
        code.push_str(&format!(
            "    ({name:?}, include_str!({:?}), include_bytes!({:?})),\n",
            dir.join("plugin.toml").display().to_string(),
            wasm(name).display().to_string()
        ));
    }
    code.push_str("];\n\n/// Test plugins: (name, plugin.toml path, component path).\npub const TEST_PLUGINS: &[(&str, &str, &str)] = &[\n");
    for (name, dir) in &test_plugins {
        code.push_str(&format!(
            "    ({name:?}, {:?}, {:?}),\n",
            dir.join("plugin.toml").display().to_string(),
            wasm(name).display().to_string()
        ));
    }
    code.push_str("];\n");
    std::fs::write(out_dir.join("bundled.rs"), code).expect("write bundled.rs");
}
