//! `GET /probe`: every trick to read what another tenant stored, with what
//! each one yielded.

use std::fmt::Debug;

use serde_json::{Value, json};
use weft_sdk::docs::{self, Op, Query};
use weft_sdk::{Response, kv};

use crate::base64;

/// The collection `/plant` writes to.
pub(crate) const VAULT: &str = "vault";
/// The key `/plant` writes to, and the document id.
const SECRET_KEY: &str = "secret";
const SECRET_ID: &str = "s1";
/// Keys and ids the probe writes itself, to get real cursors to tamper
/// with; never reported.
const OWN: &str = "zz-probe-";
/// Pages followed per listing, so a store that loops cannot hang the probe.
const MAX_PAGES: usize = 5;

/// What the probe saw and what it was refused.
#[derive(Default)]
struct Findings {
    /// Values read (kv values; string leaves of document bodies).
    seen: Vec<String>,
    /// Keys listed and document ids returned.
    keys: Vec<String>,
    /// `{"probe": ..., "error": ...}` for every refused call.
    errors: Vec<Value>,
}

pub(crate) fn run() -> Response {
    let mut f = Findings::default();
    let (kv_cursor, docs_cursor) = own_cursors(&mut f);

    for key in key_tricks() {
        f.kv_get(&key);
    }
    for prefix in [
        "", "%", "_", "s", "sec", SECRET_KEY, "../", "/", "*", "\\", "\0", ":",
    ] {
        f.kv_list(prefix, None, 1000);
    }
    f.kv_list("", None, 0);
    f.kv_list("", None, u32::MAX);
    for cursor in forged_cursors(kv_cursor.as_deref()) {
        f.kv_list("", Some(&cursor), 1000);
        f.kv_list(SECRET_KEY, Some(&cursor), 1000);
    }

    for (collection, id) in doc_tricks() {
        f.docs_get(&collection, &id);
    }
    for collection in [
        VAULT,
        "../vault",
        "vault/../vault",
        "VAULT",
        "vault%",
        "%",
        "*",
    ] {
        f.docs_query(collection, Query::new().limit(1000), "all");
    }
    for (label, query) in query_tricks() {
        f.docs_query(VAULT, query, &label);
    }
    for cursor in forged_cursors(docs_cursor.as_deref()) {
        let label = format!("cursor {}", short(&cursor));
        f.docs_query(VAULT, Query::new().cursor(Some(&cursor)), &label);
        let ordered = Query::new().order_by("secret", false).cursor(Some(&cursor));
        f.docs_query(VAULT, ordered, &format!("ordered {label}"));
    }

    clean_up(&mut f);
    Response::json(
        200,
        &json!({ "seen": f.seen, "keys": f.keys, "errors": f.errors }),
    )
}

impl Findings {
    fn refused(&mut self, probe: String, error: impl Debug) {
        self.errors
            .push(json!({ "probe": probe, "error": format!("{error:?}") }));
    }

    fn kv_get(&mut self, key: &str) {
        match kv::get(key) {
            Ok(Some(value)) => self.seen.push(String::from_utf8_lossy(&value).into_owned()),
            Ok(None) => {}
            Err(e) => self.refused(format!("kv.get {}", short(key)), e),
        }
    }

    fn kv_list(&mut self, prefix: &str, cursor: Option<&str>, limit: u32) {
        let mut cursor = cursor.map(str::to_owned);
        for _ in 0..MAX_PAGES {
            let page = match kv::list_prefix(prefix, cursor.as_deref(), limit) {
                Ok(page) => page,
                Err(e) => {
                    let probe = format!(
                        "kv.list-prefix {} cursor={} limit={limit}",
                        short(prefix),
                        cursor.as_deref().map_or("none".into(), short)
                    );
                    return self.refused(probe, e);
                }
            };
            for entry in page.entries.into_iter().filter(|e| !e.key.starts_with(OWN)) {
                self.keys.push(entry.key);
                self.seen
                    .push(String::from_utf8_lossy(&entry.value).into_owned());
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return,
            }
        }
    }

    fn docs_get(&mut self, collection: &str, id: &str) {
        match docs::get(collection, id) {
            Ok(Some(doc)) => self.document(doc),
            Ok(None) => {}
            Err(e) => self.refused(format!("docs.get {} {}", short(collection), short(id)), e),
        }
    }

    fn docs_query(&mut self, collection: &str, query: Query, label: &str) {
        let mut query = query;
        for _ in 0..MAX_PAGES {
            let page = match docs::query(collection, &query) {
                Ok(page) => page,
                Err(e) => {
                    let probe = format!("docs.query {} {label}", short(collection));
                    return self.refused(probe, e);
                }
            };
            for doc in page.documents {
                self.document(doc);
            }
            match page.next_cursor {
                Some(next) => query = query.cursor(Some(&next)),
                None => return,
            }
        }
    }

