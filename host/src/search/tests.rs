use serde_json::json;

use super::*;
use crate::ids::TenantId;

fn spec() -> IndexSpec {
    IndexSpec {
        fields: vec![
            FieldSpec {
                name: "title".into(),
                kind: FieldKind::Text,
            },
            FieldSpec {
                name: "body".into(),
                kind: FieldKind::Text,
            },
            FieldSpec {
                name: "tags".into(),
                kind: FieldKind::Keyword,
            },
            FieldSpec {
                name: "likes".into(),
                kind: FieldKind::Integer,
            },
        ],
    }
}

fn doc(value: serde_json::Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

fn request(query: &str) -> SearchRequest {
    SearchRequest {
        query: query.into(),
        limit: 10,
        ..SearchRequest::default()
    }
}

fn ids(page: &SearchPage) -> Vec<&str> {
    page.hits.iter().map(|h| h.id.as_str()).collect()
}

struct Fixture {
    _dir: tempfile::TempDir,
    search: Search,
    tenant: TenantId,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let search = Search::new(dir.path().to_path_buf());
    let fx = Fixture {
        search,
        tenant: TenantId::generate(),
        _dir: dir,
    };
    fx.search
        .define(fx.owner(), "posts", &spec())
        .expect("define");
    fx
}

impl Fixture {
    fn owner(&self) -> Owner<'_> {
        Owner {
            tenant: &self.tenant,
            plugin: "forum",
        }
    }

    fn put(&self, id: &str, value: serde_json::Value) {
        self.search
            .upsert(self.owner(), "posts", id, &doc(value))
            .expect("upsert");
    }
}

#[test]
fn finds_ranks_and_highlights_after_commit() {
    let fx = fixture();
    fx.put("1", json!({"title": "Error handling in Rust", "body": "Use Result and the question mark operator.", "tags": ["rust"], "likes": 5}));
    fx.put("2", json!({"title": "Gardening", "body": "Tomatoes need sun. Rust on leaves is a fungus.", "tags": ["garden"], "likes": 1}));
    fx.put("3", json!({"title": "Rust errors", "body": "Errors, errors everywhere: handling them in Rust.", "tags": ["rust", "errors"], "likes": 9}));
    assert_eq!(
        fx.search
            .search(fx.owner(), "posts", &request("rust"))
            .expect("search")
            .total,
        0,
        "invisible before commit"
    );
    fx.search.commit(fx.owner(), "posts").expect("commit");

    let page = fx
        .search
        .search(
            fx.owner(),
            "posts",
            &SearchRequest {
                highlight: vec!["body".into()],
                ..request("rust error handling")
            },
        )
        .expect("search");
    assert_eq!(
        page.total, 2,
        "conjunction by default: the gardening post lacks 'error'"
    );
    assert!(ids(&page).contains(&"1") && ids(&page).contains(&"3"));
    assert!(page.hits[0].score >= page.hits[1].score);
    let snippet = page
        .hits
        .iter()
        .find(|h| h.id == "3")
        .and_then(|h| h.snippets.get("body"))
        .expect("snippet");
    assert!(snippet.contains("<b>"), "{snippet}");
    assert_eq!(
        page.hits
            .iter()
            .find(|h| h.id == "1")
            .map(|h| h.fields["likes"].clone()),
        Some(json!(5))
    );
    // Stemming: "errors" finds "error".
    assert_eq!(
        fx.search
            .search(fx.owner(), "posts", &request("title:errors"))
            .expect("search")
            .total,
        2
    );
}

