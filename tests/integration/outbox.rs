//! The outbox (`weft:platform@0.4.0`): a plugin writes and sends in one
//! call; messages are delivered through the tenant's providers (real
//! protocols, to the in-process fakes of weft-msg-wire) or the dev inbox,
//! retried, dead-lettered and replayed; limits, idempotency, in-app
//! notifications, tenant isolation and signed status webhooks.

use reqwest::StatusCode;
use serde_json::{Value, json};
use weft::config::Config;
use weft_msg_wire::{DeliveryStatus, FakeFcm, FakeMailgun, FakeSendGrid, FakeSmtp, FakeTwilio};

use crate::common::{Server, TestTenant, code, eventually};
use crate::{both_engines_with, common};

/// Deliveries polled often, retries after tens of milliseconds.
fn fast(c: &mut Config) {
    common::manual_scheduler(c);
    c.messaging.poll_ms = 50;
    c.messaging.retry_base_ms = 50;
    c.messaging.max_retry_delay_ms = 200;
    c.messaging.max_attempts = 4;
}

/// [`fast`] with small limits: two emails a day, one SMS a minute, and
/// one push a day on the default plan.
fn tight(c: &mut Config) {
    fast(c);
    c.messaging.limits.email.per_day = 2;
    c.messaging.limits.sms.per_minute = 1;
    let default = c.billing.default_plan.clone();
    for plan in c.billing.plans.iter_mut().filter(|p| p.id == default) {
        plan.messages_per_day.insert("push".into(), 1);
    }
}

/// A tenant with the notifier enabled (the plugin installed once per server).
async fn notifier(s: &Server, slug: &str) -> TestTenant {
    let (status, plugins) = s.get("/v1/plugins", Some(&s.root_token)).await;
    assert_eq!(status, StatusCode::OK, "{plugins}");
    if !plugins.to_string().contains("\"notifier\"") {
        s.install_test_plugin("notifier").await;
    }
    let t = s.tenant(slug).await;
    s.enable(&t, "notifier").await;
    t
}

async fn send(s: &Server, t: &TestTenant, key: &str, message: Value) -> (StatusCode, Value) {
    s.post(
        &format!("/t/{}/p/notifier/send", t.slug),
        Some(&t.api_key),
        json!({"key": key, "message": message}),
    )
    .await
}

fn email(to: &str) -> Value {
    json!({"channel": "email", "to": to, "subject": "Your receipt",
           "html": "<p>Thanks, <b>Ada</b></p>", "text": "Thanks, Ada",
           "headers": {"List-Unsubscribe": "<https://shop.example/u/1>"}})
}

fn sms(to: &str) -> Value {
    json!({"channel": "sms", "to": to, "body": "Your code is 123456"})
}