    fn document(&mut self, doc: docs::Document) {
        if doc.id.starts_with(OWN) {
            return;
        }
        match serde_json::from_str::<Value>(&doc.body) {
            Ok(body) => string_leaves(&body, &mut self.seen),
            Err(_) => self.seen.push(doc.body),
        }
        self.keys.push(doc.id);
    }
}

fn string_leaves(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| string_leaves(v, out)),
        Value::Object(map) => map.values().for_each(|v| string_leaves(v, out)),
        _ => {}
    }
}

/// A label for a probe: long or odd inputs shortened and escaped.
fn short(s: &str) -> String {
    let head: String = s.chars().take(40).collect();
    if head.len() < s.len() {
        format!("{head:?}…({} bytes)", s.len())
    } else {
        format!("{head:?}")
    }
}

/// Writes three keys and three documents of its own and lists them one per
/// page, to learn what the store's real cursors look like.
fn own_cursors(f: &mut Findings) -> (Option<String>, Option<String>) {
    for i in 1..=3 {
        let name = format!("{OWN}{i}");
        if let Err(e) = kv::set(&name, b"own") {
            f.refused(format!("kv.set {name}"), e);
        }
        if let Err(e) = docs::put_json(VAULT, &name, &json!({ "own": true }), None) {
            f.refused(format!("docs.put {name}"), e);
        }
    }
    let kv_cursor = kv::list_prefix(OWN, None, 1)
        .ok()
        .and_then(|p| p.next_cursor);
    let docs_cursor = docs::query(VAULT, &Query::new().limit(1))
        .ok()
        .and_then(|p| p.next_cursor);
    (kv_cursor, docs_cursor)
}

fn clean_up(f: &mut Findings) {
    for i in 1..=3 {
        let name = format!("{OWN}{i}");
        if let Err(e) = kv::delete(&name) {
            f.refused(format!("kv.delete {name}"), e);
        }
        if let Err(e) = docs::delete(VAULT, &name) {
            f.refused(format!("docs.delete {name}"), e);
        }
    }
}

/// Tenant-looking prefixes: numbers, names, UUIDs (v4 and v7 shapes).
const TENANTS: [&str; 10] = [
    "1",
    "2",
    "a",
    "b",
    "tenant-a",
    "tenant_a",
    "acme",
    "default",
    "00000000-0000-0000-0000-000000000001",
    "0190f5a0-0000-7000-8000-000000000001",
];
const SEPARATORS: [&str; 4] = [":", "/", "\u{1f}", "\0"];

fn key_tricks() -> Vec<String> {
    let mut keys: Vec<String> = [
        SECRET_KEY,
        "../secret",
        "/secret",
        "./secret",
        "%2e%2e/secret",
        "..%2fsecret",
        "..\\secret",
        "secret\0",
        "\0secret",
        "secret\0../x",
        "SECRET",
        "Secret",
        " secret",
        "secret ",
        "ｓｅｃｒｅｔ",
        "secret' OR '1'='1",
        "secret\" OR \"1\"=\"1",
        "secret'; --",
        "%",
        "_ecret",
        "secre_",
        "*",
        "secret%",
        "%secret",
        "",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    keys.push("x".repeat(513));
    keys.push("x".repeat(4096));
    keys.push("x".repeat(64 * 1024));
    keys.push(format!("{}{SECRET_KEY}", "/".repeat(600)));
    for tenant in TENANTS {
        for sep in SEPARATORS {
            keys.push(format!("{tenant}{sep}{SECRET_KEY}"));
            keys.push(format!("{tenant}{sep}snoop{sep}{SECRET_KEY}"));
            keys.push(format!("{tenant}{sep}hello{sep}{SECRET_KEY}"));
        }
    }
    keys
}

fn doc_tricks() -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = [
        (VAULT, SECRET_ID),
        ("../vault", SECRET_ID),
        ("vault/../vault", SECRET_ID),
        ("VAULT", SECRET_ID),
        ("vault\0", SECRET_ID),
        ("", SECRET_ID),
        ("vault%", SECRET_ID),
        ("%", SECRET_ID),
        ("*", SECRET_ID),
        ("vault'; --", SECRET_ID),
        (VAULT, "../s1"),
        (VAULT, "S1"),
        (VAULT, "s1\0"),
        (VAULT, "%"),
        (VAULT, "*"),
        (VAULT, "s_"),
        (VAULT, ""),
        (VAULT, "..:s1"),
        (VAULT, "s1' OR '1'='1"),
    ]
    .into_iter()
    .map(|(c, i)| (c.to_owned(), i.to_owned()))
    .collect();
    pairs.push((VAULT.into(), "x".repeat(129)));
    pairs.push(("v".repeat(65), SECRET_ID.into()));
    pairs.push((VAULT.into(), "x".repeat(64 * 1024)));
    for tenant in TENANTS {
        for sep in [":", "/", "_", "-"] {
            pairs.push((format!("{tenant}{sep}{VAULT}"), SECRET_ID.into()));
            pairs.push((VAULT.into(), format!("{tenant}{sep}{SECRET_ID}")));
        }
        pairs.push((VAULT.into(), format!("{tenant}:{VAULT}:{SECRET_ID}")));
    }
    pairs
}

