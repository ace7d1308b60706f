//! Events between two plugins of a tenant: published only if the call
//! commits, delivered to subscribers of the same tenant only, with retries
//! whose failed attempts leave nothing behind (each effect applied exactly
//! once), dead letters and their replay; schedules firing once per due time
//! under an injected clock; and plugins of the first WIT release still
//! running beside the new one.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};
use weft::config::Config;
use weft::jobs::scheduler::Scheduler;
use weft::schedules::ManualClock;

use crate::common::{Server, TestTenant, code, eventually, manual_scheduler};
use crate::{both_engines, both_engines_with};

fn fast_retries(c: &mut Config) {
    c.events.retry_base_ms = 50;
    c.events.max_retry_delay_ms = 200;
    c.events.max_attempts = 3;
    c.events.poll_ms = 50;
}

async fn setup(s: &Server, slug: &str, plugins: &[&str]) -> TestTenant {
    let t = s.tenant(slug).await;
    for p in plugins {
        s.enable(&t, p).await;
    }
    t
}

async fn publish(s: &Server, t: &TestTenant, count: u32, payload: Value) -> Vec<String> {
    let (status, body) = s
        .post(
            &format!("/t/{}/p/publisher/publish", t.slug),
            Some(&t.api_key),
            json!({"topic": "test.ping", "count": count, "payload": payload}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|v| v.as_str().expect("id").to_owned())
        .collect()
}

async fn applied(s: &Server, t: &TestTenant) -> Value {
    let (status, body) = s
        .get(
            &format!("/t/{}/p/subscriber/applied", t.slug),
            Some(&t.api_key),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn deliveries(s: &Server, t: &TestTenant, state: &str) -> Vec<Value> {
    let (status, body) = s
        .get(
            &format!("/v1/tenants/{}/deliveries?state={state}&limit=500", t.slug),
            Some(&t.admin_token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["deliveries"].as_array().expect("deliveries").clone()
}

both_engines_with!(
    each_event_is_applied_exactly_once_in_its_tenant_only,
    fast_retries,
    async |s: &Server| {
        s.install_test_plugin("publisher").await;
        s.install_test_plugin("subscriber").await;
        let a = setup(s, "events-a", &["publisher", "subscriber"]).await;
        // Tenant B subscribes too, but publishes nothing.
        let b = setup(s, "events-b", &["subscriber"]).await;

        let mut ids = publish(s, &a, 20, json!({"mode": "ok"})).await;
        let failing = publish(s, &a, 5, json!({"mode": "fail_first"})).await;
        let trapping = publish(s, &a, 5, json!({"mode": "trap_first"})).await;
        ids.extend(failing.iter().cloned());
        ids.extend(trapping.iter().cloned());

        // The plugin lists its entries and reads its total in two reads: a
        // delivery may commit between them, so wait for both to agree.
        let body = eventually(30, "30 events applied", || async {
            let body = applied(s, &a).await;
            let entries = body["entries"].as_object().map_or(0, |e| e.len());
            (body["total"] == 30 && entries == 30 && deliveries(s, &a, "pending").await.is_empty())
                .then_some(body)
        })
        .await;
        for id in &ids {
            assert_eq!(
                body["entries"][id], 1,
                "event {id} applied once (failed attempts rolled back): {body}"
            );
        }
        let done = deliveries(s, &a, "done").await;
        assert_eq!(done.len(), 30);
        for d in &done {
            let id = d["event_id"].as_str().expect("event id");
            let expected = if failing.iter().chain(&trapping).any(|f| f == id) {
                2
            } else {
                1
            };
            assert_eq!(d["attempts"], expected, "{d}");
            assert_eq!(d["topic"], "test.ping");
            assert_eq!(d["publisher"], "publisher");
        }
        // Nothing reached the other tenant.
        assert_eq!(applied(s, &b).await["total"], 0);
        assert!(deliveries(s, &b, "").await.is_empty());
        // And tenant B's admin cannot list tenant A's queue.
        let (status, _) = s
            .get("/v1/tenants/events-a/deliveries", Some(&b.admin_token))
            .await;
        assert!(
            status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND,
            "{status}"
        );
    }
);

both_engines_with!(
    failing_deliveries_are_dead_lettered_and_replayable,
    fast_retries,
    async |s: &Server| {
        s.install_test_plugin("publisher").await;
        s.install_test_plugin("subscriber").await;
        let t = setup(s, "dead", &["publisher", "subscriber"]).await;
        let retrying = publish(s, &t, 1, json!({"mode": "always_retry"})).await;
        let rejected = publish(s, &t, 1, json!({"mode": "reject"})).await;

        let dead = eventually(30, "two dead letters", || async {
            let dead = deliveries(s, &t, "dead").await;
            (dead.len() == 2).then_some(dead)
        })
        .await;
        let by_event = |id: &str| {
            dead.iter()
                .find(|d| d["event_id"] == id)
                .cloned()
                .expect("dead delivery")
        };
        let gave_up = by_event(&retrying[0]);
        assert_eq!(gave_up["attempts"], 3, "{gave_up}");
        assert!(
            gave_up["last_error"]
                .as_str()
                .unwrap_or("")
                .contains("gave up after 3 attempts"),
            "{gave_up}"
        );
        assert_eq!(gave_up["payload"]["mode"], "always_retry");
        let refused = by_event(&rejected[0]);
        assert_eq!(
            refused["attempts"], 1,
            "rejected without retries: {refused}"
        );
        assert!(
            refused["last_error"]
                .as_str()
                .unwrap_or("")
                .contains("rejected")
        );
        // Every failed attempt was rolled back.
        assert_eq!(applied(s, &t).await["total"], 0);

        // Replay: back to pending with a fresh count, tried again, dead again.
        let id = gave_up["id"].as_str().expect("id");
        let (status, body) = s
            .post(
                &format!("/v1/tenants/dead/deliveries/{id}/replay"),
                Some(&t.admin_token),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body["attempts"].as_i64().unwrap_or(99) <= 1, "{body}");
        let again = eventually(30, "the replayed delivery to die again", || async {
            let (_, d) = s
                .get(
                    &format!("/v1/tenants/dead/deliveries/{id}"),
                    Some(&t.admin_token),
                )
                .await;
            (d["state"] == "dead" && d["attempts"] == 3).then_some(d)
        })
        .await;
        assert_eq!(again["event_id"], retrying[0].as_str());

        // Only a dead delivery can be replayed; unknown ids are 404.
        let (status, body) = s
            .post(
                "/v1/tenants/dead/deliveries/nope/replay",
                Some(&t.admin_token),
                json!({}),
            )
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::NOT_FOUND, "delivery_not_found")
        );
        let ok = publish(s, &t, 1, json!({"mode": "ok"})).await;
        let done = eventually(30, "the ok event done", || async {
            deliveries(s, &t, "done")
                .await
                .into_iter()
                .find(|d| d["event_id"] == ok[0].as_str())
        })
        .await;
        let (status, body) = s
            .post(
                &format!(
                    "/v1/tenants/dead/deliveries/{}/replay",
                    done["id"].as_str().expect("id")
                ),
                Some(&t.admin_token),
                json!({}),
            )
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::CONFLICT, "delivery_not_dead")
        );
        // A state filter must be one of the three.
        let (status, _) = s
            .get(
                "/v1/tenants/dead/deliveries?state=zombie",
                Some(&t.admin_token),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
);

both_engines!(a_call_that_fails_publishes_nothing, async |s: &Server| {
    s.install_test_plugin("publisher").await;
    s.install_test_plugin("subscriber").await;
    let t = setup(s, "rollback", &["publisher", "subscriber"]).await;
    let (status, body) = s
        .post(
            "/t/rollback/p/publisher/publish-then-trap",
            Some(&t.api_key),
            json!({"topic": "test.ping", "payload": {"mode": "ok"}}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_GATEWAY, "plugin_trapped")
    );
    // Bad input is refused with a clear error, and queues nothing either.
    for (payload, expected) in [
        (json!({"topic": "Bad Topic"}), "invalid_topic"),
        (
            json!({"topic": "test.ping", "payload": {"x": "y".repeat(70_000)}}),
            "payload_too_large",
        ),
    ] {
        let (status, body) = s
            .post("/t/rollback/p/publisher/publish", Some(&t.api_key), payload)
            .await;
        assert!(status.is_client_error(), "{status} {body}");
        assert_eq!(code(&body), expected, "{body}");
    }
    // A committed event after them is delivered; the rolled-back one never is.
    publish(s, &t, 1, json!({"mode": "ok"})).await;
    eventually(30, "the committed event", || async {
        (applied(s, &t).await["total"] == 1).then_some(())
    })
    .await;
    assert_eq!(deliveries(s, &t, "").await.len(), 1);
});

both_engines_with!(
    schedules_run_once_per_due_time_and_catch_up_once,
    manual_scheduler,
    async |s: &Server| {
        s.install_test_plugin("subscriber").await;
        let t = setup(s, "cron", &["subscriber"]).await;
        let minute = 60_000;
        // Half a minute past a minute boundary, after the plugin was enabled.
        let start = (weft::ids::now_ms() / minute + 2) * minute + 30_000;
        let clock = Arc::new(ManualClock::new(start));
        s.app.scheduler.set_clock(clock.clone());
        // A second replica over the same database, with the same clock.
        let replica = Scheduler::default();
        replica.set_clock(clock.clone());

        let first = s.app.scheduler.tick(&s.app).await.expect("tick");
        assert_eq!(first, 1, "the due run is queued");
        assert_eq!(s.app.scheduler.tick(&s.app).await.expect("tick"), 0, "once");
        assert_eq!(
            replica.tick(&s.app).await.expect("tick"),
            0,
            "once across replicas"
        );
        // Ten minutes of downtime: one catch-up run, not ten.
        clock.set(start + 10 * minute);
        assert_eq!(replica.tick(&s.app).await.expect("tick"), 1);
        assert_eq!(s.app.scheduler.tick(&s.app).await.expect("tick"), 0);

        let runs = eventually(30, "two runs applied", || async {
            let (_, body) = s.get("/t/cron/p/subscriber/runs", Some(&t.api_key)).await;
            let entries = body["entries"].as_object().cloned().unwrap_or_default();
            (entries.len() == 2 && deliveries(s, &t, "pending").await.is_empty()).then_some(entries)
        })
        .await;
        let due1 = start - 30_000;
        let due2 = start + 10 * minute - 30_000;
        assert_eq!(
            runs.get(&format!("tick/{due1}")),
            Some(&json!(1)),
            "{runs:?}"
        );
        assert_eq!(
            runs.get(&format!("tick/{due2}")),
            Some(&json!(1)),
            "{runs:?}"
        );

        let (status, body) = s
            .get("/v1/tenants/cron/schedules", Some(&t.admin_token))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let tick = &body["schedules"][0];
        assert_eq!(
            (tick["plugin"].as_str(), tick["schedule"].as_str()),
            (Some("subscriber"), Some("tick"))
        );
        assert_eq!(tick["cron"], "* * * * *");
        assert_eq!(tick["last_run"]["due_at"], due2);
        assert_eq!(tick["last_run"]["state"], "done");
        assert_eq!(tick["next_due_at"], due2 + minute);
        // Users are not admins.
        let (status, _) = s.get("/v1/tenants/cron/schedules", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
);

both_engines!(
    plugins_of_the_second_wit_release_still_run_with_their_handlers,
    async |s: &Server| {
        s.install_test_plugin("legacy2").await;
        let t = setup(s, "legacy2", &["legacy2"]).await;
        for _ in 0..3 {
            let (status, body) = s
                .post("/t/legacy2/p/legacy2/ping", Some(&t.api_key), json!({}))
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        // Its own subscription delivers each event to its 0.2.0 `on-event`.
        eventually(30, "three deliveries", || async {
            let (_, body) = s.get("/t/legacy2/p/legacy2/count", Some(&t.api_key)).await;
            (body["count"] == 3).then_some(())
        })
        .await;
        // 0.2.0 has no llm import: a manifest asking for it is refused.
        let (manifest, component) = weft::bundled::test_plugin("legacy2").expect("built");
        let manifest = manifest
            .replace("version = \"0.1.0\"\nwit", "version = \"0.1.1\"\nwit")
            .replace(
                "capabilities = [\"kv\", \"events\"]",
                "capabilities = [\"kv\", \"events\", \"llm\"]",
            );
        let (status, body) = s.install(&manifest, &component).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("0.3.0"),
            "{body}"
        );
    }
);

both_engines!(
    plugins_of_the_fourth_wit_release_still_run_beside_the_fifth,
    async |s: &Server| {
        s.install_test_plugin("legacy4").await;
        let t = setup(s, "legacy4", &["legacy4"]).await;
        for n in 1..=2 {
            let (status, body) = s
                .post("/t/legacy4/p/legacy4/count", Some(&t.api_key), json!({}))
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(
                (body["count"].as_i64(), body["status"].as_str()),
                (Some(n), Some("none")),
                "{body}"
            );
        }
        // 0.4.0 has no library import: a manifest asking for it is refused.
        let (manifest, component) = weft::bundled::test_plugin("legacy4").expect("built");
        let manifest = manifest
            .replace("version = \"0.1.0\"\nwit", "version = \"0.1.1\"\nwit")
            .replace(
                "capabilities = [\"kv\", \"outbox\"]",
                "capabilities = [\"kv\", \"outbox\", \"library\"]",
            );
        let (status, body) = s.install(&manifest, &component).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("0.5.0"),
            "{body}"
        );
    }
);

both_engines!(
    plugins_of_the_first_wit_release_still_run,
    async |s: &Server| {
        s.install_test_plugin("legacy").await;
        let t = setup(s, "legacy", &["legacy"]).await;
        for n in 1..=2 {
            let (status, body) = s
                .post("/t/legacy/p/legacy/count", Some(&t.api_key), json!({}))
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["count"], n);
        }
        // 0.1.0 has no handlers: a manifest subscribing with it is refused.
        let (manifest, component) = weft::bundled::test_plugin("legacy").expect("built");
        let manifest = manifest.replace("version = \"0.1.0\"\nwit", "version = \"0.1.1\"\nwit")
            + "\n[[subscriptions]]\ntopic = \"test.ping\"\n";
        let (status, body) = s.install(&manifest, &component).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("0.2.0"),
            "{body}"
        );
    }
);