async fn messages(s: &Server, t: &TestTenant, query: &str) -> Vec<Value> {
    let (status, body) = s
        .get(
            &format!("/v1/tenants/{}/messages{query}", t.slug),
            Some(&t.admin_token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["messages"].as_array().cloned().unwrap_or_default()
}

async fn message(s: &Server, t: &TestTenant, id: &str) -> Value {
    let (status, body) = s
        .get(
            &format!("/v1/tenants/{}/messages/{id}", t.slug),
            Some(&t.admin_token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Waits until message `id` has `status`; returns it.
async fn reaches(s: &Server, t: &TestTenant, id: &str, status: &str) -> Value {
    eventually(20, &format!("message {id} {status}"), || async {
        let m = message(s, t, id).await;
        (m["status"] == status).then_some(m)
    })
    .await
}

async fn set_provider(s: &Server, t: &TestTenant, channel: &str, settings: Value) {
    let (status, body) = s
        .put(
            &format!("/v1/tenants/{}/messaging/providers/{channel}", t.slug),
            Some(&t.admin_token),
            settings,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

both_engines_with!(
    a_send_and_a_write_commit_together_and_dev_mode_keeps_the_message,
    fast,
    async |s: &Server| {
        let t = notifier(s, "shop").await;
        let (status, body) = send(s, &t, "receipt-1", email("ada@example.org")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let id = body["id"].as_str().expect("id").to_owned();
        // Inside the call the message is already queued.
        assert_eq!(body["status"], "queued", "{body}");
        let (status, _) = s
            .get("/t/shop/p/notifier/notes/receipt-1", Some(&t.api_key))
            .await;
        assert_eq!(status, StatusCode::OK);
        // No provider anywhere: the dev inbox gets it.
        let m = reaches(s, &t, &id, "delivered").await;
        assert_eq!(m["provider"], "dev", "{m}");
        let (status, inbox) = s.get("/v1/dev/outbox", Some(&t.admin_token)).await;
        assert_eq!(status, StatusCode::OK, "{inbox}");
        let entry = &inbox["messages"][0];
        assert_eq!(entry["message_id"], id.as_str(), "{inbox}");
        assert_eq!(entry["recipient"], "ada@example.org");
        assert_eq!(entry["content"]["subject"], "Your receipt");
        let (_, provider) = s
            .get(
                "/v1/tenants/shop/messaging/providers/email",
                Some(&t.admin_token),
            )
            .await;
        assert_eq!(provider["source"], "dev_inbox", "{provider}");
        let (status, body) = s
            .get(&format!("/t/shop/p/notifier/status/{id}"), Some(&t.api_key))
            .await;
        assert_eq!(
            (status, &body["status"]),
            (StatusCode::OK, &json!("delivered"))
        );
        // The delivered message is a usage event of its channel.
        let (_, usage) = s.get("/v1/usage", Some(&t.admin_token)).await;
        assert!(usage.to_string().contains("outbox:email"), "{usage}");
    }
);

both_engines_with!(
    a_call_that_fails_after_send_queues_nothing,
    fast,
    async |s: &Server| {
        let t = notifier(s, "failing").await;
        let (status, body) = s
            .post(
                "/t/failing/p/notifier/send",
                Some(&t.api_key),
                json!({"key": "k1", "message": email("ada@example.org"),
                       "messages": [sms("+14155550100")], "fail_after": true}),
            )
            .await;
        assert!(status.is_server_error(), "{status} {body}");
        let (status, _) = s
            .get("/t/failing/p/notifier/notes/k1", Some(&t.api_key))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "the note was rolled back");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(messages(s, &t, "").await.is_empty());
        let (_, inbox) = s.get("/v1/dev/outbox", Some(&t.admin_token)).await;
        assert_eq!(inbox["messages"], json!([]), "{inbox}");
    }
);

both_engines_with!(an_idempotency_key_queues_once, fast, async |s: &Server| {
    let t = notifier(s, "idem").await;
    let (_, first) = send(s, &t, "same", email("ada@example.org")).await;
    let (status, second) = send(s, &t, "same", email("ada@example.org")).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(first["id"], second["id"]);
    let (_, other) = send(s, &t, "other", email("ada@example.org")).await;
    assert_ne!(first["id"], other["id"]);
    assert_eq!(messages(s, &t, "").await.len(), 2);
});

both_engines_with!(
    invalid_recipients_are_refused_and_queue_nothing,
    fast,
    async |s: &Server| {
        let t = notifier(s, "strict").await;
        let other = s.tenant("elsewhere").await;
        let stranger = s.user(&other, "Sam").await;
        for (key, message) in [
            ("e1", email("not-an-address")),
            ("e2", email("ada@example.org\r\nBcc: eve@example.org")),
            ("s1", sms("4155550100")),
            ("s2", sms("+1 415 555 0100")),
            (
                "p1",
                json!({"channel": "push", "token": "", "title": "t", "body": "b"}),
            ),
            (
                "i1",
                json!({"channel": "in_app", "user": stranger.id, "title": "t", "body": "b"}),
            ),
        ] {
            let (status, body) = send(s, &t, key, message).await;
            assert_eq!(
                (status, code(&body)),
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid_recipient"),
                "{key}: {body}"
            );
        }
        let (status, body) = send(
            s,
            &t,
            "x1",
            json!({"channel": "email", "to": "ada@example.org", "subject": "no body"}),
        )
        .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "invalid_message"),
            "{body}"
        );
        assert!(messages(s, &t, "").await.is_empty());
    }
);

both_engines_with!(
    daily_quotas_and_rate_limits_refuse_and_queue_nothing,
    tight,
    async |s: &Server| {
        let t = notifier(s, "limited").await;
        for key in ["q1", "q2"] {
            let (status, body) = send(s, &t, key, email("ada@example.org")).await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        let (status, body) = send(s, &t, "q3", email("ada@example.org")).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::TOO_MANY_REQUESTS, "quota_exceeded"),
            "{body}"
        );
        // A retried key is no new message: still answered.
        let (status, _) = send(s, &t, "q1", email("ada@example.org")).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = send(s, &t, "r1", sms("+14155550100")).await;
        assert_eq!(status, StatusCode::OK);
        let (status, body) = send(s, &t, "r2", sms("+14155550100")).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            "{body}"
        );
        // The plan's daily quota.
        let push = json!({"channel": "push", "token": "tok", "title": "t", "body": "b"});
        let (status, _) = send(s, &t, "p1", push.clone()).await;
        assert_eq!(status, StatusCode::OK);
        let (status, body) = send(s, &t, "p2", push).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::TOO_MANY_REQUESTS, "quota_exceeded"),
            "{body}"
        );
        assert_eq!(messages(s, &t, "").await.len(), 4);
        // Limits are per tenant.
        let u = notifier(s, "unlimited").await;
        let (status, _) = send(s, &u, "q1", email("ada@example.org")).await;
        assert_eq!(status, StatusCode::OK);
    }
);

both_engines_with!(
    the_messages_of_one_call_count_together_and_a_failed_call_counts_none,
    tight,
    async |s: &Server| {
        let t = notifier(s, "counted").await;
        // Three emails in one call, two a day: the third is refused within
        // the call; the call answers, so the first two stay queued.
        let (status, body) = s
            .post(
                "/t/counted/p/notifier/send",
                Some(&t.api_key),
                json!({"key": "b1", "message": email("ada@example.org"),
                       "messages": [email("bob@example.org"), email("cy@example.org")]}),
            )
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::TOO_MANY_REQUESTS, "quota_exceeded"),
            "{body}"
        );
        assert_eq!(messages(s, &t, "").await.len(), 2);
        // The call's counts were written with its messages.
        let (status, body) = send(s, &t, "b2", email("dee@example.org")).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::TOO_MANY_REQUESTS, "quota_exceeded"),
            "{body}"
        );
        // A call that traps after sending counts nothing (one SMS a minute).
        let (status, body) = s
            .post(
                "/t/counted/p/notifier/send",
                Some(&t.api_key),
                json!({"key": "c1", "message": sms("+14155550100"), "fail_after": true}),
            )
            .await;
        assert!(status.is_server_error(), "{status} {body}");
        let (status, body) = send(s, &t, "c2", sms("+14155550100")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = send(s, &t, "c3", sms("+14155550100")).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            "{body}"
        );
        assert_eq!(messages(s, &t, "").await.len(), 3);
    }
);

