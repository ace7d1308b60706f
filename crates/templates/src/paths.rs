//! The rules for file paths: the ones a template stores, and the ones its
//! answers render them to.
//!
//! Rendered paths end up as zip entries that someone unpacks on their own
//! machine, so anything that could land outside the unpacked directory (an
//! absolute path, a drive letter, `..`, a backslash that Windows reads as a
//! separator) is refused rather than repaired.

/// The longest path, in bytes, stored or rendered.
pub const MAX_PATH_BYTES: usize = 1024;
/// The longest path segment, in bytes (most file systems stop at 255).
const MAX_SEGMENT_BYTES: usize = 255;

/// Checks a path as stored in a template (before rendering).
pub(crate) fn check_source(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("is empty");
    }
    if path.len() > MAX_PATH_BYTES {
        return Err("is longer than 1024 bytes");
    }
    if path.starts_with('/') {
        return Err("is absolute; paths are relative to `files/`");
    }
    if path.contains('\\') {
        return Err("contains a backslash; separate directories with `/`");
    }
    if path.chars().any(char::is_control) {
        return Err("contains a control character");
    }
    for segment in path.split('/') {
        match segment {
            "" => return Err("has an empty segment (`//` or a trailing `/`)"),
            "." | ".." => return Err("contains `.` or `..`"),
            _ => {}
        }
    }
    Ok(())
}

/// What a rendered path means.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Rendered {
    /// Emit the file here (normalized: no `.` or empty segments).
    File(String),
    /// The path rendered empty, or to a directory (ending in `/`): the file
    /// is left out. This is how conditional files are written.
    Skip,
}

/// Normalizes a rendered path, or says why it is refused.
pub(crate) fn normalize_rendered(rendered: &str) -> Result<Rendered, &'static str> {
    if rendered.trim().is_empty() || rendered.ends_with('/') {
        return Ok(Rendered::Skip);
    }
    if rendered.len() > MAX_PATH_BYTES {
        return Err("is longer than 1024 bytes");
    }
    if rendered.starts_with('/') {
        return Err("is absolute");
    }
    if rendered.contains('\\') {
        return Err("contains a backslash");
    }
    if rendered.chars().any(char::is_control) {
        return Err("contains a control character");
    }
    let mut segments = Vec::new();
    for segment in rendered.split('/') {
        match segment {
            "" | "." => {}
            ".." => return Err("contains `..`"),
            s if s.trim().is_empty() => return Err("has a blank segment"),
            s if s.len() > MAX_SEGMENT_BYTES => return Err("has a segment over 255 bytes"),
            s => segments.push(s),
        }
    }
    if segments.first().is_some_and(|s| has_drive_prefix(s)) {
        return Err("starts with a drive letter");
    }
    if segments.is_empty() {
        return Ok(Rendered::Skip);
    }
    Ok(Rendered::File(segments.join("/")))
}

/// `C:` or `C:foo`: absolute (or drive-relative) on Windows.
fn has_drive_prefix(segment: &str) -> bool {
    let b = segment.as_bytes();
    b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_paths() {
        assert_eq!(check_source("src/lib.rs"), Ok(()));
        assert_eq!(check_source("{{ name }}/{% if x %}a.rs{% endif %}"), Ok(()));
        for bad in [
            "",
            "/etc/passwd",
            "a/../b",
            "./a",
            "a//b",
            "a/",
            "a\\b",
            "a\nb",
        ] {
            assert!(check_source(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rendered_paths() {
        let file = |s: &str| Ok(Rendered::File(s.to_owned()));
        assert_eq!(normalize_rendered("src/lib.rs"), file("src/lib.rs"));
        assert_eq!(normalize_rendered("./src//lib.rs"), file("src/lib.rs"));
        assert_eq!(normalize_rendered(""), Ok(Rendered::Skip));
        assert_eq!(normalize_rendered("  "), Ok(Rendered::Skip));
        assert_eq!(normalize_rendered("tests/"), Ok(Rendered::Skip));
        assert_eq!(normalize_rendered("./."), Ok(Rendered::Skip));
        for bad in [
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/..",
            "..\\x",
            "C:/Windows/x",
            "c:x",
            "a/ /b",
            "a\0b",
        ] {
            assert!(normalize_rendered(bad).is_err(), "{bad:?}");
        }
    }
}
