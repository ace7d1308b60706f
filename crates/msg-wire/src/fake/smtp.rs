//! A fake SMTP relay (RFC 5321) on a plain TCP socket: EHLO/HELO, AUTH
//! PLAIN/LOGIN, MAIL, RCPT, DATA with dot-unstuffing, RSET, NOOP, QUIT.
//! Replies are buffered and flushed only when the client has nothing more
//! in flight, so pipelining clients get one write per batch.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

use super::mime::{self, MimePart};
use super::{Accepted, Ledger, Server};
use crate::smtp::{SmtpConfig, SmtpTls};

/// Longest command line accepted, in bytes (RFC 5321 says 512; AUTH
/// responses can be longer).
const MAX_COMMAND: u64 = 4096;
/// Largest message accepted, in bytes.
const MAX_MESSAGE: usize = 32 * 1024 * 1024;
/// Socket buffer sizes; messages of a few kilobytes fit whole.
const BUFFER: usize = 64 * 1024;

/// A running fake SMTP relay; it stops when dropped.
///
/// Without [`FakeSmtp::with_auth`] every client may send; with it, MAIL
/// before a successful AUTH gets `530`, wrong credentials `535`. The fake
/// offers no STARTTLS (`454` if asked), so senders use
/// [`SmtpTls::None`]. Scripted trouble: [`FakeSmtp::fail_next`] answers
/// `451` at the end of DATA (the message is not kept),
/// [`FakeSmtp::refuse_recipient`] answers `550 5.1.1` at RCPT.
pub struct FakeSmtp {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _task: Server,
}

impl std::fmt::Debug for FakeSmtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeSmtp")
            .field("addr", &self.addr)
            .finish()
    }
}

/// One message the fake accepted: the envelope and the DATA as received
/// (dot-unstuffed, CRLF line ends, without the final `.` line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpMessage {
    /// The MAIL FROM address (without angle brackets; empty for `<>`).
    pub mail_from: String,
    /// The RCPT TO addresses that were accepted.
    pub rcpt_to: Vec<String>,
    /// The raw message.
    pub data: Vec<u8>,
}

impl SmtpMessage {
    /// The top-level headers, unfolded, with RFC 2047 encoded words
    /// decoded.
    pub fn headers(&self) -> Vec<(String, String)> {
        let text = String::from_utf8_lossy(&self.data);
        let (headers, _) = mime::split(&text);
        headers
            .into_iter()
            .map(|(name, value)| {
                let decoded = mime::decode_words(&value);
                (name, decoded)
            })
            .collect()
    }

    /// The first top-level header named `name` (case-insensitive), decoded.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers()
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The decoded `Subject`.
    pub fn subject(&self) -> Option<String> {
        self.header("Subject")
    }

    /// Everything after the header block, still encoded.
    pub fn raw_body(&self) -> String {
        let text = String::from_utf8_lossy(&self.data);
        let (_, body) = mime::split(&text);
        body.to_owned()
    }

    /// The leaf parts (one for a single-part message), decoded.
    pub fn parts(&self) -> Vec<MimePart> {
        let text = String::from_utf8_lossy(&self.data);
        let (headers, body) = mime::split(&text);
        mime::leaf_parts(&headers, body)
    }

    /// The decoded body of the first `text/plain` part.
    pub fn text(&self) -> Option<String> {
        self.part_body("text/plain")
    }

    /// The decoded body of the first `text/html` part.
    pub fn html(&self) -> Option<String> {
        self.part_body("text/html")
    }

    fn part_body(&self, content_type: &str) -> Option<String> {
        self.parts()
            .into_iter()
            .find(|p| p.content_type == content_type)
            .map(|p| p.body)
    }
}

struct Shared {
    ledger: Ledger<SmtpMessage>,
    auth: Mutex<Option<(String, String)>>,
    connections: AtomicUsize,
}