both_engines_with!(
    email_is_delivered_over_smtp_to_a_local_server,
    fast,
    async |s: &Server| {
        let smtp = FakeSmtp::start().await.with_auth("weft", "hunter22");
        let t = notifier(s, "mailer").await;
        let addr = smtp.addr();
        set_provider(
            s,
            &t,
            "email",
            json!({"provider": "smtp", "host": addr.ip().to_string(), "port": addr.port(),
                   "tls": "none", "username": "weft", "password": "hunter22", "from": "Shop <noreply@shop.example>"}),
        )
        .await;
        let (_, shown) = s
            .get(
                "/v1/tenants/mailer/messaging/providers/email",
                Some(&t.admin_token),
            )
            .await;
        assert_eq!(shown["source"], "tenant", "{shown}");
        assert!(!shown.to_string().contains("hunter22"), "redacted: {shown}");
        let (_, body) = send(s, &t, "smtp-1", email("ada@example.org")).await;
        let id = body["id"].as_str().expect("id").to_owned();
        let m = reaches(s, &t, &id, "sent").await;
        assert_eq!(m["provider"], "smtp", "{m}");
        let got = smtp.accepted();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].rcpt_to, ["ada@example.org"]);
        assert_eq!(got[0].subject().as_deref(), Some("Your receipt"));
        assert_eq!(
            got[0].header("List-Unsubscribe").as_deref(),
            Some("<https://shop.example/u/1>")
        );
        assert!(got[0].html().is_some_and(|h| h.contains("<b>Ada</b>")));
        assert_eq!(got[0].text().as_deref().map(str::trim), Some("Thanks, Ada"));
    }
);

