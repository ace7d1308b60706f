//! One call's log: `log` lines and captured stdout/stderr, capped in bytes.
//! Past the cap, output is counted and dropped — never an error, because
//! Rust's `println!` panics when stdout fails.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// A line of plugin output.
#[derive(Debug, Clone)]
pub struct LogLine {
    /// `trace`..`error` for log lines, `stdout`/`stderr` for captured output.
    pub stream: &'static str,
    pub message: String,
}

#[derive(Debug, Default)]
struct Inner {
    lines: Vec<LogLine>,
    kept_bytes: usize,
    dropped_bytes: u64,
    cap: usize,
}

/// Shared by the `log` import and the call's stdout/stderr.
#[derive(Debug, Clone, Default)]
pub struct LogBuffer(Arc<Mutex<Inner>>);

impl LogBuffer {
    /// A buffer keeping at most `cap` bytes.
    pub fn new(cap: usize) -> Self {
        Self(Arc::new(Mutex::new(Inner {
            cap,
            ..Inner::default()
        })))
    }

    /// Appends `bytes` as one line of `stream` if it fits.
    pub fn push(&self, stream: &'static str, bytes: &[u8]) {
        let mut inner = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let room = inner.cap.saturating_sub(inner.kept_bytes);
        if room == 0 {
            inner.dropped_bytes += bytes.len() as u64;
            return;
        }
        let take = bytes.len().min(room);
        inner.kept_bytes += take;
        inner.dropped_bytes += (bytes.len() - take) as u64;
        let message = String::from_utf8_lossy(&bytes[..take])
            .trim_end_matches('\n')
            .to_owned();
        inner.lines.push(LogLine { stream, message });
    }

    /// Takes the kept lines and the number of dropped bytes.
    pub fn take(&self) -> (Vec<LogLine>, u64) {
        let mut inner = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let dropped = std::mem::take(&mut inner.dropped_bytes);
        inner.kept_bytes = 0;
        (std::mem::take(&mut inner.lines), dropped)
    }

    /// A WASI stdout/stderr that writes into this buffer.
    pub fn output(&self, stream: &'static str) -> CapturedOutput {
        CapturedOutput {
            buffer: self.clone(),
            stream,
        }
    }
}

/// A WASI output stream captured into a [`LogBuffer`].
#[derive(Debug, Clone)]
pub struct CapturedOutput {
    buffer: LogBuffer,
    stream: &'static str,
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(tokio::io::sink())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.buffer.push(self.stream, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_past_the_cap_is_counted_not_kept() {
        let buf = LogBuffer::new(10);
        buf.push("info", b"hello\n");
        buf.push("stdout", b"0123456789");
        buf.push("stdout", b"more");
        let (lines, dropped) = buf.take();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].message, "hello");
        assert_eq!(lines[1].message, "0123");
        assert_eq!(dropped, 6 + 4);
    }
}
