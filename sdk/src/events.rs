//! Durable events to the other plugins of the tenant
//! (`weft:platform/events`).
//!
//! [`publish`] is part of the call's unit of work: the event exists only if
//! the call commits. Subscribers receive it through
//! [`Plugin::on_event`](crate::Plugin::on_event).

use serde::Serialize;

use crate::Response;
use crate::bindings::weft::platform::events as wit;

pub use wit::Error;

/// Publishes `payload` (a JSON object as text) on `topic`; returns the event id.
pub fn publish(topic: &str, payload: &str) -> Result<String, Error> {
    wit::publish(topic, payload)
}

/// [`publish`] with `payload` serialized to JSON (it must be an object).
///
/// # Errors
///
/// [`Error::InvalidJson`] if `payload` does not serialize, besides the host's.
pub fn publish_json<T: Serialize + ?Sized>(topic: &str, payload: &T) -> Result<String, Error> {
    let json = serde_json::to_string(payload).map_err(|e| Error::InvalidJson(e.to_string()))?;
    publish(topic, &json)
}

impl Error {
    /// The status and stable `snake_case` code this error answers with.
    pub fn status_and_code(&self) -> (u16, &'static str) {
        match self {
            Error::InvalidTopic(_) => (400, "invalid_topic"),
            Error::InvalidJson(_) => (400, "invalid_json"),
            Error::TooLarge(_) => (413, "payload_too_large"),
        }
    }
}

/// A 4xx JSON error naming what was refused.
impl From<Error> for Response {
    fn from(e: Error) -> Self {
        let (status, code) = e.status_and_code();
        let message = match &e {
            Error::InvalidTopic(why) => format!("invalid event topic: {why}"),
            Error::InvalidJson(why) => format!("the event payload is not a JSON object: {why}"),
            Error::TooLarge(limit) => format!("the event payload is larger than {limit} bytes"),
        };
        Response::error(status, code, &message)
    }
}

impl crate::Event {
    /// The payload decoded as a `T`.
    ///
    /// # Errors
    ///
    /// The decoding error, if the payload is not a `T`.
    pub fn payload_as<T: serde::de::DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_str(&self.payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_4xx() {
        for (err, status, code) in [
            (Error::InvalidTopic("x".into()), 400, "invalid_topic"),
            (Error::InvalidJson("x".into()), 400, "invalid_json"),
            (Error::TooLarge(65536), 413, "payload_too_large"),
        ] {
            let r = Response::from(err);
            let body: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
            assert_eq!(
                (r.status, body["error"]["code"].as_str()),
                (status, Some(code))
            );
        }
    }
}