both_engines_with!(
    sendgrid_twilio_and_fcm_get_their_real_formats,
    fast,
    async |s: &Server| {
        let (sendgrid, twilio, fcm) = (
            FakeSendGrid::start().await,
            FakeTwilio::start().await,
            FakeFcm::start().await,
        );
        let t = notifier(s, "multi").await;
        set_provider(
            s,
            &t,
            "email",
            json!({"provider": "sendgrid", "api_key": sendgrid.config().api_key,
                   "base_url": sendgrid.base_url(), "from": "noreply@shop.example",
                   "webhook_public_key": sendgrid.webhook_public_key()}),
        )
        .await;
        set_provider(
            s,
            &t,
            "sms",
            json!({"provider": "twilio", "account_sid": twilio.account_sid(), "auth_token": twilio.auth_token(),
                   "base_url": twilio.base_url(), "from": "+15005550006"}),
        )
        .await;
        set_provider(
            s,
            &t,
            "push",
            json!({"provider": "fcm", "service_account_json": fcm.service_account_json(), "base_url": fcm.base_url()}),
        )
        .await;
        let (_, e) = send(s, &t, "e", email("ada@example.org")).await;
        let (_, m) = send(s, &t, "s", sms("+14155550100")).await;
        let (_, p) = send(
            s,
            &t,
            "p",
            json!({"channel": "push", "token": "device-token-1", "title": "Hi", "body": "There", "data": {"order": "42"}}),
        )
        .await;
        for id in [&e["id"], &m["id"], &p["id"]] {
            reaches(s, &t, id.as_str().expect("id"), "sent").await;
        }
        let mail = sendgrid.accepted();
        assert_eq!(mail.len(), 1);
        assert_eq!(mail[0].message.to, "ada@example.org");
        assert_eq!(mail[0].message.subject, "Your receipt");
        let text = twilio.accepted();
        assert_eq!(
            (text[0].message.to.as_str(), text[0].message.from.as_str()),
            ("+14155550100", "+15005550006")
        );
        let pushed = fcm.accepted();
        assert_eq!(pushed[0].message.token, "device-token-1");
        assert_eq!(
            pushed[0].message.data.get("order").map(String::as_str),
            Some("42")
        );
        // The provider's id is kept for its status webhooks.
        let stored = message(s, &t, m["id"].as_str().expect("id")).await;
        assert_eq!(stored["provider_id"], text[0].provider_id.as_str());
        // SendGrid's signed Event Webhook: a bounce is recorded, a post
        // signed with another key is refused.
        let url = format!("{}/v1/webhooks/messaging/sendgrid/multi", s.base);
        let email_id = e["id"].as_str().expect("id");
        let forger = FakeSendGrid::start().await;
        let forged = forger.signed_events(&url, &[(&mail[0].provider_id, DeliveryStatus::Bounced)]);
        assert_eq!(forged.post().await.expect("post"), 401);
        assert_eq!(message(s, &t, email_id).await["status"], "sent");
        let status = sendgrid
            .post_events(&url, &[(&mail[0].provider_id, DeliveryStatus::Bounced)])
            .await
            .expect("post");
        assert_eq!(status, 200);
        assert_eq!(message(s, &t, email_id).await["status"], "bounced");
    }
);

