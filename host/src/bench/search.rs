//! The search service on its own: bulk indexing and query latency over
//! synthetic forum posts for one tenant, without HTTP or a plugin.

use std::time::Instant;

use super::percentiles;
use super::text::Text;
use crate::search::{FieldKind, FieldSpec, IndexSpec, Search, SearchRequest};
use crate::storage::Owner;

/// Indexes `posts` synthetic forum posts for one tenant, then times queries.
pub fn run(posts: usize) -> anyhow::Result<()> {
    let mut text = Text::new();
    let dir = tempfile::tempdir()?;
    let search = Search::new(dir.path().to_path_buf());
    let tenant = crate::ids::TenantId::generate();
    let owner = Owner {
        tenant: &tenant,
        plugin: "forum",
    };
    let spec = IndexSpec {
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
                name: "category".into(),
                kind: FieldKind::Keyword,
            },
            FieldSpec {
                name: "created_at".into(),
                kind: FieldKind::Integer,
            },
        ],
    };
    search.define(owner, "posts", &spec)?;
    let started = Instant::now();
    for i in 0..posts {
        let (title, body) = (text.words(6), text.words(60));
        let mut doc = serde_json::Map::new();
        doc.insert("title".into(), title.into());
        doc.insert("body".into(), body.into());
        doc.insert("category".into(), format!("c{}", i % 20).into());
        doc.insert("created_at".into(), (i as i64).into());
        search.upsert(owner, "posts", &format!("p{i}"), &doc)?;
        if i % 20_000 == 19_999 {
            search.commit_pending();
        }
    }
    search.commit(owner, "posts")?;
    let index_secs = started.elapsed().as_secs_f64();
    let queries = [
        "rust error",
        "async runtime memory",
        "\"component interface\"",
        "plugin AND tenant",
        "linker",
        "cargo crate module",
    ];
    let mut times = Vec::new();
    for round in 0..200 {
        for q in queries {
            let request = SearchRequest {
                query: q.into(),
                limit: 20,
                highlight: vec!["body".into()],
                offset: (round % 3) * 20,
                ..SearchRequest::default()
            };
            let t = Instant::now();
            let page = search.search(owner, "posts", &request)?;
            times.push(t.elapsed().as_micros() as u64);
            anyhow::ensure!(page.total > 0, "query {q} found nothing");
        }
    }
    let p = percentiles(times);
    println!(
        "\n## search ({posts} posts, one tenant; 60-word bodies; top 20 with body snippets)\n"
    );
    println!(
        "indexed in {index_secs:.1} s ({:.0} posts/s); query p50 {:.2} ms, p99 {:.2} ms",
        posts as f64 / index_secs,
        p.p50 / 1000.0,
        p.p99 / 1000.0
    );
    println!(
        "RESULT search_posts={posts} index_posts_per_s={:.0} query_p50_ms={:.3} query_p99_ms={:.3}",
        posts as f64 / index_secs,
        p.p50 / 1000.0,
        p.p99 / 1000.0
    );
    Ok(())
}
