//! Each hostile plugin fails only its own call, with a clean JSON error whose
//! code names the limit, while another tenant's calls keep succeeding.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use reqwest::StatusCode;
use serde_json::json;

use crate::both_engines;
use crate::common::{Server, code};

both_engines!(each_attack_fails_only_its_own_call, async |s: &Server| {
    s.install_test_plugin("hostile").await;
    let evil = s.tenant("evil").await;
    let good = s.tenant("good").await;
    s.enable(&evil, "hostile").await;
    s.enable(&good, "hello").await;

    // Another tenant hammers hello for the whole attack.
    let stop = Arc::new(AtomicBool::new(false));
    let ok_calls = Arc::new(AtomicU32::new(0));
    let bystander = {
        let (client, url, key, stop, ok_calls) = (
            s.client.clone(),
            format!("{}/t/good/p/hello/counter/increment", s.base),
            good.api_key.clone(),
            stop.clone(),
            ok_calls.clone(),
        );
        tokio::spawn(async move {
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let resp = client
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&json!({}))
                    .send()
                    .await
                    .expect("bystander request");
                if resp.status() == StatusCode::OK {
                    ok_calls.fetch_add(1, Ordering::Relaxed);
                } else {
                    failures.push(resp.status());
                }
            }
            failures
        })
    };

    for (route, status, expected) in [
        ("/loop", StatusCode::BAD_GATEWAY, "plugin_fuel_exhausted"),
        ("/slow", StatusCode::GATEWAY_TIMEOUT, "plugin_timeout"),
        (
            "/hog",
            StatusCode::BAD_GATEWAY,
            "plugin_memory_limit_exceeded",
        ),
        ("/panic", StatusCode::BAD_GATEWAY, "plugin_trapped"),
        ("/unreachable", StatusCode::BAD_GATEWAY, "plugin_trapped"),
        ("/recurse", StatusCode::BAD_GATEWAY, "plugin_stack_overflow"),
        (
            "/huge",
            StatusCode::BAD_GATEWAY,
            "plugin_response_too_large",
        ),
    ] {
        let (got, body) = s
            .get(&format!("/t/evil/p/hostile{route}"), Some(&evil.api_key))
            .await;
        assert_eq!((got, code(&body)), (status, expected), "{route}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{route}: {body}"
        );
        // The same plugin still answers its next call.
        let (got, body) = s.get("/t/evil/p/hostile/ok", Some(&evil.api_key)).await;
        assert_eq!(got, StatusCode::OK, "after {route}: {body}");
    }

    // Flooding the log succeeds but keeps only the capped amount.
    let (got, body) = s
        .get("/t/evil/p/hostile/log-flood", Some(&evil.api_key))
        .await;
    assert_eq!(got, StatusCode::OK, "{body}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (got, logs) = s
        .get(
            "/v1/tenants/evil/plugins/hostile/logs?limit=1000",
            Some(&evil.admin_token),
        )
        .await;
    assert_eq!(got, StatusCode::OK, "{logs}");
    let lines = logs["lines"].as_array().expect("lines");
    let kept: usize = lines
        .iter()
        .map(|l| l["message"].as_str().map_or(0, str::len))
        .sum();
    assert!(kept <= 70 * 1024, "log must be capped, kept {kept} bytes");
    assert!(
        lines
            .iter()
            .any(|l| l["message"].as_str().is_some_and(|m| m.contains("dropped"))),
        "a line must say output was dropped"
    );
    // The other tenant sees none of it.
    let (_, other) = s
        .get(
            "/v1/tenants/good/plugins/hello/logs",
            Some(&good.admin_token),
        )
        .await;
    assert_eq!(other["lines"].as_array().map(Vec::len), Some(0), "{other}");

    stop.store(true, Ordering::Relaxed);
    let failures = bystander.await.expect("bystander");
    assert!(
        failures.is_empty(),
        "the bystander tenant saw failures: {failures:?}"
    );
    assert!(
        ok_calls.load(Ordering::Relaxed) >= 5,
        "the bystander kept being served"
    );
});

