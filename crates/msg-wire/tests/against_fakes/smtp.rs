//! `SmtpSender` against `FakeSmtp`, and the fake's protocol handling.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use weft_msg_wire::{
    Email, EmailSender, FakeSmtp, Provider, SendError, SmtpConfig, SmtpSender, SmtpTls,
};

use super::{email, failed, install_ring};

async fn setup() -> (FakeSmtp, SmtpSender) {
    install_ring();
    let fake = FakeSmtp::start().await;
    let sender = SmtpSender::new(&fake.config()).expect("sender");
    (fake, sender)
}

#[tokio::test]
async fn delivers_multipart_alternative_with_headers() {
    let (fake, sender) = setup().await;
    let sent = sender.send(&email("ada@example.com")).await.expect("sent");

    let messages = fake.accepted();
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert_eq!(message.mail_from, "noreply@weft.test");
    assert_eq!(message.rcpt_to, vec!["ada@example.com".to_owned()]);
    assert_eq!(message.subject().as_deref(), Some("Your receipt — Grüße"));
    assert_eq!(
        message.header("Message-ID"),
        Some(format!("<{}>", sent.provider_id))
    );
    assert!(sent.provider_id.ends_with("@weft.test"));
    assert_eq!(
        message.header("From").as_deref(),
        Some("\"Weft Mail\" <noreply@weft.test>")
    );
    assert_eq!(
        message.header("Reply-To").as_deref(),
        Some("support@weft.test")
    );
    assert_eq!(
        message.header("List-Unsubscribe").as_deref(),
        Some("<https://weft.test/unsubscribe/abc123>")
    );
    assert_eq!(
        message.header("List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    assert!(
        message
            .header("Content-Type")
            .is_some_and(|t| t.starts_with("multipart/alternative")),
        "{:?}",
        message.header("Content-Type")
    );
    let parts = message.parts();
    let types: Vec<&str> = parts.iter().map(|p| p.content_type.as_str()).collect();
    assert_eq!(types, ["text/plain", "text/html"]);
    assert_eq!(message.text().as_deref(), Some("Thanks for your order."));
    assert_eq!(
        message.html().as_deref(),
        Some("<p>Thanks for your order.</p>")
    );
}

#[tokio::test]
async fn a_text_only_email_is_a_single_part() {
    let (fake, sender) = setup().await;
    let mut email = email("ada@example.com");
    email.html = None;
    email.text = Some("line one\n.starts with a dot\nünïcode".into());
    sender.send(&email).await.expect("sent");
    let message = &fake.accepted()[0];
    assert!(
        message
            .header("Content-Type")
            .is_some_and(|t| t.starts_with("text/plain"))
    );
    assert_eq!(message.parts().len(), 1);
    assert_eq!(
        message.text().map(|t| t.replace("\r\n", "\n")).as_deref(),
        Some("line one\n.starts with a dot\nünïcode")
    );
}

#[tokio::test]
async fn auth_is_required_and_checked() {
    install_ring();
    let fake = FakeSmtp::start().await.with_auth("mailer", "s3cret");
    let good = SmtpSender::new(&fake.config()).expect("sender");
    good.send(&email("ada@example.com")).await.expect("sent");

    let wrong = SmtpSender::new(&fake.config().with_credentials("mailer", "nope")).expect("sender");
    let error = failed(wrong.send(&email("ada@example.com")).await);
    assert!(!error.is_transient(), "{error}");
    assert_eq!(error.status(), Some(535));
    assert_eq!(error.provider(), Provider::Smtp);
    assert!(!error.to_string().contains("nope"));

    let mut anonymous = fake.config();
    anonymous.credentials = None;
    let anonymous = SmtpSender::new(&anonymous).expect("sender");
    let error = failed(anonymous.send(&email("ada@example.com")).await);
    assert!(!error.is_transient(), "{error}");
    assert_eq!(error.status(), Some(530));
    assert_eq!(fake.accepted_count(), 1);
}

#[tokio::test]
async fn a_451_is_transient_and_the_next_try_succeeds() {
    let (fake, sender) = setup().await;
    fake.fail_next(1);
    let error = failed(sender.send(&email("ada@example.com")).await);
    assert!(error.is_transient(), "{error}");
    assert_eq!(error.status(), Some(451));
    assert_eq!(error.code(), Some("4.3.0"));
    assert_eq!(fake.accepted_count(), 0);
    sender
        .send(&email("ada@example.com"))
        .await
        .expect("retry works");
    assert_eq!((fake.calls(), fake.accepted_count()), (2, 1));
    assert_eq!(fake.connections(), 1);
}

#[tokio::test]
async fn a_refused_recipient_is_permanent() {
    let (fake, sender) = setup().await;
    fake.refuse_recipient("gone@example.com");
    let error = failed(sender.send(&email("gone@example.com")).await);
    assert!(!error.is_transient(), "{error}");
    assert_eq!(error.status(), Some(550));
    assert_eq!(error.code(), Some("5.1.1"));
    sender
        .send(&email("ada@example.com"))
        .await
        .expect("others still work");
    assert_eq!(
        fake.connections(),
        1,
        "RSET keeps the connection after a refusal"
    );
}

#[tokio::test]
async fn an_unreachable_relay_is_transient() {
    install_ring();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let config =
        SmtpConfig::new("127.0.0.1", port, SmtpTls::None).with_timeout(Duration::from_secs(2));
    let sender = SmtpSender::new(&config).expect("sender");
    let error = failed(sender.send(&email("ada@example.com")).await);
    assert!(error.is_transient(), "{error}");
    assert_eq!(error.status(), None);
}

#[tokio::test]
async fn invalid_emails_are_refused_before_connecting() {
    let (fake, sender) = setup().await;
    let mut bad: Email = email("not an address");
    let error = failed(sender.send(&bad).await);
    assert!(matches!(error, SendError::Permanent(_)));
    bad = email("ada@example.com");
    bad.headers
        .push(("X-Note".into(), "a\r\nBcc: eve@evil.test".into()));
    assert!(!failed(sender.send(&bad).await).is_transient());
    assert_eq!(fake.connections(), 0);
}

#[tokio::test]
async fn connections_are_pooled_and_throughput_is_high() {
    install_ring();
    let fake = FakeSmtp::start().await.without_recording();
    let sender = Arc::new(SmtpSender::new(&fake.config().with_max_connections(4)).expect("sender"));
    let started = Instant::now();
    let total = 1_000;
    let mut tasks = Vec::new();
    for worker in 0..4 {
        let sender: Arc<dyn EmailSender> = sender.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..total / 4 {
                let mut email = email(&format!("user{worker}-{n}@example.com"));
                email.html = None;
                sender.send_email(&email).await.expect("sent");
            }
        }));
    }
    for task in tasks {
        task.await.expect("worker");
    }
    let elapsed = started.elapsed();
    assert_eq!(fake.accepted_count(), total);
    assert_eq!(fake.connections(), 4);
    assert!(fake.accepted().is_empty(), "recording is off");
    eprintln!(
        "{total} messages over {} connections in {elapsed:?} ({:.0}/s, debug build)",
        fake.connections(),
        total as f64 / elapsed.as_secs_f64()
    );
    // Generous: a debug build on a busy two-core machine. (Before the
    // single-write DATA, Nagle's algorithm held every message ~40 ms.)
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

