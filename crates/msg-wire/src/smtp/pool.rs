//! Connections to one relay, kept for reuse, each transaction a handful of
//! single writes.
//!
//! lettre's own transport is not used for two reasons. It writes a
//! message's body and the closing `.` line as two writes, so with Nagle's
//! algorithm on (lettre never sets `TCP_NODELAY`) the small second write
//! waits for the relay's delayed ACK: about 40 ms per message on Linux,
//! which caps a connection at ~25 messages/s. And its pool returns
//! connections from a spawned task, so a send right after another often
//! finds the pool empty and opens a new connection. Here the body and the
//! terminator go out in one write, and a connection is back in the pool
//! before `send` returns. lettre still does the connecting, TLS, EHLO and
//! AUTH.

use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use tokio::sync::Semaphore;

use super::{SmtpTls, from_lettre};
use crate::error::{Failure, Provider, Result, SendError};

/// Idle connections older than this are closed rather than reused; relays
/// commonly drop idle clients after a minute or so.
const MAX_IDLE: Duration = Duration::from_secs(30);

/// Where and how to connect.
pub(super) struct Relay {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// For [`SmtpTls::StartTls`] and [`SmtpTls::Implicit`].
    pub tls_parameters: Option<TlsParameters>,
    pub hello: ClientId,
    pub credentials: Option<Credentials>,
    pub timeout: Duration,
}

/// Up to `max` transactions at once, over up to `max` kept connections.
pub(super) struct Pool {
    relay: Relay,
    idle: Mutex<Vec<Idle>>,
    permits: Semaphore,
    max_idle: usize,
}

struct Idle {
    connection: AsyncSmtpConnection,
    since: Instant,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("host", &self.relay.host)
            .field("port", &self.relay.port)
            .field("tls", &self.relay.tls)
            .finish_non_exhaustive()
    }
}

