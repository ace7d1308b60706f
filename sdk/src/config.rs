//! This tenant's settings for this plugin (`weft:platform/config`), as its
//! admin set them, with the manifest's defaults filled in. Read-only.

use std::fmt;

use serde::de::DeserializeOwned;

use crate::Response;
use crate::bindings::weft::platform::config as wit;

/// The setting `key` decoded as a `T`; `None` if the manifest does not
/// declare it.
///
/// # Errors
///
/// If the stored JSON is not a `T` (the manifest's `type` and `T`
/// disagree).
pub fn get<T: DeserializeOwned>(key: &str) -> Result<Option<T>, Error> {
    decode(key, wit::get(key))
}

/// The setting `key` as raw JSON text; `None` if the manifest does not
/// declare it.
pub fn get_raw(key: &str) -> Option<String> {
    wit::get(key)
}

/// All settings decoded as one `T` (a struct with a field per setting, or a
/// `serde_json::Value`).
///
/// # Errors
///
/// If the settings object is not a `T`.
pub fn get_all<T: DeserializeOwned>() -> Result<T, Error> {
    serde_json::from_str(&wit::get_all()).map_err(|source| Error { key: None, source })
}

fn decode<T: DeserializeOwned>(key: &str, raw: Option<String>) -> Result<Option<T>, Error> {
    raw.map(|json| serde_json::from_str(&json))
        .transpose()
        .map_err(|source| Error {
            key: Some(key.to_owned()),
            source,
        })
}

/// A setting's value did not have the type the plugin asked for.
#[derive(Debug)]
pub struct Error {
    key: Option<String>,
    source: serde_json::Error,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "setting `{key}` has an unexpected type: {}", self.source),
            None => write!(f, "the settings have an unexpected shape: {}", self.source),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// `500 invalid_setting`: the manifest and the code disagree, which the
/// caller cannot fix. The detail stays out of the response.
impl From<Error> for Response {
    fn from(_: Error) -> Self {
        Response::error(
            500,
            "invalid_setting",
            "a plugin setting does not have the type the plugin expects",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_declared_settings() {
        let v: Option<String> = decode("greeting", Some(r#""Hi""#.into())).expect("decodes");
        assert_eq!(v.as_deref(), Some("Hi"));
        let v: Option<i64> = decode("n", None).expect("absent is fine");
        assert_eq!(v, None);
    }

    #[test]
    fn wrong_type_is_an_error_and_a_500() {
        let err = decode::<i64>("greeting", Some(r#""Hi""#.into())).expect_err("not an int");
        assert!(err.to_string().contains("greeting"));
        assert_eq!(Response::from(err).status, 500);
    }
}