#[test]
fn filters_paging_updates_and_deletes() {
    let fx = fixture();
    for i in 0..25 {
        fx.put(&format!("p{i}"), json!({"title": format!("post number {i}"), "tags": [if i % 2 == 0 { "even" } else { "odd" }], "likes": i}));
    }
    fx.search.commit(fx.owner(), "posts").expect("commit");
    let even = SearchRequest {
        filters: vec![Filter {
            field: "tags".into(),
            op: FilterOp::Eq,
            value: json!("even"),
        }],
        ..request("post")
    };
    assert_eq!(
        fx.search
            .search(fx.owner(), "posts", &even)
            .expect("search")
            .total,
        13
    );
    let popular = SearchRequest {
        filters: vec![Filter {
            field: "likes".into(),
            op: FilterOp::Gte,
            value: json!(20),
        }],
        ..request("")
    };
    assert_eq!(
        fx.search
            .search(fx.owner(), "posts", &popular)
            .expect("search")
            .total,
        5
    );
    let page2 = fx
        .search
        .search(
            fx.owner(),
            "posts",
            &SearchRequest {
                offset: 10,
                ..request("post")
            },
        )
        .expect("search");
    assert_eq!((page2.total, page2.hits.len()), (25, 10));

    fx.put("p0", json!({"title": "renamed entirely"}));
    fx.search.delete(fx.owner(), "posts", "p1").expect("delete");
    fx.search.commit(fx.owner(), "posts").expect("commit");
    assert_eq!(
        fx.search
            .search(fx.owner(), "posts", &request("post"))
            .expect("search")
            .total,
        23,
        "p0 replaced, p1 gone"
    );
    assert_eq!(
        ids(&fx
            .search
            .search(fx.owner(), "posts", &request("renamed"))
            .expect("search")),
        vec!["p0"]
    );
}

#[test]
fn committed_writes_survive_a_restart() {
    let Fixture {
        _dir: dir,
        search,
        tenant,
    } = fixture();
    let owner = Owner {
        tenant: &tenant,
        plugin: "forum",
    };
    search
        .upsert(owner, "posts", "a", &doc(json!({"title": "durable words"})))
        .expect("upsert");
    search.commit(owner, "posts").expect("commit");
    // A second writer on the same index is refused while the first lives
    // (tantivy's lock file): one process owns a tenant's indexes.
    drop(search);
    let reopened = Search::new(dir.path().to_path_buf());
    assert_eq!(
        reopened
            .search(owner, "posts", &request("durable"))
            .expect("search")
            .total,
        1
    );
    reopened
        .define(owner, "posts", &spec())
        .expect("same spec reopens");
}

#[test]
fn tenants_and_plugins_never_share_an_index() {
    let fx = fixture();
    fx.put("a", json!({"title": "tenant secret"}));
    fx.search.commit(fx.owner(), "posts").expect("commit");
    let other = TenantId::generate();
    let other_owner = Owner {
        tenant: &other,
        plugin: "forum",
    };
    assert!(matches!(
        fx.search.search(other_owner, "posts", &request("secret")),
        Err(Error::UnknownIndex)
    ));
    fx.search
        .define(other_owner, "posts", &spec())
        .expect("define");
    assert_eq!(
        fx.search
            .search(other_owner, "posts", &request("secret"))
            .expect("search")
            .total,
        0
    );
    let other_plugin = Owner {
        tenant: &fx.tenant,
        plugin: "shop",
    };
    assert!(matches!(
        fx.search.search(other_plugin, "posts", &request("secret")),
        Err(Error::UnknownIndex)
    ));
}

#[test]
fn bad_input_is_a_clear_error() {
    let fx = fixture();
    let o = fx.owner();
    assert!(matches!(
        fx.search.define(o, "../x", &spec()),
        Err(Error::InvalidName)
    ));
    assert!(matches!(
        fx.search.define(
            o,
            "posts",
            &IndexSpec {
                fields: vec![FieldSpec {
                    name: "title".into(),
                    kind: FieldKind::Text
                }]
            }
        ),
        Err(Error::SpecMismatch)
    ));
    let bad_spec = IndexSpec {
        fields: vec![FieldSpec {
            name: "id".into(),
            kind: FieldKind::Text,
        }],
    };
    assert!(matches!(
        fx.search.define(o, "other", &bad_spec),
        Err(Error::InvalidSpec(_))
    ));
    assert!(matches!(
        fx.search
            .upsert(o, "posts", "x", &doc(json!({"nope": "x"}))),
        Err(Error::InvalidDocument(_))
    ));
    assert!(matches!(
        fx.search
            .upsert(o, "posts", "x", &doc(json!({"likes": "many"}))),
        Err(Error::InvalidDocument(_))
    ));
    assert!(matches!(
        fx.search.search(o, "posts", &request("title:(unclosed")),
        Err(Error::InvalidQuery(_))
    ));
    assert!(matches!(
        fx.search.search(
            o,
            "posts",
            &SearchRequest {
                limit: 0,
                ..request("x")
            }
        ),
        Err(Error::InvalidQuery(_))
    ));
    let on_text = SearchRequest {
        filters: vec![Filter {
            field: "body".into(),
            op: FilterOp::Eq,
            value: json!("x"),
        }],
        ..request("")
    };
    assert!(matches!(
        fx.search.search(o, "posts", &on_text),
        Err(Error::InvalidQuery(_))
    ));
    assert!(fx.search.drop_index(o, "posts").expect("drop"));
    assert!(matches!(
        fx.search.search(o, "posts", &request("x")),
        Err(Error::UnknownIndex)
    ));
}

