//! An incremental server-sent-events parser.
//!
//! All three providers stream with SSE; chunk boundaries from the network
//! fall anywhere (inside a line, between `\r` and `\n`), so bytes are
//! buffered until a whole line is there.

use crate::error::{Result, WireError};

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct SseEvent {
    /// The `event:` field; empty when the server sent none (OpenAI, Gemini).
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Longest line accepted; a server that never ends a line must not make us
/// buffer without bound.
const MAX_LINE: usize = 16 * 1024 * 1024;

#[derive(Debug, Default)]
pub(crate) struct SseParser {
    buf: Vec<u8>,
    /// Start of the unparsed part of `buf`.
    pos: usize,
    event: String,
    data: String,
    has_data: bool,
}

impl SseParser {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Appends bytes received from the network.
    pub(crate) fn push(&mut self, chunk: &[u8]) {
        // Drop what has been parsed before growing, so the buffer stays
        // about one chunk long.
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete event, if the buffered bytes hold one.
    pub(crate) fn next_event(&mut self) -> Result<Option<SseEvent>> {
        while let Some(line) = self.next_line(false)? {
            if let Some(event) = self.handle_line(&line) {
                return Ok(Some(event));
            }
        }
        Ok(None)
    }

    /// Call at end of input: the remaining events, including a last one
    /// that was not followed by a blank line (lenient, because some
    /// OpenAI-compatible servers end on `data: [DONE]\n`).
    pub(crate) fn finish(&mut self) -> Result<Vec<SseEvent>> {
        let mut out = Vec::new();
        while let Some(line) = self.next_line(true)? {
            if let Some(event) = self.handle_line(&line) {
                out.push(event);
            }
        }
        if let Some(event) = self.dispatch() {
            out.push(event);
        }
        Ok(out)
    }

    fn next_line(&mut self, at_eof: bool) -> Result<Option<String>> {
        let rest = &self.buf[self.pos..];
        let Some(end) = rest.iter().position(|&b| b == b'\n' || b == b'\r') else {
            if rest.len() > MAX_LINE {
                return Err(WireError::protocol("event stream line too long"));
            }
            if at_eof && !rest.is_empty() {
                let line = decode(rest)?;
                self.pos = self.buf.len();
                return Ok(Some(line));
            }
            return Ok(None);
        };
        let terminator = if rest[end] == b'\r' {
            match rest.get(end + 1) {
                Some(b'\n') => 2,
                Some(_) => 1,
                // A lone `\r` at the end may be the first half of `\r\n`.
                None if !at_eof => return Ok(None),
                None => 1,
            }
        } else {
            1
        };
        let line = decode(&rest[..end])?;
        self.pos += end + terminator;
        Ok(Some(line))
    }

    fn handle_line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => value.clone_into(&mut self.event),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            // `id`, `retry` and unknown fields carry nothing we use.
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = std::mem::take(&mut self.event);
        if !self.has_data {
            return None;
        }
        self.has_data = false;
        Some(SseEvent {
            event,
            data: std::mem::take(&mut self.data),
        })
    }
}

fn decode(bytes: &[u8]) -> Result<String> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| WireError::protocol("event stream is not valid UTF-8"))?;
    // A byte-order mark may open the stream.
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[u8], chunk: usize) -> Vec<SseEvent> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for piece in input.chunks(chunk) {
            p.push(piece);
            while let Some(e) = p.next_event().expect("parse") {
                out.push(e);
            }
        }
        out.extend(p.finish().expect("finish"));
        out
    }

    #[test]
    fn splits_anywhere_and_handles_all_line_endings() {
        let input = b"event: a\r\ndata: one\r\n\r\n: comment\ndata:two\ndata: 2b\n\nevent: c\rdata: {\"x\":1}\r\r";
        let want = vec![
            SseEvent {
                event: "a".into(),
                data: "one".into(),
            },
            SseEvent {
                event: String::new(),
                data: "two\n2b".into(),
            },
            SseEvent {
                event: "c".into(),
                data: "{\"x\":1}".into(),
            },
        ];
        for chunk in 1..input.len() {
            assert_eq!(all(input, chunk), want, "chunk size {chunk}");
        }
    }

    #[test]
    fn last_event_without_blank_line_is_kept_at_eof() {
        assert_eq!(
            all(b"data: [DONE]", 4),
            vec![SseEvent {
                event: String::new(),
                data: "[DONE]".into()
            }]
        );
    }

    #[test]
    fn event_without_data_is_not_dispatched() {
        assert!(all(b"event: ping\n\n", 3).is_empty());
    }

    #[test]
    fn invalid_utf8_is_a_protocol_error() {
        let mut p = SseParser::new();
        p.push(b"data: \xff\xfe\n\n");
        let err = p.next_event().expect_err("invalid");
        assert_eq!(err.kind, crate::ErrorKind::Protocol);
    }
}
