//! Bad input, and the daily digest under an injected clock.

use super::*;

both_engines!(
    bad_input_is_refused_and_writes_nothing,
    async |s: &Server| {
        let t = forum_tenant(s, "bad").await;
        let admin = Some(t.admin_token.as_str());
        category(s, &t, json!({"name": "General"})).await;
        let ann = s.user(&t, "Ann").await;
        let topics = f(&t, "/topics");
        let cases = [
            (
                json!({"category": "general", "title": "", "body": "x"}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
                "title",
            ),
            (
                json!({"category": "general", "title": "   ", "body": "x"}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
                "title",
            ),
            (
                json!({"category": "general", "title": "ab", "body": "x"}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
                "title",
            ),
            (
                json!({"category": "nope", "title": "A title", "body": "x"}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
                "category",
            ),
            (
                json!({"title": "A title", "body": "x"}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
                "category",
            ),
            (
                json!({"category": "general", "title": "A title", "body": ""}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
                "body",
            ),
            (
                json!({"category": "general", "title": "A title", "body": "x".repeat(40_000)}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
                "body",
            ),
            (
                json!({"category": "general", "title": "A title", "body": "x", "tags": ["a", "b", "c", "d", "e", "f"]}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
                "tags",
            ),
            (
                json!({"category": "general", "title": 7, "body": "x"}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
                "title",
            ),
        ];
        for (body, status, expected, field) in cases {
            let (got, out) = s.post(&topics, Some(&ann.token), body.clone()).await;
            assert_eq!((got, code(&out)), (status, expected), "{body}: {out}");
            assert!(
                out["error"]["message"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with(field),
                "{out}"
            );
        }
        // A 1 MB body: over the host's request limit, refused before the plugin runs.
        let (status, out) = s
            .post(
                &topics,
                Some(&ann.token),
                json!({"category": "general", "title": "Big", "body": "x".repeat(1 << 20)}),
            )
            .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{out}");
        assert!(out["error"]["code"].is_string(), "{out}");
        // Not JSON, not an object.
        for raw in ["{", "[1,2]"] {
            let resp = s
                .client
                .post(format!("{}{topics}", s.base))
                .bearer_auth(&ann.token)
                .header("content-type", "application/json")
                .body(raw)
                .send()
                .await
                .expect("send");
            assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
            let body: Value = resp.json().await.expect("json");
            assert_eq!(code(&body), "invalid_json");
        }
        // Anonymous writes, unknown things, bad paging.
        let (status, _) = s
            .post(
                &topics,
                None,
                json!({"category": "general", "title": "A title", "body": "x"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        for path in [
            "/topics/01jd8x0000000000000000000z",
            "/topics/../../etc",
            "/posts/nope",
            "/categories/nope",
            "/users/nobody",
            "/digests/2026-01-01",
        ] {
            let (status, body) = s.get(&f(&t, path), Some(&ann.token)).await;
            assert_eq!(
                (status, code(&body)),
                (StatusCode::NOT_FOUND, "not_found"),
                "{path}: {body}"
            );
        }
        for path in [
            "/topics?limit=0",
            "/topics?limit=101",
            "/topics?limit=x",
            "/digests/yesterday",
        ] {
            let (status, body) = s.get(&f(&t, path), None).await;
            assert_eq!(
                (status, code(&body)),
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid_input"),
                "{path}: {body}"
            );
        }
        // Categories: checked fields, no duplicates.
        for (body, status) in [
            (json!({"name": ""}), StatusCode::UNPROCESSABLE_ENTITY),
            (
                json!({"name": "Ok", "read": "everyone"}),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                json!({"name": "Ok", "id": "Not A Slug"}),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (json!({"name": "General"}), StatusCode::CONFLICT),
        ] {
            let (got, out) = s.post(&f(&t, "/categories"), admin, body.clone()).await;
            assert_eq!(got, status, "{body}: {out}");
        }
        // Nothing was half-written by any refusal.
        let (_, list) = s.get(&topics, None).await;
        assert_eq!(list["topics"], json!([]), "{list}");
        let (_, me) = s.get(&f(&t, "/me"), Some(&ann.token)).await;
        assert_eq!(
            (me["posts"].as_i64(), me["topics"].as_i64()),
            (Some(0), Some(0)),
            "{me}"
        );
        let (_, categories) = s.get(&f(&t, "/categories"), None).await;
        assert_eq!(categories["categories"][0]["topic_count"], 0);
        assert_eq!(categories["categories"].as_array().map(Vec::len), Some(1));
    }
);

both_engines_with!(
    the_daily_digest_ranks_yesterdays_topics,
    manual_scheduler,
    async |s: &Server| {
        let t = forum_tenant(s, "digest").await;
        let admin = Some(t.admin_token.as_str());
        category(s, &t, json!({"name": "General"})).await;
        category(s, &t, json!({"name": "Members", "read": "users"})).await;
        let ann = s.user(&t, "Ann").await;
        let bob = s.user(&t, "Bob").await;
        let busy = topic(s, &t, &ann.token, "general", "Busy topic", "one").await;
        for n in 0..3 {
            reply(
                s,
                &t,
                &bob.token,
                &busy,
                json!({"body": format!("reply {n}")}),
            )
            .await;
        }
        let liked = topic(s, &t, &ann.token, "general", "Liked topic", "two").await;
        reply(s, &t, &bob.token, &liked, json!({"body": "nice"})).await;
        s.put(
            &f(&t, &format!("/posts/{liked}.000001/reaction")),
            Some(&bob.token),
            json!({"reaction": "heart"}),
        )
        .await;
        s.put(
            &f(&t, &format!("/posts/{liked}.000002/reaction")),
            Some(&ann.token),
            json!({"reaction": "thanks"}),
        )
        .await;
        let quiet = topic(s, &t, &ann.token, "members", "Quiet members topic", "three").await;

        // The run due just after the next UTC midnight digests today.
        let day = 86_400_000;
        let now = weft::ids::now_ms();
        let today = now / day;
        let due = (today + 1) * day + 5 * 60_000;
        let clock = Arc::new(ManualClock::new(due + 30_000));
        s.app.scheduler.set_clock(clock.clone());
        assert_eq!(s.app.scheduler.tick(&s.app).await.expect("tick"), 1);
        assert_eq!(
            s.app.scheduler.tick(&s.app).await.expect("tick"),
            0,
            "once per due time"
        );
        let date = {
            let secs = today * 86_400;
            let d = time::OffsetDateTime::from_unix_timestamp(secs).expect("date");
            format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
        };
        let digest = eventually(30, "the digest", || async {
            let (status, body) = s
                .get(&f(&t, &format!("/digests/{date}")), Some(&ann.token))
                .await;
            (status == StatusCode::OK).then_some(body)
        })
        .await;
        let ranked: Vec<(String, i64, i64, i64)> = digest["topics"]
            .as_array()
            .expect("topics")
            .iter()
            .map(|x| {
                (
                    x["topic_id"].as_str().unwrap_or("").to_owned(),
                    x["posts"].as_i64().unwrap_or(-1),
                    x["reactions"].as_i64().unwrap_or(-1),
                    x["score"].as_i64().unwrap_or(-1),
                )
            })
            .collect();
        assert_eq!(
            ranked,
            [
                (busy.clone(), 4, 0, 8),
                (liked.clone(), 2, 2, 6),
                (quiet.clone(), 1, 0, 2)
            ],
            "{digest}"
        );
        // Anonymous readers do not see the members-only topic in it.
        let (_, public) = s.get(&f(&t, &format!("/digests/{date}")), None).await;
        assert_eq!(
            ids(&public, "topics", "topic_id"),
            [busy.clone(), liked.clone()]
        );
        let (_, list) = s.get(&f(&t, "/digests"), None).await;
        assert_eq!(ids(&list, "digests", "date"), [date.as_str()]);

        // Admins see the schedule's last and next run.
        let (_, schedules) = s
            .get(&format!("/v1/tenants/{}/schedules", t.slug), admin)
            .await;
        let daily = schedules["schedules"]
            .as_array()
            .expect("schedules")
            .iter()
            .find(|x| x["plugin"] == "forum")
            .cloned()
            .expect("forum schedule");
        assert_eq!(
            (daily["schedule"].as_str(), daily["cron"].as_str()),
            (Some("daily_digest"), Some("5 0 * * *"))
        );
        assert_eq!(daily["last_run"]["due_at"], due);
        assert_eq!(daily["last_run"]["state"], "done");
        assert_eq!(daily["next_due_at"], due + day);
    }
);
