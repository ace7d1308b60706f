use std::sync::Arc;

use super::*;

fn doc(key: &str, title: &str, tags: &[&str], language: &str, code: &str) -> Doc {
    Doc {
        key: key.into(),
        title: title.into(),
        description: format!("{title} for everyday use."),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        language: language.into(),
        kind: "snippet".into(),
        code: code.into(),
        quality: 0.5,
    }
}

fn axis(i: usize) -> Arc<[f32]> {
    let mut v = vec![0.0; 4];
    v[i] = 1.0;
    v.into()
}

fn shard(docs: &[(Doc, Option<Arc<[f32]>>)]) -> Shard {
    let s = Shard::new(1).expect("shard");
    for (d, v) in docs {
        s.upsert(d, v.clone()).expect("upsert");
    }
    s.commit().expect("commit");
    s
}

fn request<'a>(
    text: &'a str,
    filter: &'a Filter,
    embedding: Option<&'a [f32]>,
    ratio: f32,
) -> Request<'a> {
    Request {
        text,
        embedding,
        filter,
        semantic_ratio: ratio,
        limit: 10,
        explain: true,
        exact: false,
    }
}

fn keys(matches: &[Match]) -> Vec<&str> {
    matches.iter().map(|m| m.key.as_str()).collect()
}

fn sample() -> Shard {
    shard(&[
        (
            doc(
                "ls",
                "Persist state in the browser",
                &["react", "hooks"],
                "tsx",
                "export function useLocalStorage<T>(key: string, initial: T) {}",
            ),
            Some(axis(0)),
        ),
        (
            doc(
                "shutdown",
                "Graceful shutdown",
                &["tokio", "signals"],
                "rust",
                "tokio::signal::ctrl_c().await?; server.with_graceful_shutdown(signal)",
            ),
            Some(axis(1)),
        ),
        (
            doc(
                "upsert",
                "Insert or update a row",
                &["sql", "postgres"],
                "sql",
                "INSERT INTO t (id, n) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET n = excluded.n",
            ),
            Some(axis(2)),
        ),
    ])
}

#[test]
fn keywords_meet_identifier_parts_and_explain_the_match() {
    let s = sample();
    let filter = Filter::default();
    let found = search(&[&s], &request("local storage hook", &filter, None, 0.5)).expect("search");
    assert_eq!(keys(&found), ["ls"]);
    let why = found[0].why.keyword.as_ref().expect("keyword why");
    assert_eq!(why.rank, 1);
    assert_eq!(why.matched.get("code").map(Vec::len), Some(2), "{why:?}");
    assert!(
        why.matched.get("tags").is_some_and(|t| t == &["hook"]),
        "stemmed: {why:?}"
    );
    assert_eq!(why.term_coverage, Some(1.0));
    assert!((found[0].confidence - 1.0).abs() < 1e-6);

    let found =
        search(&[&s], &request("ON CONFLICT DO UPDATE", &filter, None, 0.5)).expect("search");
    assert_eq!(found[0].key, "upsert");
    assert!(
        search(&[&s], &request("!!! ???", &filter, None, 0.5))
            .expect("search")
            .is_empty()
    );
}

#[test]
fn filters_narrow_both_lists() {
    let s = sample();
    let filter = Filter {
        language: Some("rust".into()),
        ..Filter::default()
    };
    // Every item is a candidate semantically; only the Rust one passes.
    let q = [0.5f32, 0.5, 0.5, 0.5];
    let found = search(
        &[&s],
        &request("state row shutdown", &filter, Some(&q), 0.5),
    )
    .expect("search");
    assert_eq!(keys(&found), ["shutdown"]);
    let filter = Filter {
        tags: vec!["react".into(), "hooks".into()],
        ..Filter::default()
    };
    let found = search(
        &[&s],
        &request("state row shutdown", &filter, Some(&q), 0.5),
    )
    .expect("search");
    assert_eq!(keys(&found), ["ls"]);
    let filter = Filter {
        min_quality: Some(0.6),
        ..Filter::default()
    };
    assert!(
        search(&[&s], &request("state", &filter, Some(&q), 0.5))
            .expect("search")
            .is_empty()
    );
}

#[test]
fn the_semantic_ratio_moves_the_ranking_between_the_two_lists() {
    let s = sample();
    let filter = Filter::default();
    // Keywords say "upsert", meaning says "shutdown".
    let q = axis(1);
    let text = "insert or update";
    let kw = search(&[&s], &request(text, &filter, Some(&q), 0.0)).expect("search");
    assert_eq!(keys(&kw), ["upsert"], "ratio 0 is keywords only");
    let sem = search(&[&s], &request(text, &filter, Some(&q), 1.0)).expect("search");
    assert_eq!(sem[0].key, "shutdown", "ratio 1 is meaning only");
    assert!(sem.iter().all(|m| m.why.keyword.is_none()));
    let why = sem[0].why.semantic.as_ref().expect("semantic why");
    assert!(
        (why.similarity - 1.0).abs() < 1e-6 && why.margin > 0.9,
        "the only close item stands far from the rest: {why:?}"
    );
    assert!(sem[0].confidence > 0.0 && sem[0].confidence < 1.0);
    let mostly_kw = search(&[&s], &request(text, &filter, Some(&q), 0.3)).expect("search");
    assert_eq!(mostly_kw[0].key, "upsert");
    let mostly_sem = search(&[&s], &request(text, &filter, Some(&q), 0.7)).expect("search");
    assert_eq!(mostly_sem[0].key, "shutdown");
    // Without a query vector the ratio is moot: keywords only.
    let none = search(&[&s], &request(text, &filter, None, 1.0)).expect("search");
    assert_eq!(keys(&none), ["upsert"]);
}

