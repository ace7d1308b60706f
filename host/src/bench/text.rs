//! Synthetic forum text: words of a fixed vocabulary with a skewed
//! (Zipf-like) pick, so that some words are common and some rare, like real
//! text; the same sequence on every run.

/// The vocabulary.
pub const WORDS: &[&str] = &[
    "rust",
    "wasm",
    "plugin",
    "tenant",
    "error",
    "handling",
    "async",
    "runtime",
    "memory",
    "limit",
    "forum",
    "topic",
    "reply",
    "search",
    "index",
    "query",
    "database",
    "postgres",
    "sqlite",
    "cache",
    "latency",
    "throughput",
    "deploy",
    "server",
    "client",
    "request",
    "response",
    "header",
    "body",
    "stream",
    "buffer",
    "thread",
    "lock",
    "channel",
    "future",
    "trait",
    "generic",
    "lifetime",
    "borrow",
    "compile",
    "cargo",
    "crate",
    "module",
    "function",
    "closure",
    "iterator",
    "vector",
    "string",
    "option",
    "result",
    "panic",
    "trap",
    "fuel",
    "epoch",
    "component",
    "interface",
    "world",
    "import",
    "export",
    "binding",
    "guest",
    "host",
    "linker",
    "store",
    "instance",
    "table",
    "global",
];

/// A deterministic word generator (xorshift64).
#[derive(Debug, Clone)]
pub struct Text {
    seed: u64,
}

impl Default for Text {
    fn default() -> Self {
        Self::new()
    }
}

impl Text {
    /// The generator at its fixed start.
    pub fn new() -> Self {
        Self {
            seed: 0x2545_f491_4f6c_dd1d,
        }
    }

    /// A generator of its own sequence, for the `n`th of several writers.
    pub fn nth(n: u64) -> Self {
        let mut text = Self::new();
        text.seed ^= n.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        text
    }

    fn next(&mut self) -> u64 {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        self.seed
    }

    /// One word.
    pub fn word(&mut self) -> &'static str {
        let r = (self.next() % 10_000) as f64 / 10_000.0;
        WORDS[((r * r * r) * WORDS.len() as f64) as usize % WORDS.len()]
    }

    /// `n` words separated by spaces.
    pub fn words(&mut self, n: usize) -> String {
        (0..n).map(|_| self.word()).collect::<Vec<_>>().join(" ")
    }
}
