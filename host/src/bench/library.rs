//! The code library's search core on its own (no HTTP): embedding speed,
//! indexing throughput, query latency at 1,000 and 100,000 items, the
//! recall of the HNSW graph against exact neighbours, and the share of the
//! held-out queries search-first generation would serve from the library.
//!
//! The large sizes are synthesized from the seed items: variant `i` is
//! seed `i mod n` with a word added to its title and tags and a comment to
//! its code, and its vector is the seed's plus small noise, renormalised
//! (embedding 100,000 texts would take the model most of an hour here).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;
use weft_codesearch::embed::{self, Embedder};
use weft_codesearch::{Doc, Filter, Request, Shard};

use super::percentiles;
use super::text::Text;

#[derive(Deserialize)]
struct Judgement {
    query: String,
    relevant: Vec<String>,
}

fn judgements(root: &Path) -> anyhow::Result<Vec<Judgement>> {
    let mut out = Vec::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(root.join("tests/data/library-eval"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    for p in paths {
        out.extend(serde_json::from_str::<Vec<Judgement>>(
            &std::fs::read_to_string(p)?,
        )?);
    }
    Ok(out)
}

/// A small deterministic generator (xorshift) for the vectors' noise.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % 20_001) as f32 / 10_000.0 - 1.0
    }
}

fn variant(
    seed: &Doc,
    vector: &[f32],
    i: usize,
    text: &mut Text,
    noise: &mut Noise,
) -> (Doc, Arc<[f32]>) {
    let word = text.word();
    let mut doc = seed.clone();
    doc.key = format!("{}~{i}", seed.key);
    doc.title = format!("{} ({word})", seed.title);
    doc.tags.push(word.to_owned());
    doc.code = format!("// variant {i}: {word}\n{}", seed.code);
    let mut v: Vec<f32> = vector.iter().map(|x| x + 0.03 * noise.next()).collect();
    weft_codesearch::vectors::normalize(&mut v);
    (doc, v.into())
}