impl Pool {
    pub(super) fn new(relay: Relay, max: usize) -> Self {
        let max = max.max(1);
        Self {
            relay,
            idle: Mutex::new(Vec::with_capacity(max)),
            permits: Semaphore::new(max),
            max_idle: max,
        }
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Idle>> {
        // Connections in a poisoned list are still connections.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// MAIL, RCPT for each recipient, DATA and the message (already a
    /// formatted RFC 5322 message with CRLF line ends).
    pub(super) async fn send(&self, envelope: &Envelope, message: &str) -> Result<()> {
        // The semaphore is never closed, so acquiring cannot fail.
        let _permit = self.permits.acquire().await.ok();
        let mut connection = self.checkout().await?;
        let timeout = self.relay.timeout;
        match tokio::time::timeout(timeout, transaction(&mut connection, envelope, message)).await {
            Ok(Ok(())) => {
                self.checkin(connection);
                Ok(())
            }
            Ok(Err(error)) => {
                // After a refusal the relay is still in step: RSET and keep
                // the connection. After anything else, drop it.
                if error.status().is_some_and(|s| s != 421)
                    && !connection.has_broken()
                    && matches!(
                        tokio::time::timeout(timeout, connection.command(Rset)).await,
                        Ok(Ok(_))
                    )
                {
                    self.checkin(connection);
                }
                Err(error)
            }
            Err(_) => Err(timed_out(timeout)),
        }
    }

    /// A kept connection that still answers NOOP, or a new one.
    async fn checkout(&self) -> Result<AsyncSmtpConnection> {
        loop {
            let idle = self.idle().pop();
            let Some(mut idle) = idle else {
                return self.connect().await;
            };
            if idle.since.elapsed() > MAX_IDLE {
                // The others are older still.
                self.idle().clear();
                return self.connect().await;
            }
            let alive = tokio::time::timeout(self.relay.timeout, idle.connection.test_connected())
                .await
                .unwrap_or(false);
            if alive {
                return Ok(idle.connection);
            }
        }
    }

    fn checkin(&self, connection: AsyncSmtpConnection) {
        let mut idle = self.idle();
        if idle.len() < self.max_idle {
            idle.push(Idle {
                connection,
                since: Instant::now(),
            });
        }
    }

    /// Connects, greets, secures and authenticates, within the timeout.
    async fn connect(&self) -> Result<AsyncSmtpConnection> {
        let relay = &self.relay;
        let work = async {
            let implicit = match relay.tls {
                SmtpTls::Implicit => relay.tls_parameters.clone(),
                SmtpTls::None | SmtpTls::StartTls => None,
            };
            let mut connection = AsyncSmtpConnection::connect_tokio1(
                (relay.host.as_str(), relay.port),
                Some(relay.timeout),
                &relay.hello,
                implicit,
                None,
            )
            .await
            .map_err(|e| from_lettre(&e))?;
            if relay.tls == SmtpTls::StartTls {
                let Some(parameters) = relay.tls_parameters.clone() else {
                    return Err(SendError::invalid(Provider::Smtp, "no TLS parameters"));
                };
                if !connection.can_starttls() {
                    connection.abort().await;
                    return Err(SendError::invalid(
                        Provider::Smtp,
                        "the relay does not offer STARTTLS, which is required",
                    ));
                }
                connection
                    .starttls(parameters, &relay.hello)
                    .await
                    .map_err(|e| from_lettre(&e))?;
            }
            if let Some(credentials) = &relay.credentials {
                connection
                    .auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                    .await
                    .map_err(|e| from_lettre(&e))?;
            }
            Ok(connection)
        };
        tokio::time::timeout(relay.timeout, work)
            .await
            .unwrap_or_else(|_| Err(timed_out(relay.timeout)))
    }
}

/// One mail transaction on an open connection.
async fn transaction(
    connection: &mut AsyncSmtpConnection,
    envelope: &Envelope,
    message: &str,
) -> Result<()> {
    let server = connection.server_info();
    let mut parameters = Vec::new();
    let non_ascii_address = envelope
        .from()
        .into_iter()
        .chain(envelope.to())
        .any(|address: &lettre::Address| !AsRef::<str>::as_ref(address).is_ascii());
    if non_ascii_address {
        if !server.supports_feature(Extension::SmtpUtfEight) {
            return Err(SendError::invalid(
                Provider::Smtp,
                "an address is not ASCII and the relay does not offer SMTPUTF8",
            ));
        }
        parameters.push(MailParameter::SmtpUtfEight);
    }
    if !message.is_ascii() {
        if !server.supports_feature(Extension::EightBitMime) {
            return Err(SendError::invalid(
                Provider::Smtp,
                "the message is not ASCII and the relay does not offer 8BITMIME",
            ));
        }
        parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    let reply = |e: lettre::transport::smtp::Error| from_lettre(&e);
    connection
        .command(Mail::new(envelope.from().cloned(), parameters))
        .await
        .map_err(reply)?;
    for recipient in envelope.to() {
        connection
            .command(Rcpt::new(recipient.clone(), Vec::new()))
            .await
            .map_err(reply)?;
    }
    connection.command(Data).await.map_err(reply)?;
    connection.command(DataBody(message)).await.map_err(reply)?;
    Ok(())
}

/// The message dot-stuffed (RFC 5321 §4.5.2) and ended with the `.` line,
/// written by lettre as a single command.
struct DataBody<'a>(&'a str);

impl fmt::Display for DataBody<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in self.0.split_inclusive('\n') {
            if line.starts_with('.') {
                f.write_str(".")?;
            }
            f.write_str(line)?;
        }
        if !self.0.is_empty() && !self.0.ends_with("\r\n") {
            f.write_str("\r\n")?;
        }
        f.write_str(".\r\n")
    }
}

fn timed_out(timeout: Duration) -> SendError {
    Failure::new(
        Provider::Smtp,
        format!("no reply within {} ms", timeout.as_millis()),
    )
    .transient()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_dot_stuffed_and_terminated() {
        assert_eq!(
            DataBody("Subject: x\r\n\r\n.hidden\r\nok\r\n").to_string(),
            "Subject: x\r\n\r\n..hidden\r\nok\r\n.\r\n"
        );
        assert_eq!(DataBody(".a\r\nb").to_string(), "..a\r\nb\r\n.\r\n");
    }
}
