//! A key-value store private to the (tenant, plugin) pair of the call
//! (`weft:platform/kv`).
//!
//! Every error is an [`Error`] the plugin can handle; it converts into a 4xx
//! [`Response`] so handlers can use `?`.

use crate::Response;
use crate::bindings::weft::platform::kv as wit;

pub use wit::{Entry, EntryPage, Error};

/// The value stored under `key`, if any.
pub fn get(key: &str) -> Result<Option<Vec<u8>>, Error> {
    wit::get(key)
}

/// The value under `key` read as a decimal `i64` (the format
/// [`increment`] keeps), if any.
///
/// # Errors
///
/// [`Error::NotAnInteger`] if the value is something else.
pub fn get_i64(key: &str) -> Result<Option<i64>, Error> {
    get(key)?.map(|bytes| parse_i64(&bytes)).transpose()
}

fn parse_i64(bytes: &[u8]) -> Result<i64, Error> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(Error::NotAnInteger)
}

/// Stores `value` under `key`, replacing any earlier value.
pub fn set(key: &str, value: impl AsRef<[u8]>) -> Result<(), Error> {
    wit::set(key, value.as_ref())
}

/// Removes `key`; true if it existed.
pub fn delete(key: &str) -> Result<bool, Error> {
    wit::delete(key)
}

/// Entries whose key starts with `prefix`, in key order, at most `limit`
/// (the host caps it at 1000) per page. Pass the page's `next_cursor` back
/// as `cursor` for the next one.
pub fn list_prefix(prefix: &str, cursor: Option<&str>, limit: u32) -> Result<EntryPage, Error> {
    wit::list_prefix(prefix, cursor, limit)
}

/// Atomically adds `delta` to the decimal integer under `key` (absent
/// counts as 0) and returns the new value.
pub fn increment(key: &str, delta: i64) -> Result<i64, Error> {
    wit::increment(key, delta)
}

/// Atomically replaces the value under `key` with `new` if it currently
/// equals `expected` (`None`: only if absent). True if the swap happened.
pub fn compare_and_swap(key: &str, expected: Option<&[u8]>, new: &[u8]) -> Result<bool, Error> {
    wit::compare_and_swap(key, expected, new)
}

impl Error {
    /// The status and stable `snake_case` code this error answers with.
    pub fn status_and_code(&self) -> (u16, &'static str) {
        match self {
            Error::InvalidKey(_) => (400, "invalid_key"),
            Error::ValueTooLarge(_) => (413, "value_too_large"),
            Error::QuotaExceeded(_) => (413, "quota_exceeded"),
            Error::NotAnInteger => (409, "not_an_integer"),
            Error::Overflow => (409, "overflow"),
            Error::InvalidPage(_) => (400, "invalid_page"),
        }
    }
}

/// A 4xx JSON error. The host's payloads describe only this tenant's own
/// store, so they may go to the caller.
impl From<Error> for Response {
    fn from(e: Error) -> Self {
        let (status, code) = e.status_and_code();
        let message = match &e {
            Error::InvalidKey(why) => format!("invalid key: {why}"),
            Error::ValueTooLarge(limit) => format!("the value is larger than {limit} bytes"),
            Error::QuotaExceeded(quota) => format!("the storage quota is exhausted: {quota}"),
            Error::NotAnInteger => "the stored value is not an integer".to_owned(),
            Error::Overflow => "the counter would overflow".to_owned(),
            Error::InvalidPage(why) => format!("invalid page request: {why}"),
        };
        Response::error(status, code, &message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_counters() {
        assert_eq!(parse_i64(b"42").ok(), Some(42));
        assert_eq!(parse_i64(b"-7").ok(), Some(-7));
        assert!(matches!(parse_i64(b"4x"), Err(Error::NotAnInteger)));
        assert!(matches!(parse_i64(&[0xff]), Err(Error::NotAnInteger)));
    }

    #[test]
    fn errors_map_to_4xx() {
        let cases = [
            (Error::InvalidKey("empty".into()), 400, "invalid_key"),
            (Error::ValueTooLarge(1024), 413, "value_too_large"),
            (Error::QuotaExceeded("keys".into()), 413, "quota_exceeded"),
            (Error::NotAnInteger, 409, "not_an_integer"),
            (Error::Overflow, 409, "overflow"),
            (Error::InvalidPage("cursor".into()), 400, "invalid_page"),
        ];
        for (err, status, code) in cases {
            let r = Response::from(err);
            let body: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
            assert_eq!(
                (r.status, body["error"]["code"].as_str()),
                (status, Some(code))
            );
        }
    }

    #[test]
    fn quota_message_names_the_quota() {
        let r = Response::from(Error::QuotaExceeded("bytes".into()));
        assert!(String::from_utf8_lossy(&r.body).contains("bytes"));
    }
}
