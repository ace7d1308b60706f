//! The forum plugin through HTTP, as its users meet it: permissions and
//! tenant isolation, a discussion from first post to recovery, flags and
//! moderation (with its events reaching another plugin exactly once),
//! search, bad input, and the daily digest under an injected clock.

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
