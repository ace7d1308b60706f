//! The client, the webhook verifier and the fake, against each other over
//! real HTTP on loopback.

mod client;
mod fidelity;
mod webhooks;

use std::sync::Once;

use weft_stripe::StripeClient;
use weft_stripe::fake::FakeStripe;

pub const SECRET_KEY: &str = "sk_test_51FakeWeftKey";
pub const WEBHOOK_SECRET: &str = "whsec_fake_weft";

/// The host installs ring as rustls' one provider; tests do the same.
pub fn install_ring() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Another test binary or harness may have installed it first.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

pub async fn fake_and_client() -> (FakeStripe, StripeClient) {
    install_ring();
    let fake = FakeStripe::start(SECRET_KEY, WEBHOOK_SECRET)
        .await
        .expect("fake starts");
    let client = StripeClient::new(SECRET_KEY, fake.base_url()).expect("client builds");
    (fake, client)
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

/// GETs `path` from the fake with the secret key, returning status and JSON.
pub async fn get(fake: &FakeStripe, path: &str) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", fake.base_url()))
        .bearer_auth(SECRET_KEY)
        .send()
        .await
        .expect("fake answers");
    let status = response.status().as_u16();
    let body = response.bytes().await.expect("body");
    (
        status,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    )
}
