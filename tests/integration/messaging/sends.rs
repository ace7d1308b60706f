//! `/send` end to end: a templated email over SMTP with its unsubscribe
//! headers, fan-out across channels, retries that queue nothing twice, the
//! unsubscribe link stopping every channel it covers (a forged token
//! refused), bad input that queues nothing, and quiet hours and scheduled
//! sends released by the schedule under an injected clock.

use std::sync::Arc;

use weft::schedules::ManualClock;

use super::*;
use crate::both_engines_with;
use crate::common::code;

fn welcome() -> Value {
    json!({
        "description": "After sign-up",
        "defaults": {"product": "the Shop"},
        "variants": {
            "en": {"subject": "Welcome to {{ product }}, {{ recipient.name }}",
                   "html": "<h1>Hello {{ recipient.name }}</h1><p>Thanks for joining <b>{{ product }}</b>.</p>{% if coupon is defined %}<p>Your code: {{ coupon }}</p>{% endif %}<ul>{% for tip in tips %}<li>{{ tip }}</li>{% endfor %}</ul>",
                   "sms": "Welcome to {{ product }}!",
                   "in_app_title": "Welcome", "in_app_body": "Glad you are here."},
            "fr": {"subject": "Bienvenue chez {{ product }}", "text": "Bonjour {{ recipient.name }}", "sms": "Bienvenue !"}
        }
    })
}

