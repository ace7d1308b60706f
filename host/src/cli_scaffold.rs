//! `weft plugin new NAME`: a new plugin crate copied from the hello template.

use std::path::Path;

use anyhow::Context;

const TEMPLATE_CARGO: &str = include_str!("../../plugins/hello/Cargo.toml");
const TEMPLATE_MANIFEST: &str = include_str!("../../plugins/hello/plugin.toml");
const TEMPLATE_LIB: &str = include_str!("../../plugins/hello/src/lib.rs");

/// Writes `dir/name/{Cargo.toml, plugin.toml, src/lib.rs}`.
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
    let rename = |text: &str| text.replace("name = \"hello\"", &format!("name = \"{name}\""));
    std::fs::write(root.join("Cargo.toml"), rename(TEMPLATE_CARGO))?;
    std::fs::write(root.join("plugin.toml"), rename(TEMPLATE_MANIFEST))?;
    std::fs::write(root.join("src/lib.rs"), TEMPLATE_LIB)?;
    println!(
        "created {} — build it with:\n  cargo build --release --target wasm32-wasip2 -p {name}",
        root.display()
    );
    Ok(())
}
