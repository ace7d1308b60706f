//! Flags and moderation, with their events reaching a subscriber once;
//! search: ranked, highlighted, scoped and rebuildable.

use super::*;

fn forum_events(c: &mut Config) {
    c.events.retry_base_ms = 50;
    c.events.max_retry_delay_ms = 200;
    c.events.poll_ms = 50;
}

both_engines_with!(
    flags_hide_posts_and_events_reach_a_subscriber_once,
    forum_events,
    async |s: &Server| {
        s.install_test_plugin("subscriber").await;
        let t = forum_tenant(s, "flags").await;
        s.enable(&t, "subscriber").await;
        let admin = Some(t.admin_token.as_str());
        category(s, &t, json!({"name": "General"})).await;
        let ann = s.user(&t, "Ann").await;
        let flaggers: Vec<TestUser> =
            futures::future::join_all(["Xia", "Yann", "Zoe"].map(|n| s.user(&t, n))).await;
        let topic_id = topic(
            s,
            &t,
            &ann.token,
            "general",
            "Cheap watches",
            "Buy marmalade watches here",
        )
        .await;
        let post = format!("{topic_id}.000001");
        search_finds(s, &t, None, "q=marmalade", &[&post]).await;

        let flag = f(&t, &format!("/posts/{post}/flags"));
        let (status, body) = s
            .post(&flag, Some(&flaggers[0].token), json!({"reason": "rude"}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let (status, body) = s
            .post(
                &flag,
                Some(&flaggers[0].token),
                json!({"reason": "spam", "note": "ads"}),
            )
            .await;
        assert_eq!(
            (status, body["post_hidden"].as_bool()),
            (StatusCode::CREATED, Some(false)),
            "{body}"
        );
        let (status, body) = s
            .post(&flag, Some(&flaggers[0].token), json!({"reason": "spam"}))
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::CONFLICT, "already_flagged")
        );
        s.post(&flag, Some(&flaggers[1].token), json!({"reason": "spam"}))
            .await;
        let (_, body) = s
            .post(
                &flag,
                Some(&flaggers[2].token),
                json!({"reason": "off_topic"}),
            )
            .await;
        assert_eq!(body["post_hidden"], true, "the third flag hides it: {body}");

        // Hidden: gone for others and from search, shown to its author and moderators.
        let (status, _) = s.get(&f(&t, &format!("/posts/{post}")), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, body) = s
            .get(&f(&t, &format!("/posts/{post}")), Some(&ann.token))
            .await;
        assert_eq!(
            (status, body["hidden"].as_bool()),
            (StatusCode::OK, Some(true))
        );
        search_finds(s, &t, admin, "q=marmalade", &[]).await;
        let (_, queue) = s.get(&f(&t, "/moderation/queue"), admin).await;
        assert_eq!(queue["items"].as_array().map(Vec::len), Some(1), "{queue}");
        assert_eq!(queue["items"][0]["pending"], 3);
        assert_eq!(queue["items"][0]["post"]["id"], post.as_str());

        // A moderator approves: shown again, back in search, the queue empty.
        let (status, body) = s
            .post(
                &f(&t, &format!("/moderation/posts/{post}/approve")),
                admin,
                json!({}),
            )
            .await;
        assert_eq!(
            (status, body["hidden"].as_bool()),
            (StatusCode::OK, Some(false)),
            "{body}"
        );
        let (_, queue) = s.get(&f(&t, "/moderation/queue"), admin).await;
        assert_eq!(queue["items"], json!([]));
        search_finds(s, &t, None, "q=marmalade", &[&post]).await;
        let (status, _) = s.get(&f(&t, &format!("/posts/{post}")), None).await;
        assert_eq!(status, StatusCode::OK);
        // And hides it for good.
        let (_, body) = s
            .post(
                &f(&t, &format!("/moderation/posts/{post}/hide")),
                admin,
                json!({}),
            )
            .await;
        assert_eq!(body["hidden"], true);

        // The subscriber got every forum event exactly once, though it fails
        // each forum.post_created on its first attempt.
        reply(s, &t, &ann.token, &topic_id, json!({"body": "a reply"})).await;
        let expected =
            json!({"forum.topic_created": 1, "forum.post_created": 2, "forum.post_flagged": 3});
        let topics = eventually(30, "the forum's events delivered", || async {
            let (_, body) = s
                .get(
                    &format!("/t/{}/p/subscriber/topics", t.slug),
                    Some(&t.api_key),
                )
                .await;
            (body["entries"] == expected).then_some(body)
        })
        .await;
        let (_, applied) = s
            .get(
                &format!("/t/{}/p/subscriber/applied", t.slug),
                Some(&t.api_key),
            )
            .await;
        let counts = applied["entries"].as_object().expect("entries");
        assert_eq!(counts.len(), 6, "{applied} {topics}");
        assert!(
            counts.values().all(|n| n == 1),
            "each event applied once: {applied}"
        );
        let (_, done) = s
            .get(
                &format!("/v1/tenants/{}/deliveries?state=done", t.slug),
                admin,
            )
            .await;
        let retried: Vec<&Value> = done["deliveries"]
            .as_array()
            .expect("deliveries")
            .iter()
            .filter(|d| d["topic"] == "forum.post_created")
            .collect();
        assert_eq!(retried.len(), 2);
        assert!(retried.iter().all(|d| d["attempts"] == 2), "{retried:?}");
        let payload = &retried[0]["payload"];
        assert_eq!(
            (payload["topic_id"].as_str(), payload["read"].as_str()),
            (Some(topic_id.as_str()), Some("public")),
            "{payload}"
        );
    }
);

