//! The messaging plugin's batch send: a list of N subscribers (imported as
//! CSV), one `POST /lists/{id}/sends`, and the plugin rendering each
//! subscriber's email from a template (variables, a conditional, a loop,
//! the text part made from the HTML) and queueing it in the outbox, chunk
//! after chunk chained by its own events. Rendered-and-queued per second
//! counts from the request until the batch reports done (every message
//! committed with its progress mark); delivered per second until the SMTP
//! sink (`weft-msg-wire`'s `FakeSmtp`) has them all.

use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::{Value, json};
use weft_msg_wire::fake::FakeSmtp;

use super::{BenchServer, http};
use crate::tenancy::Role;

const PER_IMPORT: usize = 2_000;

fn template() -> Value {
    json!({"variants": {"en": {
        "subject": "Issue {{ issue }} for {{ subscriber.name }}",
        "html": "<h1>Hello {{ subscriber.name }}</h1>{% if subscriber.data.city %}<p>News from {{ subscriber.data.city }}:</p>{% endif %}<ul>{% for item in items %}<li><a href=\"{{ item.url }}\">{{ item.title }}</a></li>{% endfor %}</ul><p><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></p>"
    }}})
}

/// Batch-sends to `messages` subscribers and waits until the sink has them.
pub async fn run(messages: usize, postgres: Option<&str>) -> anyhow::Result<()> {
    let sink = FakeSmtp::start().await.without_recording();
    let addr = sink.addr();
    let server = BenchServer::start_with(2, true, postgres, move |c| {
        super::outbox::deliver_to_sink(c, addr, "Bench News <news@bench.example>");
        c.events.poll_ms = 20;
    })?;
    let engine = if postgres.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    server.enable("messaging").await?;
    let key = server.key(Role::Admin).await?;
    let mut conn = http::Conn::open(server.addr).await?;
    let base = "/t/bench/p/messaging";
    conn.json(
        Method::PUT,
        "/v1/tenants/bench/plugins/messaging",
        Some(&key),
        Some(&json!({"enabled": true, "settings": {"public_url": "https://bench.example/t/bench/p/messaging", "batch_chunk": 2000}})),
    )
    .await?;
    conn.json(
        Method::POST,
        &format!("{base}/lists"),
        Some(&key),
        Some(&json!({"id": "bench", "name": "Bench readers", "double_opt_in": false})),
    )
    .await?;
    conn.json(
        Method::PUT,
        &format!("{base}/templates/issue"),
        Some(&key),
        Some(&template()),
    )
    .await?;
    for start in (0..messages).step_by(PER_IMPORT) {
        let mut csv = String::from("email,name,city\n");
        for i in start..(start + PER_IMPORT).min(messages) {
            let city = if i % 2 == 0 { "Lyon" } else { "" };
            csv.push_str(&format!("reader{i}@bench.example,Reader {i},{city}\n"));
        }
        let (status, body) = conn
            .send_bytes(
                Method::POST,
                &format!("{base}/lists/bench/import"),
                Some(&key),
                Some(("text/csv", csv.into())),
            )
            .await?;
        anyhow::ensure!(
            status.is_success(),
            "import: {status} {}",
            String::from_utf8_lossy(&body)
        );
    }

    let items: Vec<Value> = (1..=5)
        .map(|n| json!({"title": format!("Story {n}"), "url": format!("https://bench.example/s/{n}")}))
        .collect();
    let started = Instant::now();
    let cpu = super::cpu::CpuMeter::start();
    let batch = conn
        .json(
            Method::POST,
            &format!("{base}/lists/bench/sends"),
            Some(&key),
            Some(&json!({"template": "issue", "data": {"issue": 1, "items": items}})),
        )
        .await?;
    let id = batch["id"].as_str().unwrap_or_default().to_owned();
    let deadline = Instant::now() + Duration::from_secs(900);
    let done = loop {
        let b = conn
            .json(
                Method::GET,
                &format!("{base}/batches/{id}"),
                Some(&key),
                None,
            )
            .await?;
        if b["state"] == "done" {
            break b;
        }
        anyhow::ensure!(Instant::now() < deadline, "the batch did not finish: {b}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let queued = started.elapsed();
    let cpu_queued = cpu.stop();
    let count = done["queued"].as_u64().unwrap_or(0) as usize;
    anyhow::ensure!(count == messages, "queued {count} of {messages}: {done}");
    super::outbox::until_sink_has(&sink, messages, deadline).await?;
    let delivered = started.elapsed();
    let cpu_delivered = cpu.stop();
    let queued_rate = messages as f64 / queued.as_secs_f64();
    let delivered_rate = messages as f64 / delivered.as_secs_f64();

    println!(
        "\n## messaging plugin: a batch send rendered and queued, then delivered over SMTP ({engine}, {} chunks)\n",
        done["chunk"]
    );
    println!("| figure | result |");
    println!("|---|---:|");
    println!(
        "| rendered and queued (template, suppression checks, outbox row, log entry) | {messages} in {:.2} s: {queued_rate:.0}/s |",
        queued.as_secs_f64()
    );
    println!(
        "| delivered to the SMTP sink, from the request | {messages} in {:.2} s: {delivered_rate:.0}/s |",
        delivered.as_secs_f64()
    );
    println!(
        "| CPU of the process per message (µs), until queued / until delivered (delivery runs meanwhile) | {} / {} |",
        cpu_queued.per(messages),
        cpu_delivered.per(messages)
    );
    println!(
        "| of that, the server's threads (µs), until queued / until delivered | {} / {} |",
        cpu_queued.server_per(messages),
        cpu_delivered.server_per(messages)
    );
    println!(
        "| the machine's time stolen by the hypervisor, until delivered | {} % |",
        cpu_delivered.steal()
    );
    println!(
        "RESULT plugin_messages={messages} rendered_queued_per_s={queued_rate:.0} delivered_per_s={delivered_rate:.0} cpu_us_per_message_queued={} steal_pct={}",
        cpu_queued.per(messages),
        cpu_delivered.steal()
    );
    Ok(())
}