#[test]
fn shards_are_searched_together_and_only_those_given() {
    let global = sample();
    let tenant_a = shard(&[(
        doc(
            "a-secret",
            "Graceful shutdown for our billing daemon",
            &["tokio"],
            "rust",
            "fn stop() {}",
        ),
        Some(axis(1)),
    )]);
    let _tenant_b = shard(&[(
        doc(
            "b-secret",
            "Graceful shutdown with drain",
            &["tokio"],
            "rust",
            "fn drain() {}",
        ),
        Some(axis(1)),
    )]);
    let filter = Filter::default();
    let q = axis(1);
    let a = search(
        &[&global, &tenant_a],
        &request("graceful shutdown", &filter, Some(&q), 0.5),
    )
    .expect("search");
    assert!(keys(&a).contains(&"a-secret") && keys(&a).contains(&"shutdown"));
    assert!(!keys(&a).contains(&"b-secret"));
    assert_eq!(
        a.iter().find(|m| m.key == "a-secret").map(|m| m.shard),
        Some(1)
    );
}

#[test]
fn replacing_and_deleting_items() {
    let s = sample();
    let filter = Filter::default();
    s.upsert(
        &doc(
            "ls",
            "Cookie banner",
            &["privacy"],
            "html",
            "<div role=\"dialog\">",
        ),
        None,
    )
    .expect("upsert");
    s.delete("upsert");
    s.commit().expect("commit");
    assert_eq!(s.len(), 2);
    assert!(
        search(&[&s], &request("local storage", &filter, None, 0.5))
            .expect("search")
            .is_empty()
    );
    assert_eq!(
        keys(&search(&[&s], &request("cookie", &filter, None, 0.5)).expect("search")),
        ["ls"]
    );
    assert!(
        search(&[&s], &request("conflict", &filter, None, 0.5))
            .expect("search")
            .is_empty()
    );
    // Its vector went with its new version: the semantic list lacks it.
    let q = axis(0);
    assert!(
        search(&[&s], &request("zzz", &filter, Some(&q), 1.0))
            .expect("search")
            .iter()
            .all(|m| m.key != "ls")
    );
}

#[test]
fn a_missing_model_is_named_file_by_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("model.onnx"), b"x").expect("write");
    let err = embed::Embedder::load(dir.path()).expect_err("no runtime");
    let text = err.to_string();
    assert!(
        text.contains("libonnxruntime.so") && text.contains("tokenizer.json"),
        "{text}"
    );
    assert!(!text.contains("model.onnx"), "{text}");
}

/// The real model, where the set-up fetched it (`.ci/run` always does and
/// sets `WEFT_EMBEDDINGS_DIR`).
#[test]
fn the_real_model_puts_related_texts_together() {
    let Some(dir) = std::env::var_os("WEFT_EMBEDDINGS_DIR") else {
        eprintln!("WEFT_EMBEDDINGS_DIR unset: the model test needs the fetched files");
        return;
    };
    let model = embed::Embedder::load(std::path::Path::new(&dir)).expect("load the model");
    let v = model
        .embed(&[
            "a rust http server with axum",
            "build a web server in Rust",
            "chocolate cake recipe",
        ])
        .expect("embed");
    assert_eq!(v[0].len(), embed::DIMS);
    assert!(
        (vectors::dot(&v[0], &v[0]) - 1.0).abs() < 1e-4,
        "unit length"
    );
    let near = vectors::dot(&v[0], &v[1]);
    let far = vectors::dot(&v[0], &v[2]);
    assert!(near > 0.5 && far < 0.2, "near {near} far {far}");
}

#[test]
fn a_small_shard_is_scored_with_the_statistics_of_all_searched() {
    let global = sample();
    // One item: alone, every word of it would look rare, and its scores
    // would be far below the global shard's for the same words.
    let tenant = shard(&[(
        doc(
            "mine",
            "Shutdown hook for our billing daemon",
            &["tokio"],
            "rust",
            "fn stop_billing() {}",
        ),
        None,
    )]);
    let filter = Filter::default();
    let found = search(
        &[&global, &tenant],
        &request("billing daemon shutdown", &filter, None, 0.0),
    )
    .expect("search");
    assert_eq!(found[0].key, "mine", "{found:?}");
    assert_eq!(found[1].key, "shutdown");
}

#[test]
fn confidence_grows_with_every_piece_of_evidence() {
    let base = Evidence {
        similarity: 0.45,
        coverage: 0.6,
        first_in_both: false,
        margin: 0.0,
    };
    let c = confidence(&base);
    assert!(c > 0.0 && c < 1.0, "{c}");
    for better in [
        Evidence {
            similarity: 0.6,
            ..base
        },
        Evidence {
            coverage: 1.0,
            ..base
        },
        Evidence {
            first_in_both: true,
            ..base
        },
        Evidence {
            margin: 0.1,
            ..base
        },
    ] {
        assert!(confidence(&better) > c, "{better:?}");
    }
    // A close item holding every query term is a hit at the default
    // threshold; a vague one holding a few is not.
    let sure = Evidence {
        similarity: 0.55,
        coverage: 1.0,
        first_in_both: true,
        margin: 0.05,
    };
    let vague = Evidence {
        similarity: 0.3,
        coverage: 0.3,
        first_in_both: false,
        margin: -0.05,
    };
    assert!(confidence(&sure) >= 0.6 && confidence(&vague) < 0.6);
}