both_engines!(
    search_is_ranked_highlighted_scoped_and_rebuildable,
    async |s: &Server| {
        let t = forum_tenant(s, "find").await;
        let admin = Some(t.admin_token.as_str());
        category(s, &t, json!({"name": "General"})).await;
        category(s, &t, json!({"name": "Members", "read": "users"})).await;
        category(
            s,
            &t,
            json!({"id": "staff", "name": "Staff", "read": "moderators", "post": "moderators"}),
        )
        .await;
        let ann = s.user(&t, "Ann").await;
        let wasm = topic(
            s,
            &t,
            &ann.token,
            "general",
            "Compiling WebAssembly components",
            "The wasm32-wasip2 target builds a WebAssembly component.",
        )
        .await;
        let garden = topic(
            s,
            &t,
            &ann.token,
            "general",
            "Gardening tips",
            "Tomatoes like sun. WebAssembly is not a plant.",
        )
        .await;
        let (_, r) = reply(
            s,
            &t,
            &t.admin_token,
            &wasm,
            json!({"body": "WebAssembly <script>alert(1)</script> is great: 1 < 2"}),
        )
        .await;
        let wasm_reply = r["id"].as_str().expect("id").to_owned();
        let members = topic(
            s,
            &t,
            &ann.token,
            "members",
            "Members talk about WebAssembly",
            "members only",
        )
        .await;
        let staff = topic(
            s,
            &t,
            &t.admin_token,
            "staff",
            "Staff WebAssembly plans",
            "moderators only",
        )
        .await;
        let op = |id: &str| format!("{id}.000001");

        // Each caller finds what they may read.
        let body = search_finds(
            s,
            &t,
            None,
            "q=webassembly",
            &[&op(&wasm), &op(&garden), &wasm_reply],
        )
        .await;
        search_finds(
            s,
            &t,
            Some(&ann.token),
            "q=webassembly",
            &[&op(&wasm), &op(&garden), &wasm_reply, &op(&members)],
        )
        .await;
        search_finds(
            s,
            &t,
            admin,
            "q=webassembly",
            &[
                &op(&wasm),
                &op(&garden),
                &wasm_reply,
                &op(&members),
                &op(&staff),
            ],
        )
        .await;
        assert_eq!(body["total"], 3);
        let hit = |body: &Value, id: &str| {
            body["results"]
                .as_array()
                .expect("results")
                .iter()
                .find(|h| h["post_id"] == id)
                .cloned()
                .unwrap_or_else(|| panic!("{id} in {body}"))
        };
        // Highlighted, in the title and the text.
        let first = &hit(&body, &op(&wasm));
        assert!(
            first["title_html"]
                .as_str()
                .unwrap_or("")
                .contains("<b>WebAssembly</b>"),
            "{first}"
        );
        assert!(
            first["excerpt_html"]
                .as_str()
                .unwrap_or("")
                .contains("<b>WebAssembly</b>"),
            "{first}"
        );
        assert_eq!(first["topic_title"], "Compiling WebAssembly components");
        let scores: Vec<f64> = body["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|h| h["score"].as_f64().unwrap_or(0.0))
            .collect();
        assert!(
            scores.windows(2).all(|w| w[0] >= w[1]),
            "best first: {scores:?}"
        );
        // Snippets escape the text around the matches.
        let reply_hit = hit(&body, &wasm_reply);
        let excerpt = reply_hit["excerpt_html"].as_str().unwrap_or("");
        assert!(
            excerpt.contains("1 &lt; 2") && !excerpt.contains("<script"),
            "{reply_hit}"
        );
        // Ranked: a post with both terms above those with one.
        let either = search_finds(
            s,
            &t,
            None,
            "q=webassembly%20OR%20component",
            &[&op(&wasm), &op(&garden), &wasm_reply],
        )
        .await;
        assert_eq!(
            either["results"][0]["post_id"],
            op(&wasm).as_str(),
            "{either}"
        );
        // Query language, filters, paging.
        search_finds(s, &t, None, "q=title:gardening", &[&op(&garden)]).await;
        search_finds(
            s,
            &t,
            None,
            "q=webassembly%20-tomatoes",
            &[&op(&wasm), &wasm_reply],
        )
        .await;
        search_finds(
            s,
            &t,
            Some(&ann.token),
            "q=webassembly&category=members",
            &[&op(&members)],
        )
        .await;
        let page = search(s, &t, None, "q=webassembly&limit=2").await;
        assert_eq!(page["results"].as_array().map(Vec::len), Some(2));
        let next = page["next_cursor"]
            .as_str()
            .expect("a second page")
            .to_owned();
        let rest = search(s, &t, None, &format!("q=webassembly&limit=2&cursor={next}")).await;
        assert_eq!(rest["results"].as_array().map(Vec::len), Some(1));
        assert!(rest["next_cursor"].is_null());
        // Bad searches are the caller's to fix.
        for (query, status, expected) in [
            ("q=", StatusCode::UNPROCESSABLE_ENTITY, "invalid_input"),
            (
                "q=nosuchfield:x",
                StatusCode::BAD_REQUEST,
                "invalid_search_query",
            ),
            (
                "q=x&category=staff",
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
            ),
            (
                "q=x&limit=0",
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
            ),
        ] {
            let (got, body) = s.get(&f(&t, &format!("/search?{query}")), None).await;
            assert_eq!((got, code(&body)), (status, expected), "{query}: {body}");
        }

        // Deleted posts leave the index; edited ones are found by their new text.
        s.delete(&f(&t, &format!("/posts/{wasm_reply}")), admin)
            .await;
        search_finds(s, &t, None, "q=webassembly", &[&op(&wasm), &op(&garden)]).await;
        s.patch(
            &f(&t, &format!("/posts/{}", op(&garden))),
            Some(&ann.token),
            json!({"body": "Tomatoes like sun and rhubarb."}),
        )
        .await;
        search_finds(s, &t, None, "q=rhubarb", &[&op(&garden)]).await;
        search_finds(s, &t, None, "q=webassembly", &[&op(&wasm)]).await;
        // A category made stricter drops out of search at once (and is reindexed).
        s.patch(
            &f(&t, "/categories/general"),
            admin,
            json!({"read": "users"}),
        )
        .await;
        search_finds(s, &t, None, "q=webassembly", &[]).await;
        search_finds(
            s,
            &t,
            Some(&ann.token),
            "q=webassembly",
            &[&op(&wasm), &op(&members)],
        )
        .await;

        // The index rebuilds from the posts on demand, in batches (of two
        // here: three calls chained by events), even from nothing.
        let (status, body) = s
            .put(
                &format!("/v1/tenants/{}/plugins/forum", t.slug),
                admin,
                json!({"settings": {"reindex_batch": 2}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let tenant = s.app.tenant_by_slug(&t.slug).await.expect("tenant");
        let owner = weft::storage::Owner {
            tenant: &tenant.id,
            plugin: "forum",
        };
        assert!(
            s.app
                .search
                .drop_index_journaled(owner, "posts")
                .await
                .expect("drop")
        );
        search_finds(s, &t, Some(&ann.token), "q=webassembly", &[]).await;
        let (status, job) = s.post(&f(&t, "/admin/reindex"), admin, json!({})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{job}");
        let generation = job["generation"].as_str().expect("generation").to_owned();
        let done = eventually(30, "the reindex to finish", || async {
            let (_, body) = s.get(&f(&t, "/admin/reindex"), admin).await;
            (body["reindex"]["generation"] == generation.as_str()
                && !body["reindex"]["finished_at"].is_null())
            .then_some(body)
        })
        .await;
        assert_eq!(
            done["reindex"]["processed"], 5,
            "every post looked at: {done}"
        );
        search_finds(
            s,
            &t,
            Some(&ann.token),
            "q=webassembly",
            &[&op(&wasm), &op(&members)],
        )
        .await;
        let (status, _) = s
            .post(&f(&t, "/admin/reindex"), Some(&ann.token), json!({}))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
);