both_engines_with!(
    a_templated_email_is_delivered_over_smtp_and_fans_out_once,
    fast,
    async |s: &Server| {
        let smtp = FakeSmtp::start().await;
        let t = tenant(s, "shop", &smtp).await;
        let ada = s.user(&t, "Ada").await;
        contact(
            s,
            &t,
            &ada,
            json!({"email": "Ada@Example.org", "phone": "+14155550100"}),
        )
        .await;
        template(s, &t, "welcome", welcome()).await;
        let request = json!({"recipient": ada.id, "channels": ["email", "sms", "in_app", "push"],
                             "template": "welcome", "data": {"coupon": "HELLO10", "tips": ["Look", "Buy"]}});
        let (status, first) = send(s, &t, request.clone()).await;
        assert_eq!(status, StatusCode::OK, "{first}");
        let by_channel = |body: &Value, ch: &str| {
            body["channels"]
                .as_array()
                .and_then(|a| a.iter().find(|c| c["channel"] == ch).cloned())
                .unwrap_or_else(|| panic!("{ch} in {body}"))
        };
        for ch in ["email", "sms", "in_app"] {
            assert_eq!(by_channel(&first, ch)["status"], "queued", "{first}");
        }
        // No device registered: push is reported, not queued.
        assert_eq!(
            by_channel(&first, "push")["reason"],
            "no_address",
            "{first}"
        );

        let got = accepted(&smtp, 1).await;
        let email = &got[0];
        assert_eq!(email.rcpt_to, ["ada@example.org"]);
        assert_eq!(email.subject().as_deref(), Some("Welcome to the Shop, Ada"));
        let html = email.html().expect("html part");
        assert!(
            html.contains("Your code: HELLO10") && html.contains("<li>Buy</li>"),
            "{html}"
        );
        // The text part was generated from the HTML.
        let text = email.text().expect("text part");
        assert!(
            text.contains("Hello Ada") && text.contains("- Look"),
            "{text}"
        );
        let url = unsubscribe_url(email);
        assert!(
            url.starts_with(&format!("{}/t/shop/p/messaging/u/", s.base)),
            "{url}"
        );
        assert_eq!(
            email.header("List-Unsubscribe-Post").as_deref(),
            Some("List-Unsubscribe=One-Click")
        );
        assert!(
            email
                .header("Message-ID")
                .is_some_and(|id| id.ends_with("@messaging.weft>"))
        );

        // A retry of the same request queues nothing more.
        let (status, again) = send(s, &t, request).await;
        assert_eq!(status, StatusCode::OK, "{again}");
        assert_eq!(
            by_channel(&again, "email")["outbox_ids"],
            by_channel(&first, "email")["outbox_ids"]
        );
        assert_eq!(outbox(s, &t).await.len(), 3);
        // The in-app copy is the user's.
        let (_, notes) = s.get("/v1/me/notifications", Some(&ada.token)).await;
        assert_eq!(notes["notifications"][0]["title"], "Welcome", "{notes}");

        // The contact's locale picks the variant; fr has its own text.
        contact(
            s,
            &t,
            &ada,
            json!({"email": "ada@example.org", "locale": "fr-CA"}),
        )
        .await;
        let (status, fr) = send(s, &t, json!({"recipient": ada.id, "channels": ["email"], "template": "welcome", "data": {"tips": []}})).await;
        assert_eq!(
            (status, fr["locale"].as_str()),
            (StatusCode::OK, Some("fr")),
            "{fr}"
        );
        let got = accepted(&smtp, 2).await;
        assert_eq!(got[1].subject().as_deref(), Some("Bienvenue chez the Shop"));

        // The delivery log finds both by user and by address, with statuses.
        let (status, log) = s
            .get(
                &m(&t, &format!("/log?recipient={}", ada.id)),
                Some(&t.api_key),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{log}");
        assert_eq!(log["entries"].as_array().map(Vec::len), Some(2), "{log}");
        let (_, by_address) = s
            .get(&m(&t, "/log?recipient=ada@example.org"), Some(&t.api_key))
            .await;
        assert_eq!(
            by_address["entries"].as_array().map(Vec::len),
            Some(2),
            "{by_address}"
        );
        // Each entry shows what the outbox says now.
        eventually(20, "the log to show the email sent", || async {
            let (_, log) = s
                .get(
                    &m(&t, "/log?recipient=ada@example.org&limit=1"),
                    Some(&t.api_key),
                )
                .await;
            let email = log["entries"][0]["channels"][0].clone();
            (email["delivery"] == json!(["sent"])).then_some(())
        })
        .await;

        // Preview renders without queueing.
        let (status, preview) = s
            .post(
                &m(&t, "/preview"),
                Some(&t.api_key),
                json!({"template": "welcome", "data": {"tips": ["x"]}, "locale": "en"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{preview}");
        assert_eq!(
            preview["channels"][0]["messages"][0]["subject"],
            "Welcome to the Shop,"
        );
        assert_eq!(outbox(s, &t).await.len(), 4);
    }
);

both_engines_with!(
    the_unsubscribe_link_stops_every_channel_and_forged_tokens_are_refused,
    fast,
    async |s: &Server| {
        let smtp = FakeSmtp::start().await;
        let t = tenant(s, "unsub", &smtp).await;
        let other = tenant(s, "other", &smtp).await;
        let ada = s.user(&t, "Ada").await;
        contact(
            s,
            &t,
            &ada,
            json!({"email": "ada@example.org", "phone": "+14155550100"}),
        )
        .await;
        template(s, &t, "welcome", welcome()).await;
        template(s, &other, "welcome", welcome()).await;
        let all = json!(["email", "sms", "in_app"]);
        let (status, body) = send(s, &t, json!({"recipient": ada.id, "channels": all, "template": "welcome", "data": {"tips": []}})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let url = unsubscribe_url(&accepted(&smtp, 1).await[0]);
        // The page asks; it does not unsubscribe (link scanners GET).
        let (status, page) = get_url(s, &url).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("<form method=\"post\">"), "{page}");

        // Forged: another subject under the same signature, a flipped
        // signature, a token of another tenant.
        let token = url.rsplit('/').next().expect("token").to_owned();
        let (payload, sig) = token.split_once('.').expect("payload.sig");
        let mut flipped = sig.to_owned();
        let last = if flipped.ends_with('A') { "B" } else { "A" };
        flipped.replace_range(flipped.len() - 1.., last);
        let base = url.trim_end_matches(&token).to_owned();
        for forged in [
            format!("{payload}.{flipped}"),
            format!("dXxhbGx8ZTpldmVAZXhhbXBsZS5vcmc.{sig}"),
            "nonsense".to_owned(),
        ] {
            let (status, _) =
                post_url(s, &format!("{base}{forged}"), "List-Unsubscribe=One-Click").await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{forged}");
        }
        send(s, &other, json!({"recipient": "eve@example.org", "channels": ["email"], "template": "welcome", "data": {"tips": []}})).await;
        let foreign = unsubscribe_url(&accepted(&smtp, 2).await[1]);
        let foreign_token = foreign.rsplit('/').next().expect("token");
        let (status, _) = post_url(
            s,
            &format!("{base}{foreign_token}"),
            "List-Unsubscribe=One-Click",
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "another tenant's token");
        let before = outbox(s, &t).await.len();
        assert_eq!(before, 3);

        // The mail client's one-click.
        let (status, done) = post_url(s, &url, "List-Unsubscribe=One-Click").await;
        assert_eq!(status, StatusCode::OK, "{done}");
        let (status, later) = send(s, &t, json!({"recipient": ada.id, "channels": all, "template": "welcome", "data": {"tips": ["new"]}})).await;
        assert_eq!(status, StatusCode::OK, "{later}");
        for c in later["channels"].as_array().expect("channels") {
            assert_eq!(
                (c["status"].as_str(), c["reason"].as_str()),
                (Some("skipped"), Some("unsubscribed")),
                "{later}"
            );
        }
        // The address is covered too, sent to raw.
        let (_, raw) = send(s, &t, json!({"recipient": "ada@example.org", "channels": ["email"], "template": "welcome", "data": {"tips": []}})).await;
        assert_eq!(raw["channels"][0]["reason"], "unsubscribed", "{raw}");
        assert_eq!(outbox(s, &t).await.len(), before, "nothing more queued");
        let (_, sups) = s.get(&m(&t, "/suppressions"), Some(&t.api_key)).await;
        assert!(
            sups.to_string().contains(&format!("u:{}", ada.id)),
            "{sups}"
        );
    }
);

both_engines_with!(
    bad_input_is_refused_and_queues_nothing,
    fast,
    async |s: &Server| {
        let smtp = FakeSmtp::start().await;
        let t = tenant(s, "strict", &smtp).await;
        let ada = s.user(&t, "Ada").await;
        contact(s, &t, &ada, json!({"email": "ada@example.org"})).await;
        template(s, &t, "order", json!({"variants": {"en": {"subject": "Order {{ order_id }}", "text": "Hi {{ first_name }}, order {{ order_id }} ships {{ when }}."}},
                                     "defaults": {"when": "today"}})).await;
        let order = |data: Value| json!({"recipient": ada.id, "channels": ["email"], "template": "order", "data": data});

        let (status, body) = send(
            s,
            &t,
            json!({"recipient": ada.id, "channels": ["email"], "template": "nope"}),
        )
        .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNPROCESSABLE_ENTITY, "unknown_template"),
            "{body}"
        );
        let (status, body) = send(s, &t, order(json!({"order_id": 7}))).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNPROCESSABLE_ENTITY, "missing_variable"),
            "{body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("`first_name`")),
            "{body}"
        );
        for (recipient, channels) in [
            ("ada@", json!(["email"])),
            ("ada@example", json!(["email"])),
            ("+1415", json!(["sms"])),
            ("+1 415 555 0100", json!(["sms"])),
        ] {
            let (status, body) = send(s, &t, json!({"recipient": recipient, "channels": channels, "template": "order", "data": {"order_id": 1, "first_name": "A"}})).await;
            assert_eq!(
                (status, code(&body)),
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid_recipient"),
                "{recipient}: {body}"
            );
        }
        let (status, body) = send(
            s,
            &t,
            json!({"recipient": ada.id, "channels": ["fax"], "template": "order"}),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let (status, body) = s
            .put(
                &m(&t, "/me/contact"),
                Some(&ada.token),
                json!({"email": "not an address"}),
            )
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_recipient"),
            "{body}"
        );
        let (status, body) = s
            .put(
                &m(&t, "/me/contact"),
                Some(&ada.token),
                json!({"phone": "555-0100"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let (status, body) = s
            .put(
                &m(&t, "/templates/broken"),
                Some(&t.api_key),
                json!({"variants": {"en": {"sms": "{% if %}"}}}),
            )
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_template"),
            "{body}"
        );
        // A user may not send, nor read the log.
        let (status, _) = s
            .post(&m(&t, "/send"), Some(&ada.token), order(json!({})))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(outbox(s, &t).await.is_empty(), "nothing was queued");

        // The template's default fills `when`.
        let (status, body) = send(s, &t, order(json!({"order_id": 7, "first_name": "Ada"}))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let got = accepted(&smtp, 1).await;
        assert_eq!(
            got[0].text().as_deref().map(str::trim),
            Some("Hi Ada, order 7 ships today.")
        );
    }
);

both_engines_with!(
    quiet_hours_and_scheduled_sends_wait_for_the_schedule,
    fast,
    async |s: &Server| {
        let smtp = FakeSmtp::start().await;
        let t = tenant(s, "later", &smtp).await;
        let ada = s.user(&t, "Ada").await;
        // Quiet from the start of this UTC hour for two hours, for SMS.
        let now = weft::ids::now_ms();
        let hour = (now / 3_600_000) % 24;
        let start = format!("{hour:02}:00");
        let end = format!("{:02}:00", (hour + 2) % 24);
        contact(s, &t, &ada, json!({"email": "ada@example.org", "phone": "+14155550100",
                                    "quiet_hours": {"start": start, "end": end, "utc_offset_minutes": 0, "channels": ["sms"]}})).await;
        template(s, &t, "ping", json!({"variants": {"en": {"subject": "Ping", "text": "ping {{ n }}", "sms": "ping {{ n }}"}}})).await;
        let (status, body) = send(s, &t, json!({"recipient": ada.id, "channels": ["email", "sms"], "template": "ping", "data": {"n": 1}})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["channels"][0]["status"], "queued", "{body}");
        assert_eq!(body["channels"][1]["status"], "deferred", "{body}");
        let release = body["channels"][1]["send_at"].as_i64().expect("send_at");
        assert_eq!(release, (now / 3_600_000 + 2) * 3_600_000);

        // Scheduled for an hour after the quiet hours end.
        let send_at = release + 3_600_000;
        let (status, body) = send(s, &t, json!({"recipient": "bob@example.org", "channels": ["email"], "template": "ping", "data": {"n": 2}, "send_at": send_at})).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (StatusCode::ACCEPTED, Some("scheduled")),
            "{body}"
        );
        // A scheduled send is checked now.
        let (status, body) = send(s, &t, json!({"recipient": "bob@example.org", "channels": ["email"], "template": "ping", "send_at": send_at})).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNPROCESSABLE_ENTITY, "missing_variable"),
            "{body}"
        );
        assert_eq!(outbox(s, &t).await.len(), 1, "only the email went");

        // The schedule, before the end of the quiet hours: nothing moves.
        let clock = Arc::new(ManualClock::new(release - 60_000));
        s.app.scheduler.set_clock(clock.clone());
        s.app.scheduler.tick(&s.app).await.expect("tick");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert_eq!(outbox(s, &t).await.len(), 1);
        // After it: the SMS goes.
        clock.set(release + 30_000);
        s.app.scheduler.tick(&s.app).await.expect("tick");
        let sms = eventually(20, "the deferred SMS", || async {
            let msgs = outbox(s, &t).await;
            msgs.into_iter().find(|m| m["channel"] == "sms")
        })
        .await;
        assert_eq!(sms["recipient"], "+14155550100", "{sms}");
        assert_eq!(outbox(s, &t).await.len(), 2, "bob's is not due yet");
        // And the scheduled email at its time, once.
        clock.set(send_at + 30_000);
        s.app.scheduler.tick(&s.app).await.expect("tick");
        let got = accepted(&smtp, 2).await;
        assert_eq!(got[1].rcpt_to, ["bob@example.org"]);
        assert_eq!(got[1].text().as_deref().map(str::trim), Some("ping 2"));
        clock.set(send_at + 90_000);
        s.app.scheduler.tick(&s.app).await.expect("tick");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert_eq!(outbox(s, &t).await.len(), 3);
    }
);
