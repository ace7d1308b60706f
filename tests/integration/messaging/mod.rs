//! The messaging plugin through HTTP, as a tenant's admin, its users and
//! their mail clients meet it: templated email over real SMTP (to
//! `weft-msg-wire`'s `FakeSmtp`), fan-out and its skips, unsubscribe links
//! (one-click, forged), bad input that queues nothing, quiet hours and
//! scheduled sends released under an injected clock, lists with double
//! opt-in, CSV import/export and batch sends, a forum event becoming an
//! email to a watcher, and a SIGKILL in the middle of a batch of 10,000.
//! The helpers are here; the tests are in the files beside this one.

use reqwest::StatusCode;
use serde_json::{Value, json};
use weft::config::Config;
use weft_msg_wire::FakeSmtp;
use weft_msg_wire::fake::SmtpMessage;

use crate::common::{self, Server, TestTenant, TestUser, eventually};

mod crash;
mod events;
mod lists;
mod sends;

/// Deliveries and events polled often; the scheduler ticks by hand.
fn fast(c: &mut Config) {
    common::manual_scheduler(c);
    c.messaging.poll_ms = 50;
    c.messaging.retry_base_ms = 50;
    c.messaging.max_retry_delay_ms = 200;
}

/// A plugin path of tenant `t`.
fn m(t: &TestTenant, path: &str) -> String {
    format!("/t/{}/p/messaging{path}", t.slug)
}

/// A tenant with messaging enabled (links under this server's address)
/// and its email going to `smtp`.
async fn tenant(s: &Server, slug: &str, smtp: &FakeSmtp) -> TestTenant {
    let t = s.tenant(slug).await;
    let (status, body) = s
        .put(
            &format!("/v1/tenants/{slug}/plugins/messaging"),
            Some(&t.admin_token),
            json!({"enabled": true, "settings": {"public_url": format!("{}/t/{slug}/p/messaging", s.base)}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let addr = smtp.addr();
    let (status, body) = s
        .put(
            &format!("/v1/tenants/{slug}/messaging/providers/email"),
            Some(&t.admin_token),
            json!({"provider": "smtp", "host": addr.ip().to_string(), "port": addr.port(),
                   "tls": "none", "from": "Shop <noreply@shop.example>"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    t
}

/// Saves template `name`.
async fn template(s: &Server, t: &TestTenant, name: &str, body: Value) {
    let (status, out) = s
        .put(&m(t, &format!("/templates/{name}")), Some(&t.api_key), body)
        .await;
    assert!(status.is_success(), "{status} {out}");
}

/// Sets a user's own contact.
async fn contact(s: &Server, t: &TestTenant, user: &TestUser, body: Value) {
    let (status, out) = s.put(&m(t, "/me/contact"), Some(&user.token), body).await;
    assert_eq!(status, StatusCode::OK, "{out}");
}

/// `POST /send` as the tenant's backend (its admin API key).
async fn send(s: &Server, t: &TestTenant, body: Value) -> (StatusCode, Value) {
    s.post(&m(t, "/send"), Some(&t.api_key), body).await
}

/// The host's outbox messages of the tenant.
async fn outbox(s: &Server, t: &TestTenant) -> Vec<Value> {
    let (status, body) = s
        .get(
            &format!("/v1/tenants/{}/messages?limit=100", t.slug),
            Some(&t.admin_token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["messages"].as_array().cloned().unwrap_or_default()
}

/// Waits until the sink has accepted `n` messages; returns them.
async fn accepted(smtp: &FakeSmtp, n: usize) -> Vec<SmtpMessage> {
    eventually(30, &format!("{n} emails at the SMTP sink"), || async {
        let got = smtp.accepted();
        (got.len() >= n).then_some(got)
    })
    .await
}

/// The URL inside `List-Unsubscribe: <url>`.
fn unsubscribe_url(msg: &SmtpMessage) -> String {
    let header = msg.header("List-Unsubscribe").expect("List-Unsubscribe");
    header
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_owned()
}

/// The first URL in `text` containing `marker`.
fn link_in(text: &str, marker: &str) -> String {
    text.split_whitespace()
        .find(|w| w.contains(marker))
        .unwrap_or_else(|| panic!("no {marker} link in {text}"))
        .trim_end_matches(['.', ')', ','])
        .to_owned()
}

/// A request to an absolute URL (a link from an email), with a body.
async fn post_url(s: &Server, url: &str, body: &str) -> (StatusCode, String) {
    let resp = s
        .client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_owned())
        .send()
        .await
        .expect("post");
    let status = resp.status();
    (status, resp.text().await.unwrap_or_default())
}

async fn get_url(s: &Server, url: &str) -> (StatusCode, String) {
    let resp = s.client.get(url).send().await.expect("get");
    let status = resp.status();
    (status, resp.text().await.unwrap_or_default())
}