pub fn run(large: usize) -> anyhow::Result<()> {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let seeds: Vec<Doc> = crate::library::seed::load(&root.join("library"))
        .into_iter()
        .map(|(id, i)| Doc {
            key: id,
            title: i.title,
            description: i.description,
            tags: i.tags,
            language: i.language,
            kind: i.kind,
            code: i.code,
            quality: 0.52,
        })
        .collect();
    let judged = judgements(&root)?;
    let model_dir = std::env::var_os("WEFT_EMBEDDINGS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("data/models/minilm"));
    let model = Embedder::load(&model_dir)
        .map_err(|e| anyhow::anyhow!("the library phase needs the embedding model ({e}); run scripts/fetch-embedding-assets.sh"))?;

    println!(
        "\n## code library ({} seed items, {} held-out queries)\n",
        seeds.len(),
        judged.len()
    );
    let texts: Vec<String> = seeds
        .iter()
        .map(|d| embed::item_text(&d.title, &d.description, &d.tags, &d.code))
        .collect();
    let started = Instant::now();
    let vectors = model.embed(&texts)?;
    let embed_secs = started.elapsed().as_secs_f64();
    let mut query_embed = Vec::new();
    let mut qvectors = Vec::new();
    for j in &judged {
        let t = Instant::now();
        qvectors.push(model.embed(&[j.query.as_str()])?.remove(0));
        query_embed.push(t.elapsed().as_micros() as u64);
    }
    let qe = percentiles(query_embed);
    println!(
        "embedding: items {:.0}/s (batches of 32, up to 256 tokens each); one query p50 {:.2} ms, p99 {:.2} ms",
        seeds.len() as f64 / embed_secs,
        qe.p50 / 1000.0,
        qe.p99 / 1000.0
    );

    for size in [1_000usize, large] {
        if size == 0 {
            continue;
        }
        let shard = Shard::new(2)?;
        let mut text = Text::new();
        let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
        let started = Instant::now();
        for (s, v) in seeds.iter().zip(&vectors) {
            shard.upsert(s, Some(Arc::from(v.as_slice())))?;
        }
        for i in seeds.len()..size {
            let k = i % seeds.len();
            let (doc, v) = variant(&seeds[k], &vectors[k], i, &mut text, &mut noise);
            shard.upsert(&doc, Some(v))?;
        }
        shard.commit()?;
        let index_secs = started.elapsed().as_secs_f64();
        let graph_started = Instant::now();
        let built = shard.maintain(5_000, 100);
        let graph_secs = graph_started.elapsed().as_secs_f64();

        let filter = Filter::default();
        let mut hybrid = Vec::new();
        let mut keyword = Vec::new();
        let mut recall_hits = 0usize;
        let mut recall_total = 0usize;
        for round in 0..3 {
            for (j, q) in judged.iter().zip(&qvectors) {
                let mut req = Request {
                    text: &j.query,
                    embedding: Some(q),
                    filter: &filter,
                    semantic_ratio: weft_codesearch::DEFAULT_SEMANTIC_RATIO,
                    limit: 10,
                    explain: false,
                    exact: false,
                };
                let t = Instant::now();
                let found = weft_codesearch::search(&[&shard], &req)?;
                hybrid.push(t.elapsed().as_micros() as u64);
                anyhow::ensure!(!found.is_empty(), "{:?} found nothing", j.query);
                req.semantic_ratio = 0.0;
                let t = Instant::now();
                weft_codesearch::search(&[&shard], &req)?;
                keyword.push(t.elapsed().as_micros() as u64);
                if round == 0 && built {
                    req.semantic_ratio = 1.0;
                    let approx: Vec<String> = weft_codesearch::search(&[&shard], &req)?
                        .into_iter()
                        .map(|m| m.key)
                        .collect();
                    req.exact = true;
                    let exact: Vec<String> = weft_codesearch::search(&[&shard], &req)?
                        .into_iter()
                        .map(|m| m.key)
                        .collect();
                    recall_hits += exact.iter().filter(|k| approx.contains(k)).count();
                    recall_total += exact.len();
                }
            }
        }
        let h = percentiles(hybrid);
        let k = percentiles(keyword);
        let recall = if recall_total > 0 {
            format!("{:.3}", recall_hits as f64 / recall_total as f64)
        } else {
            "exact (no graph)".into()
        };
        println!(
            "{size} items: indexed {:.0} items/s (text + vectors){}; hybrid query p50 {:.2} ms, p99 {:.2} ms (+ query embedding {:.2} ms p50); keyword only p50 {:.2} ms, p99 {:.2} ms; graph recall@10 {recall}",
            size as f64 / index_secs,
            if built {
                format!(", HNSW built in {graph_secs:.1} s")
            } else {
                String::new()
            },
            h.p50 / 1000.0,
            h.p99 / 1000.0,
            qe.p50 / 1000.0,
            k.p50 / 1000.0,
            k.p99 / 1000.0,
        );
        println!(
            "RESULT library_items={size} index_items_per_s={:.0} hnsw_build_s={graph_secs:.1} hybrid_p50_ms={:.3} hybrid_p99_ms={:.3} keyword_p50_ms={:.3} keyword_p99_ms={:.3} graph_recall={recall}",
            size as f64 / index_secs,
            h.p50 / 1000.0,
            h.p99 / 1000.0,
            k.p50 / 1000.0,
            k.p99 / 1000.0,
        );
    }

    // The hit rate search-first generation would have on these queries
    // over the seed library: served when the best match's confidence
    // reaches the default threshold; correct when that match is judged
    // relevant.
    let shard = Shard::new(1)?;
    for (s, v) in seeds.iter().zip(&vectors) {
        shard.upsert(s, Some(Arc::from(v.as_slice())))?;
    }
    shard.commit()?;
    let threshold = crate::library::LibraryConfig::default().hit_threshold;
    let (mut served, mut correct) = (0usize, 0usize);
    let filter = Filter::default();
    for (j, q) in judged.iter().zip(&qvectors) {
        let req = Request {
            text: &j.query,
            embedding: Some(q),
            filter: &filter,
            semantic_ratio: weft_codesearch::DEFAULT_SEMANTIC_RATIO,
            limit: 5,
            explain: false,
            exact: true,
        };
        let found = weft_codesearch::search(&[&shard], &req)?;
        if let Some(top) = found.first().filter(|m| m.confidence >= threshold) {
            served += 1;
            if j.relevant.contains(&top.key) {
                correct += 1;
            }
        }
    }
    let n = judged.len() as f64;
    println!(
        "hit rate on the held-out queries at threshold {threshold}: {:.1} % served from the library, {:.1} % served with a relevant item",
        100.0 * served as f64 / n,
        100.0 * correct as f64 / n
    );
    println!(
        "RESULT library_hit_rate={:.3} library_correct_hit_rate={:.3}",
        served as f64 / n,
        correct as f64 / n
    );
    Ok(())
}
