//! `weft plugin new NAME`: a new plugin crate copied from the hello template.
//! Inside this workspace the crate joins it (`plugins/*`); anywhere else it
//! gets a standalone `Cargo.toml` pointing at this checkout's SDK.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// The template: every file of `plugins/hello`, by path inside the crate.
const TEMPLATE: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("../../plugins/hello/Cargo.toml")),
    (
        "plugin.toml",
        include_str!("../../plugins/hello/plugin.toml"),
    ),
    ("src/lib.rs", include_str!("../../plugins/hello/src/lib.rs")),
    (
        "src/notes.rs",
        include_str!("../../plugins/hello/src/notes.rs"),
    ),
];

/// The workspace this binary was built from.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn standalone_cargo_toml(name: &str, sdk: &Path) -> String {
    format!(
        r#"[package]
name = "{name}"
description = "A Weft plugin"
version = "0.1.0"
edition = "2024"
rust-version = "1.95"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
weft-sdk = {{ path = "{}" }}
serde = {{ version = "1", features = ["derive"] }}
serde_json = "1"

[profile.release]
opt-level = "s"
strip = true
lto = true
codegen-units = 1
"#,
        sdk.display()
    )
}

/// The template's manifest with the plugin's version set to `0.1.0` (the
/// template's own has been bumped with every change to it).
fn first_version(manifest: &str) -> String {
    let mut out: String = manifest
        .lines()
        .map(|l| {
            if l.starts_with("version = ") {
                "version = \"0.1.0\""
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    out.push('\n');
    out
}

/// Writes the new crate `dir/name`.
pub fn scaffold(name: &str, dir: &Path) -> anyhow::Result<()> {
    let valid = (1..=48).contains(&name.len())
        && name.as_bytes()[0].is_ascii_lowercase()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    anyhow::ensure!(valid, "plugin names match [a-z][a-z0-9-]{{0,47}}");
    let root = dir.join(name);
    anyhow::ensure!(!root.exists(), "{} already exists", root.display());
    std::fs::create_dir_all(root.join("src"))
        .with_context(|| format!("creating {}", root.display()))?;

    let workspace = workspace_root();
    let absolute = std::path::absolute(&root)?;
    let in_workspace = absolute.parent() == Some(workspace.join("plugins").as_path());
    for (path, text) in TEMPLATE {
        let text = match *path {
            "Cargo.toml" if !in_workspace => standalone_cargo_toml(name, &workspace.join("sdk")),
            "Cargo.toml" => text
                .replace("name = \"hello\"", &format!("name = \"{name}\""))
                .replace(
                    "The template Weft plugin: a greeting, a counter and notes",
                    "A Weft plugin",
                ),
            "plugin.toml" => first_version(text)
                .replace("name = \"hello\"", &format!("name = \"{name}\""))
                .replace(
                    "The template plugin: a greeting, a counter and notes.",
                    "A Weft plugin.",
                ),
            _ => (*text).to_owned(),
        };
        std::fs::write(root.join(path), text).with_context(|| format!("writing {path}"))?;
    }
    let build = if in_workspace {
        format!("cargo build --release --target wasm32-wasip2 -p {name}")
    } else {
        format!(
            "cd {} && cargo build --release --target wasm32-wasip2",
            root.display()
        )
    };
    println!("created {}\nbuild it with:\n  {build}", root.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaffold_copies_every_template_file_and_renames() {
        let dir = tempfile::tempdir().expect("tempdir");
        scaffold("my-plugin", dir.path()).expect("scaffold");
        let root = dir.path().join("my-plugin");
        for (path, _) in TEMPLATE {
            assert!(root.join(path).exists(), "{path} missing");
        }
        let manifest = std::fs::read_to_string(root.join("plugin.toml")).expect("manifest");
        assert!(manifest.contains("name = \"my-plugin\""));
        assert!(manifest.contains("version = \"0.1.0\"\n"), "{manifest}");
        crate::catalog::Manifest::parse(&manifest).expect("the scaffolded manifest is valid");
        let cargo = std::fs::read_to_string(root.join("Cargo.toml")).expect("cargo");
        assert!(
            cargo.contains("name = \"my-plugin\"") && !cargo.contains(".workspace"),
            "outside the workspace it stands alone: {cargo}"
        );
        assert!(
            scaffold("my-plugin", dir.path()).is_err(),
            "never overwrites"
        );
        assert!(scaffold("Bad Name", dir.path()).is_err());
    }
}