fn query_tricks() -> Vec<(String, Query)> {
    let mut queries = Vec::new();
    let mut add = |label: &str, q: Query| queries.push((label.to_owned(), q));
    for field in [
        "tenant_id",
        "_tenant",
        "tenant",
        "tenantId",
        "owner",
        "_plugin",
    ] {
        add(
            &format!("{field} ne null"),
            Query::new().filter(field, Op::Ne, Value::Null),
        );
        add(
            &format!("{field} eq null"),
            Query::new().filter(field, Op::Eq, Value::Null),
        );
        for tenant in TENANTS {
            add(
                &format!("{field} eq {tenant}"),
                Query::new().filter(field, Op::Eq, tenant),
            );
        }
        add(
            &format!("{field} eq 1"),
            Query::new().filter(field, Op::Eq, 1),
        );
        add(
            &format!("order {field}"),
            Query::new().order_by(field, true),
        );
    }
    add("id eq s1", Query::new().filter("id", Op::Eq, SECRET_ID));
    add("id gte ''", Query::new().filter("id", Op::Gte, ""));
    add(
        "secret ne null",
        Query::new().filter("secret", Op::Ne, Value::Null),
    );
    add("secret gte ''", Query::new().filter("secret", Op::Gte, ""));
    for field in [
        "secret') OR 1=1 --",
        "secret\" OR 1=1 --",
        "$.secret",
        "body",
        "../secret",
        "",
        "tenant_id\0",
        "created-at",
    ] {
        add(
            &format!("field {}", short(field)),
            Query::new().filter(field, Op::Ne, Value::Null),
        );
        add(
            &format!("order {}", short(field)),
            Query::new().order_by(field, false),
        );
    }
    add(
        "field 10 KB",
        Query::new().filter(&"f".repeat(10_240), Op::Ne, Value::Null),
    );
    for (label, raw) in [
        ("value object", r#"{"$ne":null}"#),
        ("value array", "[1]"),
        ("value not json", "' OR 1=1 --"),
        ("value empty", ""),
    ] {
        add(label, Query::new().filter_json("secret", Op::Ne, raw));
    }
    add(
        "value 1 MiB",
        Query::new().filter("secret", Op::Ne, "s".repeat(1 << 20)),
    );
    add("limit 0", Query::new().limit(0));
    add("limit 1001", Query::new().limit(1001));
    add("limit u32::MAX", Query::new().limit(u32::MAX));
    queries
}

/// Cursors a store never issued: huge, garbage, base64 of plausible
/// internal keys, and tampered versions of a real one.
fn forged_cursors(real: Option<&str>) -> Vec<String> {
    let mut cursors: Vec<String> = [
        "0",
        "1",
        "-1",
        "",
        "' OR 1=1 --",
        "\0",
        "%",
        SECRET_KEY,
        "s1",
        "\u{fffd}\u{fffd}garbage\u{7f}",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    cursors.push("A".repeat(10 * 1024));
    cursors.push("=".repeat(10 * 1024));
    for plain in [
        "secret",
        "s1",
        "1:secret",
        "1/snoop/secret",
        "tenant-a:hello:secret",
        r#"{"tenant":"a","key":"secret"}"#,
        r#"{"tenant_id":1,"after":"s0"}"#,
        r#"{"offset":0}"#,
    ] {
        cursors.push(base64::encode(plain.as_bytes()));
        cursors.push(base64::encode_url(plain.as_bytes()));
    }
    if let Some(real) = real {
        cursors.extend(tampered(real));
    }
    cursors
}

/// Variants of a real cursor: a byte flipped, extended, and with the probe's
/// own key swapped for the secret's (in the clear or inside base64).
fn tampered(real: &str) -> Vec<String> {
    let mut out = vec![format!("{real}A"), real.chars().rev().collect()];
    if let Some(last) = real.chars().last() {
        let flipped = if last == 'A' { 'B' } else { 'A' };
        out.push(format!(
            "{}{flipped}",
            &real[..real.len() - last.len_utf8()]
        ));
    }
    for own in [format!("{OWN}1"), format!("{OWN}2")] {
        if real.contains(&own) {
            out.push(real.replace(&own, SECRET_KEY));
            out.push(real.replace(&own, SECRET_ID));
        }
        if let Some(decoded) = base64::decode(real) {
            let text = String::from_utf8_lossy(&decoded);
            if text.contains(&own) {
                for target in [SECRET_KEY, SECRET_ID, ""] {
                    let forged = text.replace(&own, target);
                    out.push(base64::encode(forged.as_bytes()));
                    out.push(base64::encode_url(forged.as_bytes()));
                }
            }
            // Other tenants' rows may sit on either side of ours.
            for tweak in ["0", "9", "~"] {
                let mut bytes = decoded.clone();
                bytes.extend_from_slice(tweak.as_bytes());
                out.push(base64::encode_url(&bytes));
            }
        }
    }
    out
}
