//! Lists: double opt-in through the emailed link, CSV import (a bad row
//! refuses the file) and export, a batch send with its progress, and a
//! list's unsubscribe link.

use super::*;
use crate::both_engines_with;
use crate::common::code;

async fn subscribers(s: &Server, t: &TestTenant, query: &str) -> Vec<Value> {
    let (status, body) = s
        .get(
            &m(t, &format!("/lists/news/subscribers{query}")),
            Some(&t.api_key),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["subscribers"].as_array().cloned().unwrap_or_default()
}

/// `POST /lists/news/import` with `csv`.
async fn import(s: &Server, t: &TestTenant, csv: impl Into<reqwest::Body>) -> (StatusCode, Value) {
    let resp = s
        .client
        .post(format!("{}{}", s.base, m(t, "/lists/news/import")))
        .bearer_auth(&t.api_key)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .expect("import");
    let status = resp.status();
    (status, resp.json().await.expect("json"))
}

/// `POST /lists/news/sends` with `body`.
async fn send_batch(s: &Server, t: &TestTenant, body: Value) -> (StatusCode, Value) {
    s.post(&m(t, "/lists/news/sends"), Some(&t.api_key), body)
        .await
}

async fn batch_done(s: &Server, t: &TestTenant, id: &str) -> Value {
    eventually(30, &format!("batch {id} done"), || async {
        let (_, b) = s
            .get(&m(t, &format!("/batches/{id}")), Some(&t.api_key))
            .await;
        (b["state"] == "done").then_some(b)
    })
    .await
}

both_engines_with!(
    double_opt_in_csv_and_a_batch_send_to_a_list,
    fast,
    async |s: &Server| {
        let smtp = FakeSmtp::start().await;
        let t = tenant(s, "letters", &smtp).await;
        let (status, list) = s
            .post(
                &m(&t, "/lists"),
                Some(&t.api_key),
                json!({"id": "news", "name": "Weekly news"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{list}");
        assert_eq!(list["double_opt_in"], true);

        // Anyone may ask; the address stays pending until the link.
        let (status, body) = s
            .post(
                &m(&t, "/lists/news/subscribers"),
                None,
                json!({"email": "Zoe@Example.org", "name": "Zoe"}),
            )
            .await;
        assert_eq!(
            (status, body["status"].as_str()),
            (StatusCode::ACCEPTED, Some("pending")),
            "{body}"
        );
        let (status, body) = s
            .post(
                &m(&t, "/lists/news/subscribers"),
                None,
                json!({"email": "zoe@"}),
            )
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_recipient")
        );
        let confirm = accepted(&smtp, 1).await;
        assert_eq!(confirm[0].rcpt_to, ["zoe@example.org"]);
        let link = link_in(&confirm[0].text().expect("text"), "/confirm/");
        assert_eq!(subscribers(s, &t, "?status=pending").await.len(), 1);
        // A forged confirmation does nothing.
        let (status, _) = get_url(s, &format!("{link}x")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, page) = get_url(s, &link).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(subscribers(s, &t, "?status=confirmed").await.len(), 1);

        // An import with bad rows writes nothing and names them.
        let bad = "email,name,city\nada@example.org,Ada,Paris\nnope,No,Where\nbob@example.org,Bob,Rome\nada@example.org,Again,Nice\n";
        let (status, body) = import(s, &t, bad).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(code(&body), "invalid_rows", "{body}");
        let lines: Vec<i64> = body["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .filter_map(|r| r["line"].as_i64())
            .collect();
        assert_eq!(lines, [3, 5], "{body}");
        assert_eq!(subscribers(s, &t, "").await.len(), 1, "nothing imported");
        let good = "email,name,city\nada@example.org,Ada,Paris\nbob@example.org,Bob,Rome\ncy@example.org,Cy,\n";
        let (status, body) = import(s, &t, good).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["added"], 3, "{body}");
        let (_, list) = s.get(&m(&t, "/lists/news"), Some(&t.api_key)).await;
        assert_eq!(list["confirmed"], 4, "{list}");
        let resp = s
            .client
            .get(format!("{}{}", s.base, m(&t, "/lists/news/export")))
            .bearer_auth(&t.api_key)
            .send()
            .await
            .expect("export");
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .is_ok_and(|c| c.starts_with("text/csv"))
        );
        let csv = resp.text().await.expect("csv");
        assert!(
            csv.starts_with("email,name,status,created_at,city\n"),
            "{csv}"
        );
        assert!(
            csv.contains("bob@example.org,Bob,confirmed,") && csv.contains(",Rome"),
            "{csv}"
        );
        assert_eq!(csv.lines().count(), 5, "{csv}");

        // A batch to the list, each email personal, with the list's link.
        template(s, &t, "issue", json!({"variants": {"en": {"subject": "Issue {{ number }}",
            "html": "<p>Hello {{ subscriber.name or 'reader' }}{% if subscriber.data.city is defined and subscriber.data.city %} in {{ subscriber.data.city }}{% endif %}</p>"}}})).await;
        let (status, body) = send_batch(s, &t, json!({"template": "issue"})).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNPROCESSABLE_ENTITY, "missing_variable"),
            "checked up front: {body}"
        );
        let (status, batch) =
            send_batch(s, &t, json!({"template": "issue", "data": {"number": 1}})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{batch}");
        let id = batch["id"].as_str().expect("batch id").to_owned();
        let done = batch_done(s, &t, &id).await;
        assert_eq!(
            (
                done["total"].as_i64(),
                done["queued"].as_i64(),
                done["skipped"].as_i64()
            ),
            (Some(4), Some(4), Some(0)),
            "{done}"
        );
        let got = accepted(&smtp, 5).await;
        let bob = got
            .iter()
            .find(|e| e.rcpt_to == ["bob@example.org"])
            .expect("bob's issue");
        assert!(
            bob.html().is_some_and(|h| h.contains("Hello Bob in Rome")),
            "{:?}",
            bob.html()
        );

        // Bob leaves through his link; the next issue skips him.
        let (status, _) = post_url(s, &unsubscribe_url(bob), "List-Unsubscribe=One-Click").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(subscribers(s, &t, "?status=unsubscribed").await.len(), 1);
        let (_, batch) =
            send_batch(s, &t, json!({"template": "issue", "data": {"number": 2}})).await;
        let done = batch_done(s, &t, batch["id"].as_str().expect("id")).await;
        assert_eq!(done["queued"], 3, "{done}");
        accepted(&smtp, 8).await;
        assert!(
            !smtp.accepted()[5..]
                .iter()
                .any(|e| e.rcpt_to == ["bob@example.org"])
        );
        // Re-importing does not resubscribe him.
        let (status, body) = import(s, &t, "email\nbob@example.org\n").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["kept_unsubscribed"], 1, "{body}");

        // Cy unsubscribes from everything through a one-off email's link
        // (not the list's): still confirmed on the list, yet the next
        // issue skips him (the chunk reads its suppressions ahead).
        let (status, body) = s
            .post(
                &m(&t, "/send"),
                Some(&t.api_key),
                json!({"recipient": "cy@example.org", "channels": ["email"],
                       "template": "issue", "key": "one-off",
                       "data": {"number": 0, "subscriber": {"name": "Cy", "data": {}}}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let got = accepted(&smtp, 9).await;
        let one_off = got
            .iter()
            .rev()
            .find(|e| e.rcpt_to == ["cy@example.org"])
            .expect("cy's one-off");
        let (status, _) =
            post_url(s, &unsubscribe_url(one_off), "List-Unsubscribe=One-Click").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(subscribers(s, &t, "?status=confirmed").await.len(), 3);
        let (_, batch) =
            send_batch(s, &t, json!({"template": "issue", "data": {"number": 3}})).await;
        let done = batch_done(s, &t, batch["id"].as_str().expect("id")).await;
        assert_eq!(
            (done["queued"].as_i64(), done["skipped"].as_i64()),
            (Some(2), Some(1)),
            "{done}"
        );
    }
);

both_engines_with!(
    a_batch_of_many_chunks_runs_in_two_lanes_and_sends_each_subscriber_once,
    fast,
    async |s: &Server| {
        let smtp = FakeSmtp::start().await;
        let t = tenant(s, "lanes", &smtp).await;
        // Chunks of 4: 30 subscribers are many chunks in each lane.
        let (status, body) = s
            .put(
                "/v1/tenants/lanes/plugins/messaging",
                Some(&t.admin_token),
                json!({"enabled": true, "settings": {
                    "public_url": format!("{}/t/lanes/p/messaging", s.base),
                    "batch_chunk": 4}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, list) = s
            .post(
                &m(&t, "/lists"),
                Some(&t.api_key),
                json!({"id": "news", "name": "News", "double_opt_in": false}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{list}");
        let mut csv = String::from("email,name\n");
        for i in 0..30 {
            csv.push_str(&format!("reader{i}@example.org,Reader {i}\n"));
        }
        let (status, body) = import(s, &t, csv).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        template(
            s,
            &t,
            "issue",
            json!({"variants": {"en": {"subject": "Issue {{ number }}",
                "html": "<p>Hello {{ subscriber.name }}</p>"}}}),
        )
        .await;
        let (status, batch) =
            send_batch(s, &t, json!({"template": "issue", "data": {"number": 1}})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{batch}");
        assert_eq!(
            (batch["total"].as_i64(), batch["lanes"].as_u64()),
            (Some(30), Some(2)),
            "{batch}"
        );
        let id = batch["id"].as_str().expect("batch id").to_owned();
        let done = batch_done(s, &t, &id).await;
        // The counts are every lane's: each lane has some of the 30 (their
        // ids are digests, so both halves of the id space have some).
        assert_eq!(
            (
                done["queued"].as_i64(),
                done["skipped"].as_i64(),
                done["failed"].as_i64()
            ),
            (Some(30), Some(0), Some(0)),
            "{done}"
        );
        assert!(
            done["lane_done"] == true && done["chunk"].as_u64() > Some(1),
            "{done}"
        );
        let got = accepted(&smtp, 30).await;
        let mut to: Vec<String> = got.iter().flat_map(|e| e.rcpt_to.clone()).collect();
        to.sort();
        to.dedup();
        assert_eq!(to.len(), 30, "each subscriber once: {to:?}");
        // The list of batches answers the same sums.
        let (_, all) = s.get(&m(&t, "/batches"), Some(&t.api_key)).await;
        assert_eq!(all["batches"][0]["queued"], 30, "{all}");
        // Nothing more arrives: each message went once.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(smtp.accepted().len(), 30);
    }
);
