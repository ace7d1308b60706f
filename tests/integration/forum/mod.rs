//! The forum plugin through HTTP, as its users meet it: permissions and
//! tenant isolation, a discussion from first post to recovery, flags and
//! moderation (with its events reaching another plugin exactly once),
//! search, bad input, and the daily digest under an injected clock.
//! The helpers are here; the tests are in the files beside this one.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};
use weft::config::Config;
use weft::schedules::ManualClock;

use crate::common::{Server, TestTenant, TestUser, code, eventually, manual_scheduler};
use crate::{both_engines, both_engines_with};

fn f(t: &TestTenant, path: &str) -> String {
    format!("/t/{}/p/forum{path}", t.slug)
}

async fn forum_tenant(s: &Server, slug: &str) -> TestTenant {
    let t = s.tenant(slug).await;
    s.enable(&t, "forum").await;
    t
}

async fn category(s: &Server, t: &TestTenant, body: Value) -> String {
    let (status, body) = s
        .post(&f(t, "/categories"), Some(&t.admin_token), body)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().expect("category id").to_owned()
}

/// Starts a topic; returns its id.
async fn topic(
    s: &Server,
    t: &TestTenant,
    token: &str,
    category: &str,
    title: &str,
    body: &str,
) -> String {
    let (status, out) = s
        .post(
            &f(t, "/topics"),
            Some(token),
            json!({"category": category, "title": title, "body": body}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{out}");
    assert_eq!(out["post"]["number"], 1);
    out["topic"]["id"].as_str().expect("topic id").to_owned()
}

/// Replies to a topic; returns the post.
async fn reply(
    s: &Server,
    t: &TestTenant,
    token: &str,
    topic: &str,
    body: Value,
) -> (StatusCode, Value) {
    s.post(&f(t, &format!("/topics/{topic}/posts")), Some(token), body)
        .await
}

fn ids(list: &Value, key: &str, field: &str) -> Vec<String> {
    list[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} in {list}"))
        .iter()
        .map(|v| v[field].as_str().expect(field).to_owned())
        .collect()
}

async fn search(s: &Server, t: &TestTenant, token: Option<&str>, query: &str) -> Value {
    let (status, body) = s.get(&f(t, &format!("/search?{query}")), token).await;
    if status != StatusCode::OK {
        let (_, logs) = s
            .get(
                &format!("/v1/tenants/{}/plugins/forum/logs", t.slug),
                Some(&t.admin_token),
            )
            .await;
        panic!("search {query}: {status} {body}; plugin log: {logs}");
    }
    body
}

/// Waits until a search finds exactly `expected` posts (by id, any order).
async fn search_finds(
    s: &Server,
    t: &TestTenant,
    token: Option<&str>,
    query: &str,
    expected: &[&str],
) -> Value {
    let mut want: Vec<String> = expected.iter().map(|e| (*e).to_owned()).collect();
    want.sort();
    eventually(20, &format!("search {query} to find {want:?}"), || async {
        let body = search(s, t, token, query).await;
        let mut got = ids(&body, "results", "post_id");
        got.sort();
        (got == want).then_some(body)
    })
    .await
}

mod discussion;
mod input_and_digest;
mod moderation;