impl Shared {
    fn auth(&self) -> MutexGuard<'_, Option<(String, String)>> {
        self.auth.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl FakeSmtp {
    /// Starts the fake on `127.0.0.1` at a free port.
    ///
    /// # Panics
    ///
    /// If no loopback port can be bound; [`FakeSmtp::try_start`] returns
    /// the error instead.
    pub async fn start() -> Self {
        match Self::try_start().await {
            Ok(fake) => fake,
            Err(e) => panic!("fake SMTP server cannot bind 127.0.0.1: {e}"),
        }
    }

    /// Starts the fake on `127.0.0.1` at a free port.
    ///
    /// # Errors
    ///
    /// If no loopback port can be bound.
    pub async fn try_start() -> std::io::Result<Self> {
        let listener = Server::bind().await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            ledger: Ledger::new(),
            auth: Mutex::new(None),
            connections: AtomicUsize::new(0),
        });
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(Self {
            addr,
            shared,
            _task: Server { addr, task },
        })
    }

    /// Requires AUTH PLAIN or LOGIN with exactly these credentials from now
    /// on.
    pub fn with_auth(self, username: impl Into<String>, password: impl Into<String>) -> Self {
        *self.shared.auth() = Some((username.into(), password.into()));
        self
    }

    /// Stops keeping messages (they are still counted), for long runs.
    pub fn without_recording(self) -> Self {
        self.shared.ledger.set_recording(false);
        self
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `smtp://127.0.0.1:{port}`, for logs and configuration strings.
    pub fn base_url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// A sender configuration for this fake: plain text, its credentials if
    /// any, a 5 s timeout.
    pub fn config(&self) -> SmtpConfig {
        let config = SmtpConfig::new(self.addr.ip().to_string(), self.addr.port(), SmtpTls::None)
            .with_timeout(std::time::Duration::from_secs(5))
            .with_hello_name("weft.test");
        match self.shared.auth().clone() {
            Some((user, password)) => config.with_credentials(user, password),
            None => config,
        }
    }

    /// Answers `451 4.3.0` at the end of DATA for the next `times`
    /// messages; they are read whole but not kept.
    pub fn fail_next(&self, times: usize) {
        self.shared.ledger.fail_next(times, 451);
    }

    /// Answers `550 5.1.1` to `RCPT TO:<address>` from now on.
    pub fn refuse_recipient(&self, address: impl Into<String>) {
        self.shared.ledger.refuse(address.into());
    }

    /// The messages accepted so far, oldest first.
    pub fn accepted(&self) -> Vec<SmtpMessage> {
        self.shared
            .ledger
            .accepted()
            .into_iter()
            .map(|a| a.message)
            .collect()
    }

    /// How many messages were accepted (also without recording).
    pub fn accepted_count(&self) -> usize {
        self.shared.ledger.accepted_count()
    }

    /// How many DATA transfers ended, accepted or failed.
    pub fn calls(&self) -> usize {
        self.shared.ledger.calls()
    }

    /// How many TCP connections were made.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// Forgets messages, counts and scripted trouble (credentials and the
    /// recording setting stay; the connection count too).
    pub fn reset(&self) {
        self.shared.ledger.reset();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        shared.connections.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            // A client that goes away mid-session is not an error here.
            let _ = Session::new(shared, stream).run().await;
        });
    }
}

/// One client's SMTP session.
struct Session {
    shared: Arc<Shared>,
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    /// Replies not yet written.
    out: Vec<u8>,
    greeted: bool,
    authenticated: bool,
    mail_from: Option<String>,
    rcpt_to: Vec<String>,
}

impl Session {
    fn new(shared: Arc<Shared>, stream: TcpStream) -> Self {
        let (read, writer) = stream.into_split();
        Self {
            shared,
            reader: BufReader::with_capacity(BUFFER, read),
            writer,
            out: Vec::with_capacity(512),
            greeted: false,
            authenticated: false,
            mail_from: None,
            rcpt_to: Vec::new(),
        }
    }

    async fn run(mut self) -> std::io::Result<()> {
        self.reply("220 fake-smtp ESMTP ready");
        let mut line = Vec::with_capacity(512);
        loop {
            // Write once the client has no more commands buffered: one
            // write per pipelined batch.
            if self.reader.buffer().is_empty() {
                self.flush().await?;
            }
            let Some(command) = self.read_line(&mut line).await? else {
                return Ok(());
            };
            if let Next::Quit = self.command(&command).await? {
                return self.flush().await;
            }
        }
    }

    /// The next command line without its line end; `None` at end of input.
    async fn read_line(&mut self, line: &mut Vec<u8>) -> std::io::Result<Option<String>> {
        loop {
            line.clear();
            let n = (&mut self.reader)
                .take(MAX_COMMAND)
                .read_until(b'\n', line)
                .await?;
            if n == 0 {
                return Ok(None);
            }
            if line.ends_with(b"\n") {
                let text = String::from_utf8_lossy(line);
                return Ok(Some(text.trim_end_matches(['\r', '\n']).to_owned()));
            }
            // Skip the rest of an overlong line.
            let mut rest = Vec::new();
            self.reader.read_until(b'\n', &mut rest).await?;
            self.reply("500 5.5.2 Error: line too long");
        }
    }