/// Speaks raw SMTP to the fake: pipelining, dot-unstuffing, RSET, NOOP,
/// HELO and sequencing errors.
#[tokio::test]
async fn the_sink_speaks_rfc_5321() {
    let fake = FakeSmtp::start().await;
    let stream = TcpStream::connect(fake.addr()).await.expect("connect");
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let mut next = async || lines.next_line().await.expect("read").expect("a line");
    assert!(next().await.starts_with("220 "));

    write
        .write_all(b"MAIL FROM:<a@x.test>\r\n")
        .await
        .expect("write");
    assert!(next().await.starts_with("503 "), "MAIL before HELO");
    write
        .write_all(b"HELO client.test\r\nNOOP\r\n")
        .await
        .expect("write");
    assert!(next().await.starts_with("250 "));
    assert!(next().await.starts_with("250 "));
    // Pipelined envelope, then RSET drops it.
    write
        .write_all(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nRSET\r\nDATA\r\n")
        .await
        .expect("write");
    for expected in ["250 ", "250 ", "250 ", "503 "] {
        assert!(next().await.starts_with(expected));
    }
    write
        .write_all(b"MAIL FROM:<a@x.test> SIZE=100\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n")
        .await
        .expect("write");
    for expected in ["250 ", "250 ", "250 ", "354 "] {
        assert!(next().await.starts_with(expected));
    }
    write
        .write_all(b"Subject: dots\r\n\r\n..leading dot\r\n.\r\nQUIT\r\n")
        .await
        .expect("write");
    assert!(next().await.starts_with("250 2.0.0 Ok: queued as "));
    assert!(next().await.starts_with("221 "));

    let message = &fake.accepted()[0];
    assert_eq!(message.rcpt_to, ["b@y.test", "c@y.test"]);
    assert_eq!(message.data, b"Subject: dots\r\n\r\n.leading dot\r\n");
    assert_eq!(message.subject().as_deref(), Some("dots"));
    assert_eq!(message.raw_body(), ".leading dot\r\n");
    assert_eq!(fake.connections(), 1);
}

/// AUTH LOGIN (lettre prefers PLAIN, so the sender never uses it) and
/// AUTH PLAIN with a separate response line.
#[tokio::test]
async fn the_sink_accepts_auth_login_and_plain() {
    let fake = FakeSmtp::start().await.with_auth("mailer", "s3cret");
    for (script, expected) in [
        // LOGIN with base64 "mailer" then "s3cret".
        (
            vec!["AUTH LOGIN", "bWFpbGVy", "czNjcmV0"],
            vec!["334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6", "235 "],
        ),
        // PLAIN with the response on its own line: "\0mailer\0s3cret".
        (
            vec!["AUTH PLAIN", "AG1haWxlcgBzM2NyZXQ="],
            vec!["334 ", "235 "],
        ),
        // PLAIN with a wrong password.
        (vec!["AUTH PLAIN AG1haWxlcgBub3Bl"], vec!["535 "]),
    ] {
        let stream = TcpStream::connect(fake.addr()).await.expect("connect");
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let mut next = async || lines.next_line().await.expect("read").expect("a line");
        assert!(next().await.starts_with("220 "));
        write
            .write_all(b"EHLO client.test\r\n")
            .await
            .expect("write");
        let mut saw_auth = false;
        loop {
            let line = next().await;
            saw_auth |= line == "250-AUTH PLAIN LOGIN";
            if line.starts_with("250 ") {
                break;
            }
        }
        assert!(saw_auth);
        for (command, reply) in script.iter().zip(&expected) {
            write
                .write_all(format!("{command}\r\n").as_bytes())
                .await
                .expect("write");
            let line = next().await;
            assert!(line.starts_with(reply), "{command}: {line}");
        }
    }
}
