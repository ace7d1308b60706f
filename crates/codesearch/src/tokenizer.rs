//! A tokenizer for code and prose alike: words are runs of letters, digits
//! and `_`; an identifier made of several parts (`useLocalStorage`,
//! `HTTPServer`, `max_retry_count`) yields the whole identifier and then each
//! part, so `local storage` finds `useLocalStorage` and the exact identifier
//! still ranks it first.

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

/// The analyzer name the index registers this tokenizer under.
pub const CODE_TOKENIZER: &str = "weft_code";

#[derive(Clone, Debug, Default)]
pub struct CodeTokenizer {
    tokens: Vec<Token>,
}

#[derive(Debug)]
pub struct CodeTokenStream<'a> {
    tokens: &'a mut Vec<Token>,
    next: usize,
}

impl Tokenizer for CodeTokenizer {
    type TokenStream<'a> = CodeTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> CodeTokenStream<'a> {
        self.tokens.clear();
        let mut position = 0;
        for (start, word) in words(text) {
            let parts = parts(word);
            let whole = Token {
                offset_from: start,
                offset_to: start + word.len(),
                position,
                text: word.to_string(),
                position_length: parts.len().max(1),
            };
            if parts.len() > 1 {
                self.tokens.push(whole);
                for (i, (from, part)) in parts.iter().enumerate() {
                    self.tokens.push(Token {
                        offset_from: start + from,
                        offset_to: start + from + part.len(),
                        position: position + i,
                        text: (*part).to_string(),
                        position_length: 1,
                    });
                }
                position += parts.len();
            } else if !word.trim_matches('_').is_empty() {
                self.tokens.push(Token {
                    text: word.trim_matches('_').to_string(),
                    ..whole
                });
                position += 1;
            }
        }
        CodeTokenStream {
            tokens: &mut self.tokens,
            next: 0,
        }
    }
}

impl TokenStream for CodeTokenStream<'_> {
    fn advance(&mut self) -> bool {
        self.next += 1;
        self.next <= self.tokens.len()
    }

    fn token(&self) -> &Token {
        &self.tokens[self.next - 1]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next - 1]
    }
}

/// Runs of alphanumerics and `_`, with their byte offsets.
fn words(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut rest = text.char_indices().peekable();
    std::iter::from_fn(move || {
        while let Some(&(_, c)) = rest.peek() {
            if c.is_alphanumeric() || c == '_' {
                break;
            }
            rest.next();
        }
        let (start, _) = *rest.peek()?;
        let mut end = start;
        while let Some(&(i, c)) = rest.peek() {
            if !(c.is_alphanumeric() || c == '_') {
                break;
            }
            end = i + c.len_utf8();
            rest.next();
        }
        Some((start, &text[start..end]))
    })
}

/// The parts of an identifier: split at `_`, at a lower-to-upper change
/// (`localStorage`), and before the last capital of a capital run followed
/// by a lower-case letter (`HTTPServer` → `HTTP`, `Server`). Digits stay
/// with what precedes them (`utf8`, `sha256`).
fn parts(word: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = word.char_indices().collect();
    let mut start: Option<usize> = None;
    for (k, &(i, c)) in chars.iter().enumerate() {
        if c == '_' {
            if let Some(s) = start.take() {
                out.push((s, &word[s..i]));
            }
            continue;
        }
        let Some(s) = start else {
            start = Some(i);
            continue;
        };
        let prev = chars[k - 1].1;
        let next_lower = chars.get(k + 1).is_some_and(|&(_, n)| n.is_lowercase());
        let boundary = c.is_uppercase()
            && (prev.is_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_uppercase() && next_lower));
        if boundary {
            out.push((s, &word[s..i]));
            start = Some(i);
        }
    }
    if let Some(s) = start {
        out.push((s, &word[s..]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(input: &str) -> Vec<String> {
        let mut tokenizer = CodeTokenizer::default();
        let mut stream = tokenizer.token_stream(input);
        let mut out = Vec::new();
        while let Some(token) = stream.next() {
            out.push(token.text.clone());
        }
        out
    }

    #[test]
    fn identifiers_yield_themselves_and_their_parts() {
        assert_eq!(
            texts("useLocalStorage(key)"),
            ["useLocalStorage", "use", "Local", "Storage", "key"]
        );
        assert_eq!(texts("HTTPServer"), ["HTTPServer", "HTTP", "Server"]);
        assert_eq!(
            texts("max_retry_count = 3;"),
            ["max_retry_count", "max", "retry", "count", "3"]
        );
        assert_eq!(texts("sha256 utf8"), ["sha256", "utf8"]);
        assert_eq!(texts("__init__ _"), ["init"]);
    }

    #[test]
    fn prose_is_plain_words_with_offsets() {
        let mut tokenizer = CodeTokenizer::default();
        let mut stream = tokenizer.token_stream("Stop the server, cleanly.");
        let mut seen = Vec::new();
        while let Some(t) = stream.next() {
            seen.push((t.text.clone(), t.offset_from, t.position));
        }
        assert_eq!(
            seen,
            [
                ("Stop".into(), 0, 0),
                ("the".into(), 5, 1),
                ("server".into(), 9, 2),
                ("cleanly".into(), 17, 3)
            ]
        );
    }

    #[test]
    fn unicode_words_are_kept_whole() {
        assert_eq!(texts("größe café"), ["größe", "café"]);
    }
}
