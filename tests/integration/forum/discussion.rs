//! Permissions, tenant isolation, and a discussion from first post to recovery.

use super::*;

both_engines!(permissions_and_tenant_isolation, async |s: &Server| {
    let a = forum_tenant(s, "forum-a").await;
    let b = forum_tenant(s, "forum-b").await;
    let admin = Some(a.admin_token.as_str());
    assert_eq!(
        category(
            s,
            &a,
            json!({"name": "General", "read": "public", "post": "users"})
        )
        .await,
        "general"
    );
    category(
        s,
        &a,
        json!({"name": "Members", "read": "users", "post": "users", "position": 1}),
    )
    .await;
    category(s, &a, json!({"id": "staff", "name": "Staff", "read": "moderators", "post": "moderators", "position": 2})).await;
    let ann = s.user(&a, "Ann").await;
    let bob = s.user(&a, "Bob").await;
    let carl = s.user(&a, "Carl").await;

    // Who sees which categories.
    let (_, anon) = s.get(&f(&a, "/categories"), None).await;
    assert_eq!(ids(&anon, "categories", "id"), ["general"]);
    let (_, users) = s.get(&f(&a, "/categories"), Some(&ann.token)).await;
    assert_eq!(ids(&users, "categories", "id"), ["general", "members"]);
    let (_, all) = s.get(&f(&a, "/categories"), admin).await;
    assert_eq!(
        ids(&all, "categories", "id"),
        ["general", "members", "staff"]
    );
    let (status, _) = s.get(&f(&a, "/categories/staff"), Some(&ann.token)).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a category one may not read does not exist for them"
    );
    // Only admins make categories.
    let (status, body) = s
        .post(
            &f(&a, "/categories"),
            Some(&ann.token),
            json!({"name": "Mine"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    let public = topic(
        s,
        &a,
        &ann.token,
        "general",
        "Welcome to the forum",
        "Hello everyone",
    )
    .await;
    let members = topic(
        s,
        &a,
        &ann.token,
        "members",
        "Members only chat",
        "the secret handshake",
    )
    .await;
    let (status, body) = s
        .post(
            &f(&a, "/topics"),
            Some(&ann.token),
            json!({"category": "staff", "title": "Sneaky", "body": "hi"}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_input"),
        "{body}"
    );

    // Anonymous readers see the public topic only.
    let (status, _) = s.get(&f(&a, &format!("/topics/{public}")), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s.get(&f(&a, &format!("/topics/{members}")), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = s.get(&f(&a, "/topics"), None).await;
    assert_eq!(ids(&list, "topics", "id"), [public.as_str()]);
    search_finds(
        s,
        &a,
        Some(&ann.token),
        "q=handshake",
        &[&format!("{members}.000001")],
    )
    .await;
    search_finds(s, &a, None, "q=handshake", &[]).await;

    // Tenant B's credentials do not reach tenant A's forum, and B's forum
    // (and its search) holds nothing of A's.
    for token in [&b.admin_token, &b.api_key] {
        let (status, _) = s
            .get(&f(&a, &format!("/topics/{public}")), Some(token))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let (status, body) = s.get(&f(&b, "/topics"), Some(&b.admin_token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["topics"], json!([]));
    let (status, _) = s
        .get(&f(&b, &format!("/topics/{public}")), Some(&b.admin_token))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        search(s, &b, Some(&b.admin_token), "q=handshake").await["total"],
        0
    );
    assert_eq!(
        search(s, &b, Some(&b.admin_token), "q=welcome").await["total"],
        0
    );

    // A non-moderator cannot moderate.
    for (path, body) in [
        (format!("/topics/{public}/lock"), json!({})),
        (format!("/moderation/posts/{public}.000001/hide"), json!({})),
        (
            "/moderation/bans".to_owned(),
            json!({"user_id": carl.id, "reason": "because"}),
        ),
    ] {
        let (status, out) = s.post(&f(&a, &path), Some(&ann.token), body).await;
        assert_eq!(
            (status, code(&out)),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{path}: {out}"
        );
    }
    let (status, _) = s.get(&f(&a, "/moderation/queue"), Some(&ann.token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = s
        .put(
            &f(&a, &format!("/moderators/{}", ann.id)),
            Some(&bob.token),
            json!({}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "only admins appoint moderators"
    );

    // An appointed moderator can; a locked topic takes replies from moderators only.
    let (status, body) = s
        .put(
            &f(&a, &format!("/moderators/{}", bob.id)),
            admin,
            json!({"name": "Bob"}),
        )
        .await;
    assert_eq!(
        (status, body["moderator"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{body}"
    );
    let (status, body) = s
        .post(
            &f(&a, &format!("/topics/{public}/lock")),
            Some(&bob.token),
            json!({}),
        )
        .await;
    assert_eq!(
        (status, body["locked"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{body}"
    );
    let (status, body) = reply(s, &a, &ann.token, &public, json!({"body": "let me in"})).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "topic_locked"),
        "{body}"
    );
    let (status, body) = reply(
        s,
        &a,
        &bob.token,
        &public,
        json!({"body": "moderators may"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, staff) = s.get(&f(&a, "/categories"), Some(&bob.token)).await;
    assert_eq!(
        ids(&staff, "categories", "id").len(),
        3,
        "moderators read staff categories"
    );
    topic(s, &a, &bob.token, "staff", "Staff room", "for moderators").await;

    // A banned member reads but cannot write, until the ban is lifted.
    let (status, body) = s
        .post(
            &f(&a, "/moderation/bans"),
            Some(&bob.token),
            json!({"user_id": carl.id, "reason": "spam", "name": "Carl"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let writes = [
        (
            f(&a, "/topics"),
            json!({"category": "general", "title": "I am back", "body": "hi"}),
        ),
        (
            f(&a, &format!("/topics/{members}/posts")),
            json!({"body": "hi"}),
        ),
        (
            f(&a, &format!("/posts/{members}.000001/flags")),
            json!({"reason": "spam"}),
        ),
    ];
    for (path, body) in &writes {
        let (status, out) = s.post(path, Some(&carl.token), body.clone()).await;
        assert_eq!(
            (status, code(&out)),
            (StatusCode::FORBIDDEN, "banned"),
            "{path}: {out}"
        );
    }
    let (status, _) = s
        .get(&f(&a, &format!("/topics/{members}")), Some(&carl.token))
        .await;
    assert_eq!(status, StatusCode::OK, "banned members still read");
    let (_, bans) = s.get(&f(&a, "/moderation/bans"), Some(&bob.token)).await;
    assert_eq!(ids(&bans, "bans", "user_id"), [carl.id.as_str()]);
    let (status, _) = s
        .delete(
            &f(&a, &format!("/moderation/bans/{}", carl.id)),
            Some(&bob.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = s
        .post(&writes[0].0, Some(&carl.token), writes[0].1.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
});

// Ann's topic and Bob's replies: quotes, reactions, revisions, unread
// marks, pagination, pinning, soft deletion and recovery, trust levels.
both_engines!(
    a_discussion_from_first_post_to_recovery,
    async |s: &Server| {
        let t = forum_tenant(s, "talk").await;
        let admin = Some(t.admin_token.as_str());
        category(s, &t, json!({"name": "General"})).await;
        let ann = s.user(&t, "Ann").await;
        let bob = s.user(&t, "Bob").await;
        let first = topic(
            s,
            &t,
            &ann.token,
            "general",
            "Writing plugins",
            "How do I *write* a plugin?",
        )
        .await;
        let op = format!("{first}.000001");

        // Trust level 0 cannot post links; quoting checks its source.
        let (status, body) = reply(
            s,
            &t,
            &bob.token,
            &first,
            json!({"body": "see [the docs](https://example.com)"}),
        )
        .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNPROCESSABLE_ENTITY, "trust_level_too_low"),
            "{body}"
        );
        for (bad, field) in [
            (
                json!({"body": "x", "reply_to": 1, "quote": "not in the post"}),
                "quote",
            ),
            (json!({"body": "x", "quote": "write"}), "quote"),
            (json!({"body": "x", "reply_to": 9}), "reply_to"),
        ] {
            let (status, body) = reply(s, &t, &bob.token, &first, bad).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with(field),
                "{body}"
            );
        }
        let (status, quoted) = reply(
            s,
            &t,
            &bob.token,
            &first,
            json!({"body": "Start from the template.", "reply_to": 1, "quote": "write"}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{quoted}");
        assert_eq!(
            (quoted["number"].as_u64(), quoted["reply_to"].as_u64()),
            (Some(2), Some(1))
        );
        let html = quoted["html"].as_str().unwrap_or("");
        assert!(
            html.starts_with("<blockquote") && html.contains("write") && html.contains("template"),
            "{html}"
        );
        // Markdown is rendered and sanitized.
        let (_, xss) = reply(
            s,
            &t,
            &ann.token,
            &first,
            json!({"body": "**bold** <script>alert(1)</script><b onmouseover=alert(1)>hi</b>"}),
        )
        .await;
        let html = xss["html"].as_str().unwrap_or("");
        assert!(
            html.contains("<strong>bold</strong>")
                && !html.contains("<script")
                && !html.contains("onmouseover"),
            "{xss}"
        );

        // One reaction per member and post; not on one's own post.
        let reaction = f(&t, &format!("/posts/{op}/reaction"));
        let (_, body) = s
            .put(&reaction, Some(&bob.token), json!({"reaction": "heart"}))
            .await;
        assert_eq!(
            (body["reactions"].clone(), body["my_reaction"].clone()),
            (json!({"heart": 1}), json!("heart")),
            "{body}"
        );
        let (_, body) = s
            .put(&reaction, Some(&bob.token), json!({"reaction": "like"}))
            .await;
        assert_eq!(
            body["reactions"],
            json!({"like": 1}),
            "the heart became a like: {body}"
        );
        let (status, _) = s
            .put(&reaction, Some(&ann.token), json!({"reaction": "like"}))
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "not on one's own post"
        );
        let (status, _) = s
            .put(&reaction, Some(&bob.token), json!({"reaction": "meh"}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let (status, body) = s.delete(&reaction, Some(&bob.token)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.get("my_reaction").is_none(), "{body}");

        // Edits keep revisions; only the author or a moderator edits.
        let (status, body) = s
            .patch(
                &f(&t, &format!("/posts/{op}")),
                Some(&ann.token),
                json!({"body": "How do I write a Weft plugin?", "reason": "clarity"}),
            )
            .await;
        assert_eq!(
            (status, body["revision"].as_u64()),
            (StatusCode::OK, Some(2)),
            "{body}"
        );
        let (status, _) = s
            .patch(
                &f(&t, &format!("/posts/{op}")),
                Some(&bob.token),
                json!({"body": "mine now"}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (_, revisions) = s.get(&f(&t, &format!("/posts/{op}/revisions")), None).await;
        let raws: Vec<&str> = revisions["revisions"]
            .as_array()
            .expect("revisions")
            .iter()
            .map(|r| r["raw"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(
            raws,
            [
                "How do I *write* a plugin?",
                "How do I write a Weft plugin?"
            ]
        );
        assert_eq!(revisions["revisions"][1]["reason"], "clarity");

        // Unread: Bob has read up to his own post (2); Ann's reply (3) is new to him.
        let (_, unread) = s.get(&f(&t, "/unread"), Some(&bob.token)).await;
        let entry = &unread["topics"][0];
        assert_eq!(
            (entry["id"].as_str(), entry["unread"].as_u64()),
            (Some(first.as_str()), Some(1)),
            "{unread}"
        );
        let (_, page) = s
            .get(
                &f(&t, &format!("/topics/{first}?limit=2")),
                Some(&bob.token),
            )
            .await;
        assert_eq!(page["posts"].as_array().map(Vec::len), Some(2));
        let cursor = page["next_cursor"].as_str().expect("more posts").to_owned();
        let (_, rest) = s
            .get(
                &f(&t, &format!("/topics/{first}?limit=2&cursor={cursor}")),
                Some(&bob.token),
            )
            .await;
        assert_eq!(rest["posts"][0]["number"], 3);
        assert!(rest["next_cursor"].is_null(), "{rest}");
        assert_eq!(
            rest["topic"]["unread"], 0,
            "reading the last page marks the topic read"
        );
        let (_, unread) = s.get(&f(&t, "/unread"), Some(&bob.token)).await;
        assert_eq!(unread["topics"], json!([]), "{unread}");
        // Marking back makes posts unread again.
        let (_, mark) = s
            .post(
                &f(&t, &format!("/topics/{first}/read")),
                Some(&bob.token),
                json!({"post_number": 1}),
            )
            .await;
        assert_eq!(mark["unread"], 2, "{mark}");

        // Topic lists page with cursors, latest activity first, pinned on top.
        let mut made = vec![first.clone()];
        for n in 0..4 {
            made.push(
                topic(
                    s,
                    &t,
                    &ann.token,
                    "general",
                    &format!("Topic number {n}"),
                    "text",
                )
                .await,
            );
        }
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/topics?limit=2&cursor={c}"),
                None => "/topics?limit=2".to_owned(),
            };
            let (status, page) = s.get(&f(&t, &path), None).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            seen.extend(ids(&page, "topics", "id"));
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        let mut latest_first = made.clone();
        latest_first.reverse();
        assert_eq!(seen, latest_first, "every topic once, latest first");
        let (status, _) = s
            .post(&f(&t, &format!("/topics/{first}/pin")), admin, json!({}))
            .await;
        assert_eq!(status, StatusCode::OK);
        let (_, list) = s.get(&f(&t, "/topics?limit=1"), None).await;
        assert_eq!(ids(&list, "topics", "id"), [first.as_str()], "pinned first");
        let (status, body) = s.get(&f(&t, "/topics?cursor=garbage"), None).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "invalid_cursor"),
            "{body}"
        );

        // Soft deletion blanks a post for everyone but moderators; recovery undoes it.
        let second = format!("{first}.000002");
        let (status, body) = s
            .delete(&f(&t, &format!("/posts/{second}")), Some(&bob.token))
            .await;
        assert_eq!(
            (status, body["deleted"].as_bool()),
            (StatusCode::OK, Some(true)),
            "{body}"
        );
        let (_, anon) = s.get(&f(&t, &format!("/posts/{second}")), None).await;
        assert_eq!(
            (anon["raw"].as_str(), anon["deleted"].as_bool()),
            (Some(""), Some(true)),
            "{anon}"
        );
        let (_, topic_now) = s.get(&f(&t, &format!("/topics/{first}")), None).await;
        assert_eq!(topic_now["topic"]["reply_count"], 1, "{topic_now}");
        let (status, _) = s
            .post(
                &f(&t, &format!("/posts/{second}/recover")),
                Some(&bob.token),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "only moderators recover");
        let (status, body) = s
            .post(
                &f(&t, &format!("/posts/{second}/recover")),
                admin,
                json!({}),
            )
            .await;
        assert_eq!(
            (status, body["raw"].as_str()),
            (StatusCode::OK, Some("Start from the template.")),
            "{body}"
        );
        // Deleting an opening post deletes its topic.
        let last = made.last().expect("topic").clone();
        let (status, _) = s
            .delete(&f(&t, &format!("/posts/{last}.000001")), Some(&ann.token))
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = s.get(&f(&t, &format!("/topics/{last}")), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, body) = s.get(&f(&t, &format!("/topics/{last}")), admin).await;
        assert_eq!(
            (status, body["topic"]["deleted"].as_bool()),
            (StatusCode::OK, Some(true)),
            "{body}"
        );

        // Ann has posted enough for trust level 1 and may now link.
        let (_, me) = s.get(&f(&t, "/me"), Some(&ann.token)).await;
        assert!(me["trust_level"].as_u64() >= Some(1), "{me}");
        let (status, body) = reply(
            s,
            &t,
            &ann.token,
            &first,
            json!({"body": "see [the docs](https://example.com)"}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert!(
            body["html"]
                .as_str()
                .unwrap_or("")
                .contains("rel=\"nofollow ugc"),
            "{body}"
        );
    }
);
