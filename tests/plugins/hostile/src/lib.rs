//! `hostile`: a plugin that misbehaves on purpose, one route per attack, for
//! the host's isolation tests. Each attack must end in a clean error (or a
//! capped result) for its own call only; other calls and tenants must not
//! notice.
//!
//! `std::hint::black_box` keeps the optimizer from proving the attacks
//! pointless and deleting them.

use std::hint::black_box;

use serde_json::json;
use weft_sdk::{Plugin, Request, Response, Router, kv, log};

struct Hostile;

impl Plugin for Hostile {
    fn handle(req: Request) -> Response {
        router().handle(req)
    }
}

weft_sdk::plugin!(Hostile);

fn router() -> Router {
    Router::new()
        .get("/ok", |_| Response::text(200, "ok"))
        .get("/loop", |_| spin())
        .get("/slow", |_| slow())
        .get("/marker", |_| marker())
        .post("/write-then-panic", |_| write_then_panic())
        .post("/write-then-stall", |_| write_then_stall())
        .get("/hog", |_| hog())
        .get("/panic", |_| -> Response { panic!("boom") })
        .get("/unreachable", |_| trap())
        .get("/recurse", |_| Response::text(200, recurse(0).to_string()))
        .get("/huge", |_| huge())
        .get("/log-flood", |_| log_flood())
        .get("/kv-quota", |_| kv_quota())
}

/// Burns instructions forever: fuel or the wall-clock limit must stop it.
fn spin() -> Response {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

/// Spends wall time in host calls, which cost little fuel: only the
/// wall-clock (epoch) limit stops it.
fn slow() -> Response {
    loop {
        let _ = black_box(kv::get("slow"));
    }
}

/// The value of kv `marker`, or 404: shows whether a failed call's write
/// survived.
fn marker() -> Response {
    match kv::get("marker") {
        Ok(Some(value)) => Response::new(200, value),
        Ok(None) => Response::error(404, "not_found", "no marker"),
        Err(err) => err.into(),
    }
}

/// Writes, then panics: the write must be rolled back.
fn write_then_panic() -> Response {
    if let Err(err) = kv::set("marker", b"written") {
        return err.into();
    }
    panic!("after a write")
}

/// Writes, then keeps the call (and its open write transaction) busy in
/// host calls: a limit must end it and roll the write back.
fn write_then_stall() -> Response {
    if let Err(err) = kv::set("marker", b"written") {
        return err.into();
    }
    // A scan goes to the database every time (a point read of a key the
    // call wrote would be answered from the unit of work).
    loop {
        let _ = black_box(kv::list_prefix("marker", None, 1));
    }
}

/// Allocates 1 MiB chunks forever and writes to every page of each: the
/// memory cap must stop it.
fn hog() -> Response {
    const CHUNK: usize = 1 << 20;
    const PAGE: usize = 4096;
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0u8; CHUNK];
        let mark = black_box(chunks.len() as u8) | 1;
        for i in (0..CHUNK).step_by(PAGE) {
            chunk[i] = mark;
        }
        chunks.push(black_box(chunk));
    }
}

/// Traps with the `unreachable` instruction.
fn trap() -> Response {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    // Native builds (unit tests, clippy) have no wasm trap; abort is closest.
    #[cfg(not(target_arch = "wasm32"))]
    std::process::abort();
}

/// Recurses until the stack runs out. Each call uses the callee's result,
/// so it is neither a tail call nor a loop; frames stay small so that the
/// wasm call stack (the host's stack limit) overflows, not the 1 MiB shadow
/// stack in linear memory.
#[allow(unconditional_recursion)] // Running out of stack is the point.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let below = recurse(black_box(depth.wrapping_add(1)));
    below.wrapping_mul(3).wrapping_add(depth)
}

/// Answers with a 4 MiB body: within the memory cap, over the response cap.
fn huge() -> Response {
    Response::new(200, vec![b'x'; 4 << 20]).with_header("content-type", "text/plain")
}

/// 20,000 log lines of 1 KiB through the log import, then 2 MiB on
/// stdout and stderr (1 MiB each, 1 KiB lines): 350 times the 64 KiB cap,
/// and well inside the 1 s limit on an unoptimized (test) host under load.
fn log_flood() -> Response {
    let line = "x".repeat(1024);
    for _ in 0..20_000 {
        log::info(black_box(&line));
    }
    let line = "y".repeat(1023); // + '\n' = 1 KiB
    for _ in 0..1024 {
        println!("{line}");
        eprintln!("{line}");
    }
    Response::text(200, "flooded")
}

/// Writes keys `k0`..=`k100000` of 1 KiB each until the store refuses;
/// answers 413 naming the quota that stopped it.
fn kv_quota() -> Response {
    const KEYS: u32 = 100_000;
    let value = vec![b'v'; 1024];
    for i in 0..=KEYS {
        match kv::set(&format!("k{i}"), &value) {
            Ok(()) => {}
            Err(kv::Error::QuotaExceeded(quota)) => {
                return Response::json(
                    413,
                    &json!({
                        "error": {
                            "code": "quota_exceeded",
                            "message": format!("kv quota `{quota}` exceeded after {i} keys"),
                        },
                        "quota": quota,
                        "written": i,
                    }),
                );
            }
            Err(other) => return other.into(),
        }
    }
    Response::json(200, &json!({ "written": KEYS + 1 }))
}
