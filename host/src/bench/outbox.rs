//! The outbox end to end: the `notifier` test plugin queues emails over
//! HTTP (50 per call — a doc write and 50 `outbox.send`s in one unit of
//! work — over 8 connections), and the delivery workers send them over
//! real SMTP to the in-process sink (`weft-msg-wire`'s `FakeSmtp`), on
//! SQLite or, with `--postgres`, PostgreSQL. Queued per second counts
//! until the last call has returned (every message committed); delivered
//! per second until the sink has accepted them all.

use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::{Value, json};
use weft_msg_wire::fake::FakeSmtp;

use super::{BenchServer, http};
use crate::messaging::ProviderSettings;
use crate::messaging::config::{Limit, SmtpTlsMode};

const PER_CALL: usize = 50;
const CONNECTIONS: usize = 8;

/// The body of call `i` of connection `c`: `PER_CALL` emails, each to its
/// own recipient with its own idempotency key.
fn call_body(c: usize, i: usize) -> Value {
    let email = |n: usize| {
        json!({
            "channel": "email",
            "to": format!("reader{c}.{i}.{n}@bench.example"),
            "subject": format!("Your order {c}-{i}-{n} has shipped"),
            "html": "<p>Hello,</p><p>your order is <b>on its way</b>. Track it in your account.</p>",
        })
    };
    json!({
        "key": format!("bench-{c}-{i}"),
        "message": email(0),
        "messages": (1..PER_CALL).map(email).collect::<Vec<_>>(),
    })
}

/// The platform's email provider is the local SMTP sink at `addr`, with
/// no limits on email.
pub(super) fn deliver_to_sink(
    c: &mut crate::config::Config,
    addr: std::net::SocketAddr,
    from: &str,
) {
    c.messaging.email = Some(ProviderSettings::Smtp {
        host: addr.ip().to_string(),
        port: addr.port(),
        tls: SmtpTlsMode::None,
        username: None,
        password: None,
        from: from.into(),
    });
    c.messaging.limits.email = Limit {
        per_minute: u64::MAX,
        per_day: u64::MAX,
    };
}

/// Waits until `sink` has accepted `count` emails; an error past `deadline`.
pub(super) async fn until_sink_has(
    sink: &FakeSmtp,
    count: usize,
    deadline: Instant,
) -> anyhow::Result<()> {
    while sink.accepted_count() < count {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {count} emails reached the sink",
            sink.accepted_count()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Queues about `messages` emails and waits until the sink has them all.
pub async fn run(messages: usize, postgres: Option<&str>) -> anyhow::Result<()> {
    let sink = FakeSmtp::start().await.without_recording();
    let addr = sink.addr();
    let server = BenchServer::start_with(2, true, postgres, move |c| {
        deliver_to_sink(c, addr, "Bench Shop <noreply@bench.example>");
    })?;
    let engine = if postgres.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    server.install_test_plugin("notifier").await?;
    let calls_per_conn = messages.div_ceil(PER_CALL * CONNECTIONS).max(1);
    let total = calls_per_conn * CONNECTIONS * PER_CALL;

    let started = Instant::now();
    let mut senders = Vec::new();
    for c in 0..CONNECTIONS {
        let (addr, key) = (server.addr, server.key.clone());
        senders.push(tokio::spawn(async move {
            let mut conn = http::Conn::open(addr).await?;
            for i in 0..calls_per_conn {
                let (status, body) = conn
                    .send(
                        Method::POST,
                        "/t/bench/p/notifier/send",
                        Some(&key),
                        Some(&call_body(c, i)),
                    )
                    .await?;
                anyhow::ensure!(
                    status.is_success(),
                    "send: {status} {}",
                    String::from_utf8_lossy(&body)
                );
            }
            anyhow::Ok(())
        }));
    }
    for s in senders {
        s.await??;
    }
    let queued = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    until_sink_has(&sink, total, deadline).await?;
    let delivered = started.elapsed();
    let queued_rate = total as f64 / queued.as_secs_f64();
    let delivered_rate = total as f64 / delivered.as_secs_f64();

    println!(
        "\n## outbox: emails queued by a plugin and delivered over SMTP ({engine}, {CONNECTIONS} connections, {PER_CALL} per call)\n"
    );
    println!("| figure | result |");
    println!("|---|---:|");
    println!(
        "| queued (committed with the call's other writes) | {total} in {:.2} s: {queued_rate:.0}/s |",
        queued.as_secs_f64()
    );
    println!(
        "| delivered to the SMTP sink, from the first call | {total} in {:.2} s: {delivered_rate:.0}/s over {} SMTP connections |",
        delivered.as_secs_f64(),
        sink.connections()
    );
    println!(
        "RESULT outbox_messages={total} queued_per_s={queued_rate:.0} delivered_per_s={delivered_rate:.0}"
    );
    Ok(())
}
