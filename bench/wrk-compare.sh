#!/usr/bin/env bash
# Runs `weft serve` (release) and the `wasmtime serve` anchor under the same
# wrk load, one after the other, and prints both. Both get a fresh instance
# per request; weft additionally authenticates an API key, checks the
# tenant's enablement and route, and commits a usage event per call.
#
# Needs: a release build (`cargo build --release`), and the anchor's tools
# (../shared/bench/wasmtime-serve/install.sh: wrk, wasmtime-cli 48.0.8).
# Env: WRK_DURATION (15s), WRK_CONNECTIONS (64), WRK_THREADS (2), ANCHOR_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET="${CARGO_TARGET_DIR:-$HOME/.cache/weft/target}"
WEFT="$TARGET/release/weft"
ANCHOR_DIR="${ANCHOR_DIR:-../shared/bench/wasmtime-serve}"
DURATION="${WRK_DURATION:-15s}"
CONNS="${WRK_CONNECTIONS:-64}"
THREADS="${WRK_THREADS:-2}"
[ -x "$WEFT" ] || { echo "build first: cargo build --release" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk missing: $ANCHOR_DIR/install.sh" >&2; exit 1; }

data=$(mktemp -d)
out="$data/stdout"
WEFT_DATA_DIR="$data" WEFT_BIND=127.0.0.1:0 WEFT_LOG=warn WEFT_CONFIG="$data/none.toml" "$WEFT" serve >"$out" 2>"$data/stderr" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do grep -q "weft listening on" "$out" 2>/dev/null && break; sleep 0.1; done
base=$(sed -n 's/^weft listening on //p' "$out")
key=$(sed -n 's/^ *API key *//p' "$out" | head -n 1)
[ -n "$base" ] && [ -n "$key" ] || { echo "weft did not start"; cat "$data/stderr"; exit 1; }
curl -fsS -H "Authorization: Bearer $key" "$base/t/demo/p/hello/hello" >/dev/null

echo "== weft serve: GET /t/demo/p/hello/hello with an API key (wrk -t$THREADS -c$CONNS -d$DURATION)"
wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -H "Authorization: Bearer $key" "$base/t/demo/p/hello/hello" | tee "$data/wrk-weft"
kill $pid; wait $pid 2>/dev/null || true

echo "== wasmtime serve anchor"
WRK_DURATION="$DURATION" WRK_CONNECTIONS="$CONNS" WRK_THREADS="$THREADS" "$ANCHOR_DIR/wasmtime-serve.sh"