    fn reply(&mut self, line: &str) {
        self.out.extend_from_slice(line.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            self.writer.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    fn reset_transaction(&mut self) {
        self.mail_from = None;
        self.rcpt_to.clear();
    }

    async fn command(&mut self, line: &str) -> std::io::Result<Next> {
        let (verb, argument) = match line.split_once(' ') {
            Some((verb, argument)) => (verb.to_ascii_uppercase(), argument.trim()),
            None => (line.to_ascii_uppercase(), ""),
        };
        match verb.as_str() {
            "EHLO" => {
                self.greeted = true;
                self.reset_transaction();
                self.reply("250-fake-smtp greets you");
                self.reply("250-PIPELINING");
                self.reply("250-8BITMIME");
                self.reply("250-SMTPUTF8");
                self.reply(&format!("250-SIZE {MAX_MESSAGE}"));
                if self.shared.auth().is_some() {
                    self.reply("250-AUTH PLAIN LOGIN");
                }
                self.reply("250 ENHANCEDSTATUSCODES");
            }
            "HELO" => {
                self.greeted = true;
                self.reset_transaction();
                self.reply("250 fake-smtp");
            }
            "AUTH" => self.auth(argument).await?,
            "MAIL" => self.mail(argument),
            "RCPT" => self.rcpt(argument),
            "DATA" => self.data().await?,
            "RSET" => {
                self.reset_transaction();
                self.reply("250 2.0.0 Ok");
            }
            "NOOP" => self.reply("250 2.0.0 Ok"),
            "VRFY" => self.reply("252 2.0.0 Cannot VRFY user"),
            "STARTTLS" => self.reply("454 4.7.0 TLS not available"),
            "QUIT" => {
                self.reply("221 2.0.0 Bye");
                return Ok(Next::Quit);
            }
            _ => self.reply("502 5.5.2 Error: command not recognized"),
        }
        Ok(Next::Continue)
    }

    /// `AUTH PLAIN [initial]` or `AUTH LOGIN [user]`.
    async fn auth(&mut self, argument: &str) -> std::io::Result<()> {
        let Some(expected) = self.shared.auth().clone() else {
            self.reply("503 5.5.1 Error: authentication not enabled");
            return Ok(());
        };
        if !self.greeted {
            self.reply("503 5.5.1 Error: send EHLO first");
            return Ok(());
        }
        if self.authenticated {
            self.reply("503 5.5.1 Error: already authenticated");
            return Ok(());
        }
        let (mechanism, initial) = match argument.split_once(' ') {
            Some((mechanism, initial)) => (mechanism.to_ascii_uppercase(), Some(initial.trim())),
            None => (argument.to_ascii_uppercase(), None),
        };
        let credentials = match mechanism.as_str() {
            "PLAIN" => {
                let response = match initial {
                    Some(initial) => initial.to_owned(),
                    None => match self.challenge("").await? {
                        Some(response) => response,
                        None => return Ok(()),
                    },
                };
                // authzid NUL authcid NUL password
                decode(&response).and_then(|plain| {
                    let mut fields = plain.split('\0');
                    let _authzid = fields.next()?;
                    Some((fields.next()?.to_owned(), fields.next()?.to_owned()))
                })
            }
            "LOGIN" => {
                let user = match initial {
                    Some(initial) => Some(initial.to_owned()),
                    None => self.challenge("VXNlcm5hbWU6").await?,
                };
                let Some(user) = user else { return Ok(()) };
                let Some(password) = self.challenge("UGFzc3dvcmQ6").await? else {
                    return Ok(());
                };
                decode(&user).zip(decode(&password))
            }
            _ => {
                self.reply("504 5.5.4 Unrecognized authentication type");
                return Ok(());
            }
        };
        match credentials {
            Some(given) if given == expected => {
                self.authenticated = true;
                self.reply("235 2.7.0 Authentication successful");
            }
            Some(_) => self.reply("535 5.7.8 Error: authentication failed"),
            None => self.reply("501 5.5.2 Error: invalid authentication data"),
        }
        Ok(())
    }

    /// Sends a `334` challenge and reads the response line; `None` if the
    /// client cancelled (`*`) or went away.
    async fn challenge(&mut self, prompt: &str) -> std::io::Result<Option<String>> {
        self.reply(&format!("334 {prompt}"));
        self.flush().await?;
        let mut line = Vec::new();
        match self.read_line(&mut line).await? {
            Some(response) if response == "*" => {
                self.reply("501 5.7.0 Authentication aborted");
                Ok(None)
            }
            Some(response) => Ok(Some(response)),
            None => Ok(None),
        }
    }

    fn mail(&mut self, argument: &str) {
        if !self.greeted {
            return self.reply("503 5.5.1 Error: send HELO/EHLO first");
        }
        if self.shared.auth().is_some() && !self.authenticated {
            return self.reply("530 5.7.0 Authentication required");
        }
        if self.mail_from.is_some() {
            return self.reply("503 5.5.1 Error: nested MAIL command");
        }
        match path_argument(argument, "FROM:") {
            Some(address) => {
                self.mail_from = Some(address);
                self.reply("250 2.1.0 Ok");
            }
            None => self.reply("501 5.5.4 Syntax: MAIL FROM:<address>"),
        }
    }

    fn rcpt(&mut self, argument: &str) {
        if self.mail_from.is_none() {
            return self.reply("503 5.5.1 Error: need MAIL command");
        }
        match path_argument(argument, "TO:") {
            Some(address) if address.is_empty() => {
                self.reply("501 5.1.3 Bad recipient address syntax");
            }
            Some(address) if self.shared.ledger.is_refused(&address) => {
                self.reply(&format!(
                    "550 5.1.1 <{address}>: Recipient address rejected: User unknown"
                ));
            }
            Some(address) => {
                self.rcpt_to.push(address);
                self.reply("250 2.1.5 Ok");
            }
            None => self.reply("501 5.5.4 Syntax: RCPT TO:<address>"),
        }
    }

    /// Reads the message up to the `.` line, undoing dot-stuffing, then
    /// accepts it or answers the scripted failure.
    async fn data(&mut self) -> std::io::Result<()> {
        if self.rcpt_to.is_empty() {
            self.reply("503 5.5.1 Error: need RCPT command");
            return Ok(());
        }
        self.reply("354 End data with <CR><LF>.<CR><LF>");
        // The client waits for the 354 before sending the message.
        self.flush().await?;
        let mut data = Vec::with_capacity(8 * 1024);
        let mut too_big = false;
        let mut line = Vec::with_capacity(1024);
        loop {
            line.clear();
            if self.reader.read_until(b'\n', &mut line).await? == 0 {
                // The client went away mid-message.
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            if line == b".\r\n" || line == b".\n" {
                break;
            }
            let unstuffed = line.strip_prefix(b".").unwrap_or(&line);
            if data.len() + unstuffed.len() > MAX_MESSAGE {
                too_big = true;
            } else {
                data.extend_from_slice(unstuffed);
            }
        }
        let mail_from = self.mail_from.take().unwrap_or_default();
        let rcpt_to = std::mem::take(&mut self.rcpt_to);
        let ledger = &self.shared.ledger;
        ledger.count_call();
        if too_big {
            self.reply("552 5.3.4 Error: message too big");
        } else if ledger.scripted_failure().is_some() {
            self.reply("451 4.3.0 Error: temporary failure, try again later");
        } else {
            let id = super::random_hex(6).to_ascii_uppercase();
            ledger.accept(Accepted {
                provider_id: id.clone(),
                message: SmtpMessage {
                    mail_from,
                    rcpt_to,
                    data,
                },
                raw: String::new(),
            });
            self.reply(&format!("250 2.0.0 Ok: queued as {id}"));
        }
        Ok(())
    }
}

/// Base64 to text.
fn decode(text: &str) -> Option<String> {
    String::from_utf8(STANDARD.decode(text.trim()).ok()?).ok()
}

enum Next {
    Continue,
    Quit,
}

/// The address in `FROM:<addr> [params]` / `TO:<addr> [params]`.
fn path_argument(argument: &str, keyword: &str) -> Option<String> {
    let head = argument.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = argument[keyword.len()..].trim_start();
    let rest = rest.strip_prefix('<')?;
    let end = rest.find('>')?;
    Some(rest[..end].to_owned())
}
