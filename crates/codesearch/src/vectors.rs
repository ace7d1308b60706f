//! The semantic half: nearest neighbours among unit-length embeddings by
//! cosine similarity. Below a configurable size every vector is compared
//! (exact, and fast enough: 5,000 × 384 dimensions is ~2 M multiply-adds);
//! past it an HNSW graph (instant-distance) answers, with vectors added
//! since the graph was built compared exactly until the next build.

use std::collections::HashMap;
use std::sync::Arc;

use instant_distance::{Builder, HnswMap, Search};

/// A unit vector; distance is 1 − cosine similarity.
#[derive(Clone, Debug)]
pub struct Point(pub Arc<[f32]>);

impl instant_distance::Point for Point {
    fn distance(&self, other: &Self) -> f32 {
        1.0 - dot(&self.0, &other.0)
    }
}

pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Scales `v` to unit length (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let norm = dot(v, v).sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// A graph built over the vectors of slots `0..covers`.
pub struct Graph {
    map: HnswMap<Point, usize>,
    covers: usize,
}

impl Graph {
    /// Builds the graph for `points` (slot, vector); slow (seconds per
    /// 10,000 vectors on two cores), so callers run it off the request path.
    pub fn build(points: Vec<(usize, Point)>, covers: usize, ef_search: usize) -> Self {
        let (slots, points): (Vec<usize>, Vec<Point>) = points.into_iter().unzip();
        let map = Builder::default()
            .ef_search(ef_search)
            .seed(0x5eed)
            .build(points, slots);
        Self { map, covers }
    }
}

#[derive(Default)]
pub struct VectorIndex {
    keys: Vec<String>,
    vectors: Vec<Point>,
    live: Vec<bool>,
    slot_of: HashMap<String, usize>,
    graph: Option<Graph>,
    dead: usize,
}

impl VectorIndex {
    /// Sets the vector of `key` (replacing an older one).
    pub fn upsert(&mut self, key: &str, vector: Arc<[f32]>) {
        self.delete(key);
        let slot = self.keys.len();
        self.keys.push(key.to_owned());
        self.vectors.push(Point(vector));
        self.live.push(true);
        self.slot_of.insert(key.to_owned(), slot);
    }

    pub fn delete(&mut self, key: &str) {
        if let Some(slot) = self.slot_of.remove(key) {
            self.live[slot] = false;
            self.dead += 1;
        }
    }

    pub fn len(&self) -> usize {
        self.slot_of.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slot_of.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&[f32]> {
        self.slot_of.get(key).map(|&s| &*self.vectors[s].0)
    }

    /// Whether the graph is missing or stale for an index of this size:
    /// at `threshold` vectors or more, a graph should exist, and one in
    /// ten of its slots may be dead or unindexed before it is rebuilt.
    pub fn needs_graph(&self, threshold: usize) -> bool {
        if self.len() < threshold {
            return false;
        }
        match &self.graph {
            None => true,
            Some(g) => (self.keys.len() - g.covers) + self.dead > g.covers / 10,
        }
    }

    /// The live vectors a new graph would cover, and how many slots that is.
    pub fn snapshot(&self) -> (Vec<(usize, Point)>, usize) {
        let points = (0..self.keys.len())
            .filter(|&s| self.live[s])
            .map(|s| (s, self.vectors[s].clone()))
            .collect();
        (points, self.keys.len())
    }

    /// Installs a graph built from [`VectorIndex::snapshot`].
    pub fn install(&mut self, graph: Graph) {
        self.dead = (0..graph.covers).filter(|&s| !self.live[s]).count();
        self.graph = Some(graph);
    }

    pub fn has_graph(&self) -> bool {
        self.graph.is_some()
    }

    /// The `k` live vectors most similar to `query` whose key `accept`s,
    /// most similar first, with their cosine similarity. `exact` forces a
    /// full comparison even when a graph exists.
    pub fn nearest(
        &self,
        query: &[f32],
        k: usize,
        accept: &dyn Fn(&str) -> bool,
        exact: bool,
    ) -> Vec<(String, f32)> {
        if k == 0 {
            return Vec::new();
        }
        let mut best: Vec<(usize, f32)> = Vec::new();
        let mut from = 0;
        if let (Some(graph), false) = (&self.graph, exact) {
            let mut search = Search::default();
            let point = Point(query.into());
            for item in graph.map.search(&point, &mut search) {
                let slot = *item.value;
                if self.live[slot] && accept(&self.keys[slot]) {
                    best.push((slot, 1.0 - item.distance));
                }
            }
            from = graph.covers;
            // A narrow filter can leave the graph's candidates short of k:
            // then the comparison is exact after all.
            if best.len() < k && best.len() < self.len() {
                best.clear();
                from = 0;
            }
        }
        for slot in from..self.keys.len() {
            if self.live[slot] && accept(&self.keys[slot]) {
                best.push((slot, dot(query, &self.vectors[slot].0)));
            }
        }
        best.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        best.dedup_by_key(|(slot, _)| *slot);
        best.truncate(k);
        best.into_iter()
            .map(|(slot, sim)| (self.keys[slot].clone(), sim))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(seed: u64, dims: usize) -> Arc<[f32]> {
        // A small xorshift: deterministic pseudo-random vectors.
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut v: Vec<f32> = (0..dims)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 2_000) as f32 / 1_000.0 - 1.0
            })
            .collect();
        normalize(&mut v);
        v.into()
    }

    #[test]
    fn exact_and_graph_agree_on_the_nearest() {
        let mut index = VectorIndex::default();
        for i in 0..2_000 {
            index.upsert(&format!("k{i}"), unit(i, 32));
        }
        let query = unit(77, 32);
        let exact = index.nearest(&query, 10, &|_| true, true);
        assert_eq!(exact[0].0, "k77");
        assert!((exact[0].1 - 1.0).abs() < 1e-5);
        assert!(index.needs_graph(1_000));
        let (points, covers) = index.snapshot();
        index.install(Graph::build(points, covers, 100));
        assert!(!index.needs_graph(1_000));
        let approx = index.nearest(&query, 10, &|_| true, false);
        let overlap = approx.iter().filter(|a| exact.contains(a)).count();
        assert!(overlap >= 8, "graph recall@10 {overlap}/10");
        assert_eq!(approx[0].0, "k77");
    }

    #[test]
    fn updates_deletes_and_filters_hold_with_a_graph() {
        let mut index = VectorIndex::default();
        for i in 0..500 {
            index.upsert(&format!("k{i}"), unit(i, 16));
        }
        let (points, covers) = index.snapshot();
        index.install(Graph::build(points, covers, 64));
        // k5 now points elsewhere; k6 is gone; k9000 came after the graph.
        index.upsert("k5", unit(9_999, 16));
        index.delete("k6");
        index.upsert("k9000", unit(6, 16));
        let near6 = index.nearest(&unit(6, 16), 3, &|_| true, false);
        assert_eq!(near6[0].0, "k9000");
        assert!(near6.iter().all(|(k, _)| k != "k6"));
        let near5 = index.nearest(&unit(5, 16), 500, &|_| true, false);
        assert!(near5.first().is_none_or(|(k, s)| k != "k5" || *s < 0.99));
        let only_odd = index.nearest(&unit(3, 16), 5, &|k| k.ends_with('3'), false);
        assert_eq!(only_odd.len(), 5);
        assert!(only_odd.iter().all(|(k, _)| k.ends_with('3')));
        assert_eq!(only_odd[0].0, "k3");
    }
}