both_engines_with!(
    a_provider_500_is_retried_and_the_message_delivered_once,
    fast,
    async |s: &Server| {
        let sendgrid = FakeSendGrid::start().await;
        sendgrid.fail_next(2, 500);
        let t = notifier(s, "flaky").await;
        set_provider(
            s,
            &t,
            "email",
            json!({"provider": "sendgrid", "api_key": sendgrid.config().api_key,
                   "base_url": sendgrid.base_url(), "from": "noreply@shop.example"}),
        )
        .await;
        let (_, body) = send(s, &t, "retry-me", email("ada@example.org")).await;
        let id = body["id"].as_str().expect("id").to_owned();
        let m = reaches(s, &t, &id, "sent").await;
        assert_eq!(m["attempts"], 3, "{m}");
        let outcomes: Vec<&str> = m["attempt_log"]
            .as_array()
            .expect("attempts")
            .iter()
            .filter_map(|a| a["outcome"].as_str())
            .collect();
        assert_eq!(outcomes, ["transient", "transient", "sent"], "{m}");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(sendgrid.accepted_count(), 1, "delivered exactly once");
        assert_eq!(sendgrid.calls(), 3);
    }
);

both_engines_with!(
    a_permanent_failure_is_dead_lettered_visible_and_replayable,
    fast,
    async |s: &Server| {
        let twilio = FakeTwilio::start().await;
        twilio.refuse_recipient("+14155550199");
        let t = notifier(s, "deadly").await;
        set_provider(
            s,
            &t,
            "sms",
            json!({"provider": "twilio", "account_sid": twilio.account_sid(), "auth_token": twilio.auth_token(),
                   "base_url": twilio.base_url(), "from": "+15005550006"}),
        )
        .await;
        let (_, body) = send(s, &t, "dead-1", sms("+14155550199")).await;
        let id = body["id"].as_str().expect("id").to_owned();
        let m = reaches(s, &t, &id, "dead").await;
        assert_eq!(m["attempts"], 1, "permanent: no retry: {m}");
        assert_eq!(m["attempt_log"][0]["outcome"], "permanent", "{m}");
        let dead = messages(s, &t, "?status=dead").await;
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0]["id"], id.as_str());
        let by_recipient = messages(s, &t, "?recipient=%2B14155550199").await;
        assert_eq!(by_recipient.len(), 1);
        // Only a dead message replays.
        let (_, other) = send(s, &t, "fine", sms("+14155550100")).await;
        let fine = other["id"].as_str().expect("id");
        reaches(s, &t, fine, "sent").await;
        let (status, body) = s
            .post(
                &format!("/v1/tenants/deadly/messages/{fine}/replay"),
                Some(&t.admin_token),
                json!({}),
            )
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::CONFLICT, "message_not_dead")
        );
        twilio.reset();
        let (status, body) = s
            .post(
                &format!("/v1/tenants/deadly/messages/{id}/replay"),
                Some(&t.admin_token),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let m = reaches(s, &t, &id, "sent").await;
        assert_eq!(m["attempt_log"].as_array().map(Vec::len), Some(2), "{m}");
        assert_eq!(twilio.accepted_count(), 1);
    }
);

