//! Packing rendered files into the zip `generate` returns.
//!
//! The archive is deterministic (fixed timestamps, files in path order):
//! the same template and answers give the same bytes, so a response can be
//! cached or compared.

use std::collections::BTreeSet;
use std::io::{Cursor, Write};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use crate::paths::{self, Rendered};
use crate::{Error, RenderedFile, Result};

/// Packs `files` under one top directory `root_dir_name` (such as the
/// project's name), so unpacking never scatters files into the current
/// directory. An empty `root_dir_name` puts them at the top level.
///
/// Files whose content starts with `#!` are marked executable (scripts);
/// every other file is `0644`.
pub fn to_zip(files: &[RenderedFile], root_dir_name: &str) -> Result<Vec<u8>> {
    check_root(root_dir_name)?;
    let prefix = if root_dir_name.is_empty() {
        String::new()
    } else {
        format!("{root_dir_name}/")
    };
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .last_modified_time(DateTime::default());
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let mut dirs = BTreeSet::new();
    if !prefix.is_empty() {
        dirs.insert(prefix.clone());
        zip.add_directory(prefix.as_str(), options.unix_permissions(0o755))?;
    }
    let mut sorted: Vec<&RenderedFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    for file in sorted {
        // `RenderedFile`s are plain data: check them again rather than trust
        // that they came from `render`.
        if paths::normalize_rendered(&file.path) != Ok(Rendered::File(file.path.clone())) {
            return Err(Error::ZipPath {
                path: file.path.clone(),
            });
        }
        // Directory entries first, so every unzip tool creates them with
        // sane permissions.
        let mut dir = prefix.clone();
        if let Some((parents, _)) = file.path.rsplit_once('/') {
            for segment in parents.split('/') {
                dir.push_str(segment);
                dir.push('/');
                if dirs.insert(dir.clone()) {
                    zip.add_directory(dir.as_str(), options.unix_permissions(0o755))?;
                }
            }
        }
        let mode = if file.bytes.starts_with(b"#!") {
            0o755
        } else {
            0o644
        };
        zip.start_file(
            format!("{prefix}{}", file.path),
            options.unix_permissions(mode),
        )?;
        zip.write_all(&file.bytes)
            .map_err(|e| Error::Zip(e.into()))?;
    }
    Ok(zip.finish()?.into_inner())
}

fn check_root(root: &str) -> Result<()> {
    if root.is_empty() {
        return Ok(());
    }
    let single_segment = !root.contains('/');
    if !single_segment || paths::normalize_rendered(root) != Ok(Rendered::File(root.to_owned())) {
        return Err(Error::ZipPath {
            path: root.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn file(path: &str, bytes: &[u8]) -> RenderedFile {
        RenderedFile {
            path: path.into(),
            bytes: bytes.to_vec(),
        }
    }

    #[test]
    fn round_trips_and_is_deterministic() -> std::result::Result<(), Box<dyn std::error::Error>> {
        let files = vec![
            file("src/lib.rs", b"pub fn f() {}\n"),
            file("bin/run", b"#!/bin/sh\necho hi\n"),
            file("logo.png", &[0x89, b'P', b'N', b'G', 0, 0xff]),
        ];
        let bytes = to_zip(&files, "demo")?;
        assert_eq!(bytes, to_zip(&files, "demo")?, "same input, same bytes");
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes))?;
        let mut names = Vec::new();
        for i in 0..archive.len() {
            names.push(archive.by_index(i)?.name()?.into_owned());
        }
        assert_eq!(
            names,
            [
                "demo/",
                "demo/bin/",
                "demo/bin/run",
                "demo/logo.png",
                "demo/src/",
                "demo/src/lib.rs"
            ]
        );
        for f in &files {
            let mut entry = archive.by_name(&format!("demo/{}", f.path))?;
            let mut got = Vec::new();
            entry.read_to_end(&mut got)?;
            assert_eq!(got, f.bytes, "{}", f.path);
            let mode = entry.unix_mode().map(|m| m & 0o777);
            let want = if f.path == "bin/run" { 0o755 } else { 0o644 };
            assert_eq!(mode, Some(want), "{}", f.path);
        }
        Ok(())
    }

    #[test]
    fn refuses_unsafe_names() {
        for root in ["..", "a/b", "/abs", "C:"] {
            assert!(to_zip(&[], root).is_err(), "{root:?}");
        }
        for path in ["../x", "/x", "a//b", "a\\b"] {
            assert!(to_zip(&[file(path, b"")], "r").is_err(), "{path:?}");
        }
        assert!(to_zip(&[file("a", b"")], "").is_ok());
    }
}