#[test]
fn the_committer_tick_commits_pending_writes() {
    let fx = fixture();
    fx.put("a", json!({"title": "batched"}));
    fx.search.commit_pending();
    assert_eq!(
        fx.search
            .search(fx.owner(), "posts", &request("batched"))
            .expect("search")
            .total,
        1
    );
}

/// Writes journaled by a committed unit of work but never committed to the
/// index (the process died first) are replayed at the next start; writes of
/// a unit that rolled back never reach the index.
#[tokio::test]
async fn the_journal_replays_committed_writes_after_a_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("w.db").display());
    let db = Db::connect(&url).await.expect("db");
    db.migrate().await.expect("migrate");
    let tenant = crate::tenancy::Tenants::new(db.clone())
        .create("journal", "Journal")
        .await
        .expect("tenant")
        .id;
    let owner = Owner {
        tenant: &tenant,
        plugin: "forum",
    };
    let journaled = |id: &str, values: Option<Map<String, Value>>| Journaled {
        seq: 0,
        index: "posts".into(),
        id: id.into(),
        values,
    };
    {
        let search = Search::new(dir.path().join("search")).with_journal(db.clone());
        search.define(owner, "posts", &spec()).expect("define");
        // Committed: an upsert, and a doc written twice (the last one counts).
        let mut tx = db
            .begin(Scope::Tenant(&tenant), Mode::Write)
            .await
            .expect("tx");
        let mut writes = vec![
            journaled("a", Some(doc(json!({"title": "kept across a crash"})))),
            journaled("b", Some(doc(json!({"title": "first draft"})))),
            journaled("b", Some(doc(json!({"title": "final crash words"})))),
        ];
        Search::journal(&mut tx, owner, &mut writes)
            .await
            .expect("journal");
        assert_eq!(writes.len(), 2, "one entry per document");
        assert!(writes.iter().all(|w| w.seq > 0));
        tx.commit().await.expect("commit");
        // Rolled back: never applied.
        let mut tx = db
            .begin(Scope::Tenant(&tenant), Mode::Write)
            .await
            .expect("tx");
        let mut lost = vec![journaled(
            "c",
            Some(doc(json!({"title": "crash never happened"}))),
        )];
        Search::journal(&mut tx, owner, &mut lost)
            .await
            .expect("journal");
        drop(tx);
        // The process dies here: nothing was applied to the index.
    }
    let search = Search::new(dir.path().join("search")).with_journal(db.clone());
    assert_eq!(search.recover().await.expect("recover"), 2);
    let page = search
        .search(owner, "posts", &request("crash"))
        .expect("search");
    let mut ids: Vec<&str> = page.hits.iter().map(|h| h.id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["a", "b"]);
    let b = page.hits.iter().find(|h| h.id == "b").expect("b");
    assert_eq!(b.fields["title"], "final crash words");
    // Replayed entries are forgotten once committed: a second start replays nothing.
    let again = Search::new(dir.path().join("search2")).with_journal(db);
    assert_eq!(again.recover().await.expect("recover"), 0);
}