both_engines_with!(
    in_app_notifications_belong_to_their_user,
    fast,
    async |s: &Server| {
        let t = notifier(s, "app").await;
        let uma = s.user(&t, "Uma").await;
        let vic = s.user(&t, "Vic").await;
        let mut ids = Vec::new();
        for n in 0..3 {
            let (status, body) = send(
                s,
                &t,
                &format!("n{n}"),
                json!({"channel": "in_app", "user": uma.id, "title": format!("Reply {n}"),
                       "body": "Someone answered", "link": "/t/app/topics/1", "data": {"topic": 1}}),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            ids.push(body["id"].as_str().expect("id").to_owned());
        }
        for id in &ids {
            reaches(s, &t, id, "delivered").await;
        }
        let (status, mine) = s.get("/v1/me/notifications", Some(&uma.token)).await;
        assert_eq!(status, StatusCode::OK, "{mine}");
        assert_eq!(mine["unread"], 3, "{mine}");
        assert_eq!(mine["notifications"][0]["title"], "Reply 2");
        assert_eq!(mine["notifications"][0]["data"]["topic"], 1);
        let (_, theirs) = s.get("/v1/me/notifications", Some(&vic.token)).await;
        assert_eq!(theirs["notifications"], json!([]), "{theirs}");
        // Another user cannot mark Uma's notification read.
        let (status, _) = s
            .post(
                &format!("/v1/me/notifications/{}/read", ids[0]),
                Some(&vic.token),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, body) = s
            .post(
                &format!("/v1/me/notifications/{}/read", ids[0]),
                Some(&uma.token),
                json!({}),
            )
            .await;
        assert_eq!((status, &body["marked"]), (StatusCode::OK, &json!(1)));
        let (_, unread) = s
            .get("/v1/me/notifications?unread=true", Some(&uma.token))
            .await;
        assert_eq!(
            unread["notifications"].as_array().map(Vec::len),
            Some(2),
            "{unread}"
        );
        let (_, body) = s
            .post("/v1/me/notifications/read-all", Some(&uma.token), json!({}))
            .await;
        assert_eq!(body["marked"], 2, "{body}");
        let (_, mine) = s.get("/v1/me/notifications", Some(&uma.token)).await;
        assert_eq!(mine["unread"], 0, "{mine}");
        // A paged list.
        let (_, page) = s
            .get("/v1/me/notifications?limit=2", Some(&uma.token))
            .await;
        let before = page["next_before"].as_str().expect("next page");
        let (_, rest) = s
            .get(
                &format!("/v1/me/notifications?limit=2&before={before}"),
                Some(&uma.token),
            )
            .await;
        assert_eq!(
            rest["notifications"].as_array().map(Vec::len),
            Some(1),
            "{rest}"
        );
        // An API key is no user.
        let (status, _) = s.get("/v1/me/notifications", Some(&t.api_key)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
);

both_engines_with!(
    a_tenant_sees_only_its_own_messages,
    fast,
    async |s: &Server| {
        let a = notifier(s, "alpha").await;
        let b = notifier(s, "beta").await;
        let (_, body) = send(s, &a, "secret", email("ada@example.org")).await;
        let id = body["id"].as_str().expect("id").to_owned();
        reaches(s, &a, &id, "delivered").await;
        let (status, _) = s
            .get("/v1/tenants/alpha/messages", Some(&b.admin_token))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = s
            .get(
                &format!("/v1/tenants/beta/messages/{id}"),
                Some(&b.admin_token),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(messages(s, &b, "").await.is_empty());
        let (_, inbox) = s.get("/v1/dev/outbox", Some(&b.admin_token)).await;
        assert_eq!(inbox["messages"], json!([]), "{inbox}");
        // The same key in another tenant is another message.
        let (_, other) = send(s, &b, "secret", email("ada@example.org")).await;
        assert_ne!(other["id"], body["id"]);
        let (status, _) = s
            .get(&format!("/t/beta/p/notifier/status/{id}"), Some(&b.api_key))
            .await;
        assert_eq!(status, StatusCode::OK);
        let (_, st) = s
            .get(&format!("/t/beta/p/notifier/status/{id}"), Some(&b.api_key))
            .await;
        assert_eq!(st["status"], Value::Null, "{st}");
        // The operator sees every tenant's dev inbox.
        let (_, all) = s.get("/v1/dev/outbox", Some(&s.root_token)).await;
        assert!(all.to_string().contains(&id), "{all}");
    }
);

both_engines_with!(
    twilio_status_webhooks_are_verified_and_update_the_status,
    fast,
    async |s: &Server| {
        let twilio = FakeTwilio::start().await;
        let t = notifier(s, "hooks").await;
        set_provider(
            s,
            &t,
            "sms",
            json!({"provider": "twilio", "account_sid": twilio.account_sid(), "auth_token": twilio.auth_token(),
                   "base_url": twilio.base_url(), "from": "+15005550006"}),
        )
        .await;
        let (_, body) = send(s, &t, "hooked", sms("+14155550100")).await;
        let id = body["id"].as_str().expect("id").to_owned();
        reaches(s, &t, &id, "sent").await;
        let sid = twilio.accepted()[0].provider_id.clone();
        let url = format!("{}/v1/webhooks/messaging/twilio/hooks", s.base);
        // Forged: signed with another token.
        let forger = FakeTwilio::start().await;
        let forged = forger.signed_status(&url, &sid, DeliveryStatus::Delivered);
        assert_eq!(forged.post().await.expect("post"), 401);
        // Unsigned.
        let (status, _, body) = s
            .send_raw(
                reqwest::Method::POST,
                "/v1/webhooks/messaging/twilio/hooks",
                None,
                None,
                &[],
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(message(s, &t, &id).await["status"], "sent");
        let signed = twilio.signed_status(&url, &sid, DeliveryStatus::Delivered);
        assert_eq!(signed.post().await.expect("post"), 200);
        assert_eq!(message(s, &t, &id).await["status"], "delivered");
        // Another tenant's URL does not accept it.
        let _other = notifier(s, "other").await;
        let misrouted = twilio.signed_status(
            &format!("{}/v1/webhooks/messaging/twilio/other", s.base),
            &sid,
            DeliveryStatus::Failed,
        );
        assert_eq!(misrouted.post().await.expect("post"), 404);
        assert_eq!(message(s, &t, &id).await["status"], "delivered");
    }
);

both_engines_with!(
    mailgun_delivers_reports_by_webhook_and_exhausted_retries_go_dead,
    fast,
    async |s: &Server| {
        let mailgun = FakeMailgun::start().await;
        let t = notifier(s, "gunner").await;
        let config = mailgun.config();
        set_provider(
            s,
            &t,
            "email",
            json!({"provider": "mailgun", "api_key": config.api_key, "domain": config.domain,
                   "base_url": mailgun.base_url(), "from": "Shop <noreply@shop.example>",
                   "webhook_signing_key": mailgun.webhook_signing_key()}),
        )
        .await;
        let (_, body) = send(s, &t, "mg-1", email("ada@example.org")).await;
        let id = body["id"].as_str().expect("id").to_owned();
        reaches(s, &t, &id, "sent").await;
        let got = mailgun.accepted();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].message.subject, "Your receipt");
        let url = format!("{}/v1/webhooks/messaging/mailgun/gunner", s.base);
        let forger = FakeMailgun::start().await;
        let forged = forger.signed_event(&url, &got[0].provider_id, DeliveryStatus::Delivered);
        assert_eq!(forged.post().await.expect("post"), 401);
        let signed = mailgun.signed_event(&url, &got[0].provider_id, DeliveryStatus::Delivered);
        assert_eq!(signed.post().await.expect("post"), 200);
        assert_eq!(message(s, &t, &id).await["status"], "delivered");

        // Every attempt fails transiently: dead after max_attempts (4).
        mailgun.fail_next(10, 503);
        let (_, body) = send(s, &t, "mg-2", email("ada@example.org")).await;
        let id = body["id"].as_str().expect("id").to_owned();
        let m = reaches(s, &t, &id, "dead").await;
        let outcomes: Vec<&str> = m["attempt_log"]
            .as_array()
            .expect("attempts")
            .iter()
            .filter_map(|a| a["outcome"].as_str())
            .collect();
        assert_eq!(outcomes, ["transient"; 4], "{m}");
        assert!(
            m["last_error"].as_str().is_some_and(|e| e.contains("503")),
            "{m}"
        );
        assert_eq!(mailgun.accepted_count(), 1);
    }
);

/// [`fast`] behind a public address.
fn public(c: &mut Config) {
    fast(c);
    c.messaging.public_url = "https://weft.example".into();
}

both_engines_with!(
    behind_a_public_url_twilio_is_told_where_to_report,
    public,
    async |s: &Server| {
        let twilio = FakeTwilio::start().await;
        let t = notifier(s, "pub").await;
        set_provider(
            s,
            &t,
            "sms",
            json!({"provider": "twilio", "account_sid": twilio.account_sid(), "auth_token": twilio.auth_token(),
                   "base_url": twilio.base_url(), "from": "+15005550006"}),
        )
        .await;
        let (_, body) = send(s, &t, "cb", sms("+14155550100")).await;
        let id = body["id"].as_str().expect("id").to_owned();
        reaches(s, &t, &id, "sent").await;
        let sent = &twilio.accepted()[0];
        let callback = "https://weft.example/v1/webhooks/messaging/twilio/pub";
        assert!(
            sent.raw.contains(
                "StatusCallback=https%3A%2F%2Fweft.example%2Fv1%2Fwebhooks%2Fmessaging%2Ftwilio%2Fpub"
            ),
            "{}",
            sent.raw
        );
        // Signed over the public URL, as Twilio signs it, and received here.
        let local = format!("{}/v1/webhooks/messaging/twilio/pub", s.base);
        let mut over_local =
            twilio.signed_status(&local, &sent.provider_id, DeliveryStatus::Delivered);
        assert_eq!(
            over_local.post().await.expect("post"),
            401,
            "signed over the wrong URL"
        );
        over_local = twilio.signed_status(callback, &sent.provider_id, DeliveryStatus::Delivered);
        over_local.url = local;
        assert_eq!(over_local.post().await.expect("post"), 200);
        assert_eq!(message(s, &t, &id).await["status"], "delivered");
    }
);

both_engines_with!(
    pruning_drops_done_messages_past_retention_and_keeps_queued_ones,
    fast,
    async |s: &Server| {
        use weft::db::{Exec, Mode, Scope, Stmt};
        let t = notifier(s, "prune").await;
        let (_, old) = send(s, &t, "old", email("ada@example.org")).await;
        let old = old["id"].as_str().expect("id").to_owned();
        reaches(s, &t, &old, "delivered").await;
        let (_, fresh) = send(s, &t, "fresh", email("ada@example.org")).await;
        let fresh = fresh["id"].as_str().expect("id").to_owned();
        reaches(s, &t, &fresh, "delivered").await;
        // Forty days ago: the first delivered message, its dev inbox copy,
        // and a message still queued (due far in the future).
        let forty_days_ago = weft::ids::now_ms() - 40 * 86_400_000;
        let mut tx = s
            .app
            .db
            .begin(Scope::Platform, Mode::Write)
            .await
            .expect("begin");
        for stmt in [
            Stmt::new("UPDATE outbox_messages SET updated_at = $1 WHERE id = $2")
                .bind(forty_days_ago)
                .bind(old.as_str()),
            Stmt::new("UPDATE dev_inbox SET at = $1 WHERE message_id = $2")
                .bind(forty_days_ago)
                .bind(old.as_str()),
            Stmt::new(
                "INSERT INTO outbox_messages (id, tenant_id, plugin, idempotency_key, channel, recipient, \
                 content, status, attempts, next_attempt_at, created_at, updated_at) \
                 SELECT 'msg_waiting', tenant_id, plugin, 'waiting', channel, recipient, content, 'queued', \
                 0, $1, $2, $2 FROM outbox_messages WHERE id = $3",
            )
            .bind(weft::ids::now_ms() + 86_400_000)
            .bind(forty_days_ago)
            .bind(old.as_str()),
        ] {
            tx.execute(stmt).await.expect("backdate");
        }
        tx.commit().await.expect("commit");

        let pruned = weft::messaging::store::prune(&s.app.db, 30 * 86_400_000, 7 * 86_400_000)
            .await
            .expect("prune");
        assert_eq!((pruned.messages, pruned.dev_inbox), (1, 1), "{pruned:?}");
        let ids: Vec<String> = messages(s, &t, "")
            .await
            .iter()
            .filter_map(|m| m["id"].as_str().map(str::to_owned))
            .collect();
        assert!(!ids.contains(&old), "{ids:?}");
        assert!(ids.contains(&fresh), "{ids:?}");
        assert!(ids.contains(&"msg_waiting".to_owned()), "{ids:?}");
        let (status, _) = s
            .get(
                &format!("/v1/tenants/{}/messages/{old}", t.slug),
                Some(&t.admin_token),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (_, inbox) = s.get("/v1/dev/outbox", Some(&t.admin_token)).await;
        let inbox = inbox.to_string();
        assert!(!inbox.contains(&old) && inbox.contains(&fresh), "{inbox}");
    }
);
