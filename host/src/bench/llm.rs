//! The LLM gateway and the credits ledger.
//!
//! Gateway: the same small completion sent straight to the fake provider
//! (`weft-llm-wire`'s, on loopback) and through `POST /v1/llm/complete`
//! (API-key auth, plan and limit checks, the credit hold, the provider
//! call, the settlement) — one connection for the added latency, then
//! 32 connections for throughput. Ledger: credit entries appended by 16
//! concurrent writers through the ledger's group-commit writer (each
//! answered once its entry is committed).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::json;
use weft_llm_wire as wire;

use super::{BenchArgs, BenchServer, load_with, percentiles};
use crate::billing::{EntryKind, Micro, NewEntry};

const THROUGHPUT_CONNECTIONS: usize = 32;
const LEDGER_WRITERS: usize = 16;

pub async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let fake = wire::fake::FakeLlm::start().await.without_recording();
    let base = fake.base_url();
    let server = BenchServer::start_with(2, true, args.postgres.as_deref(), move |c| {
        for p in &mut c.llm.providers {
            p.base_url = base.clone();
            p.api_key = "bench-key".into();
        }
        for plan in &mut c.billing.plans {
            plan.tokens_per_day = None;
            plan.sessions_per_day = None;
        }
    })?;
    let engine = if args.postgres.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let tenant = server.tenant().await?;
    server
        .app
        .billing
        .ledger
        .append(
            &tenant,
            &NewEntry {
                kind: EntryKind::Grant,
                amount: Micro::credits(1_000_000_000),
                idempotency_key: "bench",
                reason: Some("bench"),
                reference: None,
                actor: None,
            },
        )
        .await?;
    let body = json!({
        "model": "gemini-flash",
        "messages": [{"role": "user", "content": "hello there"}],
        "max_tokens": 16,
    });

    // Straight to the fake, one request at a time.
    let client = wire::Client::new()?;
    let ep = wire::Endpoint::new(
        wire::ProviderKind::Gemini,
        "bench-key",
        Duration::from_secs(5),
    )
    .with_base_url(fake.base_url());
    let request = wire::ChatRequest {
        model: "gemini-2.0-flash".into(),
        system: None,
        messages: vec![wire::Message::text(wire::Role::User, "hello there")],
        max_tokens: 16,
        temperature: None,
    };
    let sequential = (args.llm_requests / 4).clamp(500, 5_000);
    for _ in 0..200 {
        client.complete(&ep, &request).await?;
    }
    let mut direct = Vec::with_capacity(sequential);
    let direct_cpu = super::cpu::CpuMeter::start();
    for _ in 0..sequential {
        let started = Instant::now();
        client.complete(&ep, &request).await?;
        direct.push(started.elapsed().as_micros() as u64);
    }
    let direct_cpu = direct_cpu.stop();
    let direct_raw = direct.clone();
    let direct = percentiles(direct);

    // Through the gateway, one connection.
    let key = server.key.clone();
    let plan_body = body.clone();
    let plan = move |_: usize, _: usize| {
        (
            Method::POST,
            "/v1/llm/complete".to_owned(),
            Some(key.clone()),
            Some(plan_body.clone()),
        )
    };
    let plan = Arc::new(plan);
    let p = plan.clone();
    load_with(server.addr, 1, Duration::from_secs(1), move |c, i| p(c, i)).await?;
    let mut gateway = Vec::with_capacity(sequential);
    let mut conn = super::http::Conn::open(server.addr).await?;
    let mut errors = 0u64;
    let gateway_cpu = super::cpu::CpuMeter::start();
    for _ in 0..sequential {
        let started = Instant::now();
        let (status, _) = conn
            .send(
                Method::POST,
                "/v1/llm/complete",
                Some(&server.key),
                Some(&body),
            )
            .await?;
        gateway.push(started.elapsed().as_micros() as u64);
        if !status.is_success() {
            errors += 1;
        }
    }
    let gateway_cpu = gateway_cpu.stop();
    if let Ok(path) = std::env::var("WEFT_BENCH_DUMP") {
        let text: Vec<String> = gateway.iter().map(|v| v.to_string()).collect();
        let _ = std::fs::write(format!("{path}.gw"), text.join("\n"));
        let text: Vec<String> = direct_raw.iter().map(|v| v.to_string()).collect();
        let _ = std::fs::write(format!("{path}.direct"), text.join("\n"));
    }
    let gateway = percentiles(gateway);

    // Throughput: as many requests as 32 connections get through.
    let seconds = (args.llm_requests as f64 / 4_000.0).clamp(3.0, 30.0);
    let p = plan.clone();
    let cpu = super::cpu::CpuMeter::start();
    let (rate, loaded, load_errors) = load_with(
        server.addr,
        THROUGHPUT_CONNECTIONS,
        Duration::from_secs_f64(seconds),
        move |c, i| p(c, i),
    )
    .await?;
    let cpu = cpu.stop();
    let audit = server.app.billing.ledger.audit(&tenant).await?;
    anyhow::ensure!(
        audit.balance == audit.sum_of_entries,
        "balance {} is not the sum of the entries {}",
        audit.balance,
        audit.sum_of_entries
    );

    println!("\n## LLM gateway over a loopback fake provider ({engine})\n");
    println!("| path | p50 ms | p99 ms | CPU µs per request |");
    println!("|---|---:|---:|---:|");
    println!(
        "| fake provider directly ({sequential} sequential) | {:.3} | {:.3} | {} |",
        direct.p50 / 1000.0,
        direct.p99 / 1000.0,
        direct_cpu.per(sequential)
    );
    println!(
        "| through `POST /v1/llm/complete` ({sequential} sequential, {errors} non-2xx) | {:.3} | {:.3} | {} (the server's threads: {}) |",
        gateway.p50 / 1000.0,
        gateway.p99 / 1000.0,
        gateway_cpu.per(sequential),
        gateway_cpu.server_per(sequential)
    );
    println!(
        "| added by the gateway | {:.3} | {:.3} | |",
        (gateway.p50 - direct.p50) / 1000.0,
        (gateway.p99 - direct.p99) / 1000.0
    );
    println!(
        "\nThe sequential phases' steal: {} % (direct), {} % (gateway).",
        direct_cpu.steal(),
        gateway_cpu.steal()
    );
    println!(
        "\n{THROUGHPUT_CONNECTIONS} connections: {rate:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms, {load_errors} non-2xx; balance = sum of entries after the run; {} µs of CPU per request (the whole process: load generator, fake provider and server; the server's threads alone {} µs), {} % of the machine's time stolen by the hypervisor",
        loaded.p50 / 1000.0,
        loaded.p99 / 1000.0,
        cpu.per(loaded.count),
        cpu.server_per(loaded.count),
        cpu.steal()
    );
    println!(
        "RESULT llm_added_p50_ms={:.3} llm_added_p99_ms={:.3} llm_rps={rate:.0} llm_errors={} llm_cpu_us_per_request={} llm_server_cpu_us_per_request={} llm_steal_pct={}",
        (gateway.p50 - direct.p50) / 1000.0,
        (gateway.p99 - direct.p99) / 1000.0,
        errors + load_errors,
        cpu.per(loaded.count),
        cpu.server_per(loaded.count),
        cpu.steal()
    );

    // The ledger: entries appended by concurrent writers.
    let entries = (args.llm_requests * 5).max(10_000);
    let per_writer = entries / LEDGER_WRITERS;
    let started = Instant::now();
    let mut writers = Vec::new();
    for w in 0..LEDGER_WRITERS {
        let app = server.app.clone();
        let tenant = tenant.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..per_writer {
                let key = format!("bench:{w}:{i}");
                app.billing
                    .ledger
                    .append(
                        &tenant,
                        &NewEntry {
                            kind: EntryKind::Grant,
                            amount: Micro(1),
                            idempotency_key: &key,
                            reason: None,
                            reference: None,
                            actor: None,
                        },
                    )
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for w in writers {
        w.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let written = per_writer * LEDGER_WRITERS;
    let per_s = written as f64 / elapsed;
    let audit = server.app.billing.ledger.audit(&tenant).await?;
    anyhow::ensure!(
        audit.balance == audit.sum_of_entries,
        "ledger out of balance"
    );
    println!(
        "\n## credits ledger ({engine}): {written} entries appended by {LEDGER_WRITERS} concurrent writers, each answered once committed (group commit): {per_s:.0} entries/s ({elapsed:.1} s)"
    );
    println!("RESULT ledger_entries_per_s={per_s:.0}");
    Ok(())
}