both_engines!(storage_quota_is_a_clear_error, async |s: &Server| {
    s.install_test_plugin("hostile").await;
    let t = s.tenant("greedy").await;
    s.enable(&t, "hostile").await;
    let (status, body) = s
        .put(
            "/v1/tenants/greedy/quotas",
            Some(&s.root_token),
            json!({"keys": 20, "bytes": 1_000_000}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = s
        .get("/t/greedy/p/hostile/kv-quota", Some(&t.api_key))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(code(&body), "quota_exceeded", "{body}");
    assert!(
        body.to_string().contains("keys"),
        "the error names the quota: {body}"
    );
    let (_, tenant) = s.get("/v1/tenants/greedy", Some(&t.admin_token)).await;
    assert_eq!(
        tenant["storage"]["keys"], 20,
        "nothing past the quota was written: {tenant}"
    );
});

/// Past the instance cap, calls wait their turn; past the queue timeout
/// they get 503 `overloaded`, never a crash.
async fn backpressure(engine: crate::common::Engine) {
    let Some(s) = crate::common::start_with(engine, |c| {
        c.runtime.max_concurrent_instances = 1;
        c.runtime.queue_timeout_ms = 3_000;
    })
    .await
    else {
        return;
    };
    s.install_test_plugin("hostile").await;
    let t = s.tenant("busy").await;
    s.enable(&t, "hostile").await;
    s.enable(&t, "hello").await;
    // Eight calls at once through one instance slot: all are served, in turn.
    let calls = (0..8).map(|_| {
        let (client, url, key) = (
            s.client.clone(),
            format!("{}/t/busy/p/hello/counter/increment", s.base),
            t.api_key.clone(),
        );
        tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(key)
                .json(&json!({}))
                .send()
                .await
                .expect("send")
                .status()
        })
    });
    for call in calls.collect::<Vec<_>>() {
        assert_eq!(call.await.expect("task"), StatusCode::OK);
    }
    let (_, counter) = s.get("/t/busy/p/hello/counter", Some(&t.api_key)).await;
    assert_eq!(counter["value"], 8);
    s.stop().await;

    // With a short queue, a call waiting behind a slow one is turned away.
    let Some(s) = crate::common::start_with(engine, |c| {
        c.runtime.max_concurrent_instances = 1;
        c.runtime.queue_timeout_ms = 200;
    })
    .await
    else {
        return;
    };
    s.install_test_plugin("hostile").await;
    let t = s.tenant("busy").await;
    s.enable(&t, "hostile").await;
    let slow = s.spawn_get("/t/busy/p/hostile/slow", &t.api_key);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let (status, body) = s.get("/t/busy/p/hostile/ok", Some(&t.api_key)).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
        "{body}"
    );
    assert_eq!(slow.await.expect("task").0, StatusCode::GATEWAY_TIMEOUT);
    let (status, _) = s.get("/t/busy/p/hostile/ok", Some(&t.api_key)).await;
    assert_eq!(status, StatusCode::OK, "served again once the slot is free");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_sqlite() {
    backpressure(crate::common::Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_postgres() {
    backpressure(crate::common::Engine::Postgres).await;
}

both_engines!(a_failed_call_leaves_no_writes, async |s: &Server| {
    s.install_test_plugin("hostile").await;
    let t = s.tenant("atomic").await;
    let other = s.tenant("other").await;
    s.enable(&t, "hostile").await;
    s.enable(&other, "hello").await;

    let (status, body) = s
        .post(
            "/t/atomic/p/hostile/write-then-panic",
            Some(&t.api_key),
            json!({}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_GATEWAY, "plugin_trapped"),
        "{body}"
    );
    let (status, body) = s.get("/t/atomic/p/hostile/marker", Some(&t.api_key)).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the trapped call's write was rolled back: {body}"
    );

    // A call that holds its write transaction open is ended by a limit —
    // on SQLite the write-hold cap, on PostgreSQL its timeout — and rolled
    // back, while another tenant's writes go on.
    let stall = {
        let (client, url, key) = (
            s.client.clone(),
            format!("{}/t/atomic/p/hostile/write-then-stall", s.base),
            t.api_key.clone(),
        );
        tokio::spawn(async move {
            let resp = client
                .post(url)
                .bearer_auth(key)
                .json(&json!({}))
                .send()
                .await
                .expect("send");
            (
                resp.status(),
                resp.json::<serde_json::Value>().await.unwrap_or_default(),
            )
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let (status, body) = s
        .post(
            "/t/other/p/hello/counter/increment",
            Some(&other.api_key),
            json!({}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "another tenant writes while the stall runs: {body}"
    );
    let (status, body) = stall.await.expect("stall");
    let expected = if s.app.db.engine() == weft::db::Engine::Sqlite {
        "plugin_write_hold_exceeded"
    } else {
        "plugin_timeout"
    };
    assert_eq!(
        (status, code(&body)),
        (StatusCode::GATEWAY_TIMEOUT, expected),
        "{body}"
    );
    let (status, _) = s.get("/t/atomic/p/hostile/marker", Some(&t.api_key)).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the stalled call's write was rolled back"
    );
});
