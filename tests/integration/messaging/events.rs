//! A forum event becomes a templated email to the topic's watchers, end
//! to end through HTTP: the admin's rules, the forum's own routes, the
//! event delivery, the outbox and SMTP. Nobody is told of their own post.

use super::*;
use crate::both_engines_with;

both_engines_with!(
    a_forum_reply_emails_the_topics_watchers_but_not_its_author,
    fast,
    async |s: &Server| {
        let smtp = FakeSmtp::start().await;
        let t = tenant(s, "club", &smtp).await;
        s.enable(&t, "forum").await;
        let (ann, bob) = (s.user(&t, "Ann").await, s.user(&t, "Bob").await);
        contact(s, &t, &ann, json!({"email": "ann@example.org"})).await;
        contact(s, &t, &bob, json!({"email": "bob@example.org"})).await;
        template(s, &t, "new_reply", json!({"variants": {"en": {
            "subject": "{{ author.name }} replied to {{ topic_title }}",
            "html": "<p>{{ author.name }} wrote:</p><blockquote>{{ excerpt }}</blockquote><p><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></p>",
            "in_app_title": "New reply in {{ topic_title }}"}}})).await;
        // Whoever starts a topic watches it; every later post tells the
        // watchers, and its author starts watching.
        let key = "forum.topic:{{ topic_id }}";
        for (id, rule) in [
            (
                "watch-own-topics",
                json!({"topic": "forum.topic_created", "watch_key": key, "actor": "author.id", "auto_watch": true}),
            ),
            (
                "reply-emails",
                json!({"topic": "forum.post_created", "watch_key": key, "actor": "author.id", "auto_watch": true,
                                    "template": "new_reply", "channels": ["email"],
                       "when": {"read": ["public", "users"]}}),
            ),
        ] {
            let (status, body) = s
                .put(&m(&t, &format!("/rules/{id}")), Some(&t.admin_token), rule)
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        let (status, body) = s.put(&m(&t, "/rules/bad"), Some(&t.admin_token),
            json!({"topic": "forum.post_created", "watch_key": key, "template": "missing", "channels": ["email"]})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

        let (status, cat) = s
            .post(
                "/t/club/p/forum/categories",
                Some(&t.admin_token),
                json!({"name": "General", "read": "public", "post": "users"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{cat}");
        let (status, topic) = s
            .post("/t/club/p/forum/topics", Some(&ann.token),
                  json!({"category": cat["id"], "title": "Opening hours", "body": "When do you open on Sundays?"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{topic}");
        let topic_id = topic["topic"]["id"].as_str().expect("topic id").to_owned();
        let watch = format!("forum.topic:{topic_id}");
        eventually(20, "Ann to watch her topic", || async {
            let (_, w) = s
                .get(&m(&t, &format!("/watchers/{watch}")), Some(&t.admin_token))
                .await;
            (w["users"] == json!([ann.id])).then_some(())
        })
        .await;
        assert!(
            smtp.accepted().is_empty(),
            "Ann is not told of her own post"
        );

        let (status, reply) = s
            .post(
                &format!("/t/club/p/forum/topics/{topic_id}/posts"),
                Some(&bob.token),
                json!({"body": "From ten to four."}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{reply}");
        let got = accepted(&smtp, 1).await;
        assert_eq!(got[0].rcpt_to, ["ann@example.org"]);
        assert_eq!(
            got[0].subject().as_deref(),
            Some("Bob replied to Opening hours")
        );
        assert!(
            got[0]
                .html()
                .is_some_and(|h| h.contains("From ten to four.")),
            "{:?}",
            got[0].html()
        );

        // Bob watches now; Ann's answer goes to him alone.
        let (status, _) = s
            .post(
                &format!("/t/club/p/forum/topics/{topic_id}/posts"),
                Some(&ann.token),
                json!({"body": "Thanks!"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let got = accepted(&smtp, 2).await;
        assert_eq!(got[1].rcpt_to, ["bob@example.org"]);
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert_eq!(smtp.accepted().len(), 2, "one email per watcher per post");

        // A user's own watches, and unwatching.
        let (_, mine) = s.get(&m(&t, "/watches"), Some(&bob.token)).await;
        assert_eq!(mine["watches"], json!([watch]), "{mine}");
        let (status, _) = s
            .delete(&m(&t, &format!("/watches/{watch}")), Some(&bob.token))
            .await;
        assert_eq!(status, StatusCode::OK);
        let (_, log) = s
            .get(
                &m(&t, "/log?recipient=ann@example.org"),
                Some(&t.admin_token),
            )
            .await;
        assert_eq!(log["entries"][0]["source"], "rule:reply-emails", "{log}");

        // A post in a moderators-only category tells nobody who merely
        // watches its key (the rule's `when`).
        let (status, staff) = s
            .post(
                "/t/club/p/forum/categories",
                Some(&t.admin_token),
                json!({"name": "Staff", "read": "moderators", "post": "moderators"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{staff}");
        let (status, hidden) = s
            .post("/t/club/p/forum/topics", Some(&t.admin_token),
                  json!({"category": staff["id"], "title": "Payroll", "body": "Confidential numbers"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{hidden}");
        let hidden_id = hidden["topic"]["id"].as_str().expect("topic id").to_owned();
        let (status, _) = s
            .put(
                &m(&t, &format!("/watches/forum.topic:{hidden_id}")),
                Some(&ann.token),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = s
            .post(
                &format!("/t/club/p/forum/topics/{hidden_id}/posts"),
                Some(&t.admin_token),
                json!({"body": "More confidential numbers"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        assert_eq!(smtp.accepted().len(), 2, "nothing about the staff topic");
    }
);
