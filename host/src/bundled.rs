//! Plugins built for `wasm32-wasip2` by `build.rs`: the bundled ones are
//! inside the binary; the test plugins are files in the target directory.

include!(concat!(env!("OUT_DIR"), "/bundled.rs"));

/// The manifest text and component bytes of test plugin `name`.
pub fn test_plugin(name: &str) -> std::io::Result<(String, Vec<u8>)> {
    let (_, manifest, component) = TEST_PLUGINS
        .iter()
        .find(|(n, _, _)| *n == name)
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no test plugin {name}"),
            )
        })?;
    Ok((
        std::fs::read_to_string(manifest)?,
        std::fs::read(component)?,
    ))
}
