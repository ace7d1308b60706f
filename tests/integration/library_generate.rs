//! Search-first generation against the fake LLM providers: a library hit
//! is served without any model call, a miss calls the model with the
//! constraints and the closest items in its prompt, and the hit rate
//! counts both. Also the project templates (zip) and the constraints API.

use std::io::Read;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::Server;
use crate::llm::{grant, llm_test, no_tweak, start};
use weft_llm_wire::fake::FakeLlm;

/// An item with a placeholder (`prefix`, default `INV`), for hits.
pub(crate) const WOMBAT: &str =
    "pub fn next_invoice_number(seq: u64) -> String {\n    format!(\"{{prefix}}-{seq:06}\")\n}\n";

/// A private item of the tenant whose API key is `key`, added over REST.
pub(crate) async fn wombat_item(s: &Server, key: &str) -> String {
    let (status, body) = s
        .post(
            "/v1/library/items",
            Some(key),
            json!({
                "title": "Wombat invoice numbering sequence",
                "description": "Formats the next invoice number of a sequence with a prefix.",
                "language": "rust",
                "tags": ["billing", "invoices"],
                "placeholders": [{"name": "prefix", "description": "Invoice prefix", "default": "INV"}],
                "code": WOMBAT,
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().expect("id").to_owned()
}

llm_test!(
    hits_skip_the_model_and_misses_call_it_with_constraints_and_items,
    no_tweak,
    async |s: &Server, fake: &FakeLlm| {
        let t = s.tenant("acme").await;
        let key = t.api_key.as_str();
        let wombat = wombat_item(s, key).await;

        // A hit: served from the item, placeholders filled, no model called,
        // and no credits needed.
        let (status, hit) = s
        .post(
            "/v1/library/generate",
            Some(key),
            json!({"request": "wombat invoice numbering sequence", "values": {"prefix": "ACME"}}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{hit}");
        assert_eq!(hit["served_by"], "library", "{hit}");
        assert_eq!(hit["items"][0]["id"], wombat.as_str());
        assert!(
            hit["code"]
                .as_str()
                .is_some_and(|c| c.contains("\"ACME-{seq:06}\"")),
            "{hit}"
        );
        assert!(
            hit["confidence"].as_f64() >= hit["threshold"].as_f64(),
            "{hit}"
        );
        assert!(fake.requests().is_empty(), "a hit calls no model");
        let (_, item) = s
            .get(&format!("/v1/library/items/{wombat}"), Some(key))
            .await;
        assert_eq!(item["uses"], 1, "serving counts a use: {item}");

        // A miss without credits: refused before the call, and not counted.
        let miss = json!({"request": "zorblax frobnicator quux telemetry with a wombat", "language": "rust"});
        let (status, body) = s
            .post("/v1/library/generate", Some(key), miss.clone())
            .await;
        assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{body}");
        assert_eq!(body["error"]["code"], "insufficient_credits");
        assert!(fake.requests().is_empty());

        grant(s, &t, "100").await;
        let (status, generated) = s.post("/v1/library/generate", Some(key), miss).await;
        assert_eq!(status, StatusCode::OK, "{generated}");
        assert_eq!(generated["served_by"], "llm", "{generated}");
        assert!(generated["confidence"].as_f64() < generated["threshold"].as_f64());
        assert!(generated["save_offer"]["code"].is_string(), "{generated}");
        assert!(
            generated["check"]["checked"]
                .as_array()
                .is_some_and(|c| c.iter().any(|id| id == "SEC-002")),
            "a miss's code is checked against the rules that apply: {generated}"
        );
        let requests = fake.requests();
        assert_eq!(requests.len(), 1, "one model call");
        let prompt = requests[0].body.to_string();
        assert!(
            prompt.contains("Constraints the code must follow"),
            "{prompt}"
        );
        assert!(
            prompt.contains("SEC-"),
            "the security rules for rust are in the prompt: {prompt}"
        );
        assert!(
            prompt.contains(&wombat),
            "the closest item is in the prompt: {prompt}"
        );
        assert!(prompt.contains("zorblax frobnicator"), "{prompt}");
        assert!(
            generated["items"]
                .as_array()
                .is_some_and(|i| i.iter().any(|i| i["id"] == wombat.as_str()))
        );

        // A miss saved back becomes the tenant's item.
        fake.script(
            "gpt-4o-mini",
            weft_llm_wire::fake::Script::new()
                .reply("Here:\n```rust\nfn quux_telemetry_exporter() {}\n```\n"),
        );
        let (status, saved) = s
        .post(
            "/v1/library/generate",
            Some(key),
            json!({"request": "quux telemetry exporter", "language": "rust", "save": true, "model": "gpt-4o-mini"}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{saved}");
        assert_eq!(saved["served_by"], "llm");
        assert_eq!(saved["code"], "fn quux_telemetry_exporter() {}\n");
        let new_id = saved["saved_item"].as_str().expect("saved item");
        let (status, new_item) = s
            .get(&format!("/v1/library/items/{new_id}"), Some(key))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(new_item["code"], "fn quux_telemetry_exporter() {}\n");

        let (status, rate) = s.get("/v1/library/hit-rate", Some(&t.admin_token)).await;
        assert_eq!(status, StatusCode::OK, "{rate}");
        assert_eq!(rate["requests"], 3, "{rate}");
        assert_eq!(rate["library_hits"], 1, "{rate}");
        assert!((rate["hit_rate"].as_f64().unwrap_or(0.0) - 1.0 / 3.0).abs() < 1e-9);
        // Another tenant's rate is its own; the operator sees every tenant's.
        let other = s.tenant("other").await;
        let (_, theirs) = s
            .get("/v1/library/hit-rate", Some(&other.admin_token))
            .await;
        assert_eq!(theirs["requests"], 0, "{theirs}");
        let (_, global) = s.get("/v1/library/hit-rate", Some(&s.root_token)).await;
        assert_eq!(global["scope"], "global");
        assert_eq!(global["requests"], 3, "{global}");

        let (status, body) = s
            .post("/v1/library/generate", Some(key), json!({"request": "  "}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
);

fn zip_entries(bytes: &[u8]) -> Vec<(String, String)> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a zip");
    (0..archive.len())
        .map(|i| {
            let mut f = archive.by_index(i).expect("entry");
            let mut text = String::new();
            let _ = f.read_to_string(&mut text);
            (f.name().map(|n| n.to_string()).unwrap_or_default(), text)
        })
        .collect()
}

llm_test!(
    templates_answer_questions_with_a_zip,
    no_tweak,
    async |s: &Server, _fake: &FakeLlm| {
        let t = s.tenant("acme").await;
        let key = Some(t.api_key.as_str());
        let (status, list) = s.get("/v1/library/templates", key).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        let ids: Vec<&str> = list["templates"]
            .as_array()
            .expect("templates")
            .iter()
            .filter_map(|t| t["id"].as_str())
            .collect();
        for id in [
            "axum-service",
            "landing-page",
            "react-component",
            "sql-migration",
            "weft-plugin-rust",
        ] {
            assert!(ids.contains(&id), "{ids:?}");
        }
        let (_, one) = s.get("/v1/library/templates/react-component", key).await;
        let questions = one["questions"].as_array().expect("questions");
        assert!((1..=5).contains(&questions.len()), "{one}");

        let resp = s
            .client
            .post(format!(
                "{}/v1/library/templates/react-component/generate",
                s.base
            ))
            .bearer_auth(&t.api_key)
            .json(&json!({"answers": {"component_name": "PriceCard", "with_test": true}}))
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "application/zip");
        let bytes = resp.bytes().await.expect("body");
        let entries = zip_entries(&bytes);
        assert!(
            entries
                .iter()
                .any(|(name, body)| name.ends_with("PriceCard.tsx") && body.contains("PriceCard")),
            "{:?}",
            entries.iter().map(|e| &e.0).collect::<Vec<_>>()
        );
        assert!(
            entries.iter().any(|(name, _)| name.contains(".test.")),
            "with_test adds a test file"
        );

        let (status, body) = s
            .post(
                "/v1/library/templates/react-component/generate",
                key,
                json!({"answers": {"component_name": "not a name", "bogus": 1}}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"]["code"], "invalid_answers");
        let bad: Vec<&str> = body["error"]["answers"]
            .as_array()
            .expect("answers")
            .iter()
            .filter_map(|e| e["question"].as_str())
            .collect();
        assert!(
            bad.contains(&"component_name") && bad.contains(&"bogus"),
            "every bad answer at once: {body}"
        );
        let (status, _) = s
            .post("/v1/library/templates/nope/generate", key, json!({}))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
);

llm_test!(
    constraints_are_served_versioned_and_checked,
    no_tweak,
    async |s: &Server, _fake: &FakeLlm| {
        let t = s.tenant("acme").await;
        let key = Some(t.api_key.as_str());
        // The documents are recorded when the library first loads.
        let (_, _) = s.get("/v1/library/search?q=warmup", key).await;
        let (status, list) = s.get("/v1/library/constraints", key).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        let names: Vec<&str> = list["documents"]
            .as_array()
            .expect("documents")
            .iter()
            .filter_map(|d| d["name"].as_str())
            .collect();
        assert_eq!(
            names,
            [
                "accessibility",
                "apis",
                "performance",
                "security",
                "styling"
            ]
        );
        let (status, security) = s.get("/v1/library/constraints/security", key).await;
        assert_eq!(status, StatusCode::OK, "{security}");
        assert!(security["rules"].as_array().is_some_and(|r| r.len() >= 5));
        let version = security["document"]["version"].as_i64().expect("version");
        assert_eq!(security["versions"][0]["version"], version, "{security}");
        let (status, old) = s
            .get(
                &format!("/v1/library/constraints/security?version={version}"),
                key,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(old["text"], security["text"]);

        let bad = "async fn handler(q: Query<Params>) -> String {\n    let api_key = \"sk_live_51HqExampleExampleExample\";\n    let sql = format!(\"SELECT * FROM users WHERE name = '{}'\", q.name);\n    sql\n}\n";
        let (status, report) = s
            .post(
                "/v1/library/check",
                key,
                json!({"code": bad, "language": "rust"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{report}");
        assert_eq!(report["clean"], false, "{report}");
        let ids: Vec<&str> = report["report"]["violations"]
            .as_array()
            .expect("violations")
            .iter()
            .filter_map(|v| v["rule_id"].as_str())
            .collect();
        assert!(ids.iter().any(|id| id.starts_with("SEC-")), "{report}");
        let (status, _) = s
            .post(
                "/v1/library/check",
                key,
                json!({"code": "x", "language": "cobol"}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let _: Value = json!(null);
    }
);

/// Serves `body` as HTML to every request, on a free loopback port.
async fn page_server(body: &'static str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(body.as_bytes()).await;
            });
        }
    });
    port
}

const PAGE: &str = "<html><body><h2>Parsing a semver string</h2><p>Split on dots and parse each part.</p>\
<pre><code class=\"language-rust\">pub fn parse_semver(s: &amp;str) -&gt; Option&lt;(u64, u64, u64)&gt; {\n    let mut it = s.split('.').map(|p| p.parse().ok());\n    Some((it.next()??, it.next()??, it.next()??))\n}\n</code></pre>\
<script>var notCode = 1; function skipped() { return 2; }</script></body></html>";

crate::both_engines!(
    research_adds_new_blocks_once_and_only_from_allowed_hosts,
    async |s: &Server| {
        let t = s.tenant("acme").await;
        let key = Some(t.api_key.as_str());
        let seed = s
            .get("/v1/library/items/sql-upsert-on-conflict", key)
            .await
            .1;
        let seed_code = seed["code"].as_str().expect("seed code").to_owned();
        let text = format!(
            "# Notes\n\nA counter in Rust:\n\n```rust\npub fn bump_wallaby(counter: &mut u64) -> u64 {{\n    *counter += 1;\n    *counter\n}}\n```\n\nThe upsert again:\n\n```sql\n{seed_code}\n```\n"
        );
        let (status, preview) = s
            .post(
                "/v1/library/research",
                key,
                json!({"text": text, "tags": ["notes"]}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{preview}");
        let blocks = preview["blocks"].as_array().expect("blocks");
        assert_eq!(blocks.len(), 2, "{preview}");
        assert_eq!(blocks[0]["status"], "new", "{preview}");
        assert_eq!(blocks[0]["language"], "rust");
        assert_eq!(blocks[1]["status"], "duplicate", "{preview}");
        assert_eq!(blocks[1]["duplicate_of"], "sql-upsert-on-conflict");

        let (status, saved) = s
            .post(
                "/v1/library/research",
                key,
                json!({"text": text, "save": true}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{saved}");
        assert_eq!(saved["blocks"][0]["status"], "added", "{saved}");
        let id = saved["blocks"][0]["item_id"]
            .as_str()
            .expect("item id")
            .to_owned();
        let (_, item) = s.get(&format!("/v1/library/items/{id}"), key).await;
        assert_eq!(item["license"], "NOASSERTION");
        assert!(
            item["tags"]
                .as_array()
                .is_some_and(|t| t.contains(&json!("research"))),
            "{item}"
        );
        // The same text again adds nothing: the block is now an item.
        let (_, again) = s
            .post(
                "/v1/library/research",
                key,
                json!({"text": text, "save": true}),
            )
            .await;
        assert_eq!(again["blocks"][0]["status"], "duplicate", "{again}");
        assert_eq!(again["blocks"][0]["duplicate_of"], id.as_str());

        let (status, body) = s
            .post(
                "/v1/library/research",
                key,
                json!({"url": "http://127.0.0.1:9/x"}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        let (status, body) = s
            .post("/v1/library/research", key, json!({"url": "ftp://x/y"}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let (status, body) = s
            .post(
                "/v1/library/research",
                key,
                json!({"url": "http://a/", "text": "x"}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
);

crate::both_engines_with!(
    research_reads_an_allow_listed_page,
    |c: &mut weft::config::Config| {
        c.library.research_hosts = vec![format!("127.0.0.1:{}", page_port())];
    },
    async |s: &Server| {
        let t = s.tenant("acme").await;
        let url = format!("http://127.0.0.1:{}/post", page_port());
        let (status, body) = s
            .post(
                "/v1/library/research",
                Some(&t.api_key),
                json!({"url": url, "save": true}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let blocks = body["blocks"].as_array().expect("blocks");
        assert_eq!(blocks.len(), 1, "the script is not a block: {body}");
        assert_eq!(blocks[0]["status"], "added");
        assert_eq!(blocks[0]["title"], "Parsing a semver string");
        assert!(
            blocks[0]["code"]
                .as_str()
                .is_some_and(|c| c.contains("&str) -> Option<(u64")),
            "entities decoded: {body}"
        );
        let id = blocks[0]["item_id"].as_str().expect("id");
        let (_, item) = s
            .get(&format!("/v1/library/items/{id}"), Some(&t.api_key))
            .await;
        assert!(
            item["description"]
                .as_str()
                .is_some_and(|d| d.contains("Split on dots") && d.contains(&url)),
            "{item}"
        );
    }
);

/// One page server for the whole test process, on a runtime of its own
/// (each test's runtime ends with the test).
fn page_port() -> u16 {
    static PORT: std::sync::OnceLock<u16> = std::sync::OnceLock::new();
    *PORT.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            rt.block_on(async {
                let _ = tx.send(page_server(PAGE).await);
                std::future::pending::<()>().await;
            });
        });
        rx.recv().expect("page server port")
    })
}

llm_test!(
    the_model_reviews_the_rules_no_static_check_decides,
    no_tweak,
    async |s: &Server, fake: &FakeLlm| {
        let t = s.tenant("acme").await;
        let key = Some(t.api_key.as_str());
        let code = "async fn get(id: i64, db: &Db) -> Row {\n    db.fetch(\"SELECT * FROM notes WHERE id = $1\", id).await\n}\n";
        let body = json!({"code": code, "language": "rust"});
        // Static checks only: the review rules are listed as pending.
        let (status, plain) = s.post("/v1/library/check", key, body.clone()).await;
        assert_eq!(status, StatusCode::OK, "{plain}");
        let pending = plain["report"]["needs_review"]
            .as_array()
            .expect("pending")
            .clone();
        assert!(pending.iter().any(|id| id == "SEC-009"), "{plain}");
        assert!(plain["review"].is_null() && fake.requests().is_empty());

        let mut review = body.clone();
        review["review"] = json!(true);
        review["model"] = json!("gpt-4o-mini");
        // Billed: refused without credits, before any call.
        let (status, refused) = s.post("/v1/library/check", key, review.clone()).await;
        assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{refused}");
        assert!(fake.requests().is_empty());
        // The operator has no tenant to bill.
        let (status, body_op) = s
            .post("/v1/library/check", Some(&s.root_token), review.clone())
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body_op}");

        grant(s, &t, "100").await;
        fake.script(
            "gpt-4o-mini",
            weft_llm_wire::fake::Script::new().reply(
                "```json\n{\"violations\": [{\"rule_id\": \"SEC-009\", \"line\": 2, \"reason\": \"reads a note by id alone\"}, {\"rule_id\": \"MADE-UP-1\", \"line\": 1, \"reason\": \"not asked\"}]}\n```",
            ),
        );
        let (status, reviewed) = s.post("/v1/library/check", key, review.clone()).await;
        assert_eq!(status, StatusCode::OK, "{reviewed}");
        assert_eq!(reviewed["review"]["status"], "ok", "{reviewed}");
        let found = reviewed["review"]["violations"]
            .as_array()
            .expect("violations");
        assert_eq!(
            found.len(),
            1,
            "only rules asked about are kept: {reviewed}"
        );
        assert_eq!(found[0]["rule_id"], "SEC-009");
        assert_eq!(found[0]["line"], 2);
        assert!(
            found[0]["excerpt"]
                .as_str()
                .unwrap_or("")
                .contains("WHERE id = $1")
        );
        assert_eq!(reviewed["clean"], false);
        assert_eq!(reviewed["has_errors"], true, "SEC-009 is an error rule");
        assert!(
            reviewed["review"]["cost_micro_credits"].as_i64() > Some(0),
            "{reviewed}"
        );
        assert!(
            reviewed["report"]["needs_review"]
                .as_array()
                .is_some_and(Vec::is_empty),
            "every pending rule was reviewed: {reviewed}"
        );
        let prompt = fake.requests()[0].body.to_string();
        assert!(
            prompt.contains("SEC-009") && prompt.contains("WHERE id = $1"),
            "{prompt}"
        );

        // An answer that is not the JSON asked for leaves the rules pending.
        fake.script(
            "gpt-4o-mini",
            weft_llm_wire::fake::Script::new().reply("Looks fine to me."),
        );
        let (status, unread) = s.post("/v1/library/check", key, review).await;
        assert_eq!(status, StatusCode::OK, "{unread}");
        assert_eq!(unread["review"]["status"], "unreadable", "{unread}");
        assert_eq!(unread["report"]["needs_review"], json!(pending), "{unread}");
    }
);
