#!/usr/bin/env bash
# Soak test: builds release, starts bench-server pinned to CPU 0, runs `pikku-bench soak` pinned
# to CPU 1 (15,000 connections of mixed echo, fan-out and churn), then plots the CSV to
# docs/soak.png with bench/plot_soak.py.
#
# Usage: bash bench/soak.sh
# Knobs (environment): SOAK_SECS (1800), SOAK_CONNECTIONS (15000), SAMPLE_SECS (10), PORT (18700),
# OUT (target/bench-results/soak.csv), PNG (docs/soak.png), SOAK_FLAGS (extra pikku-bench flags,
# e.g. "--churn-per-s 100 --echoers 500").
#
# Server and load each need a file descriptor per connection and neither raises its own limit:
# run under `ulimit -n` above the connection count (the script raises the soft limit to the hard
# one and refuses to start below SOAK_CONNECTIONS + 1000).
set -euo pipefail
cd "$(dirname "$0")/.."

SOAK_SECS=${SOAK_SECS:-1800}
SOAK_CONNECTIONS=${SOAK_CONNECTIONS:-15000}
SAMPLE_SECS=${SAMPLE_SECS:-10}
PORT=${PORT:-18700}
OUT=${OUT:-target/bench-results/soak.csv}
PNG=${PNG:-docs/soak.png}
SOAK_FLAGS=${SOAK_FLAGS:-}
SERVER_CPU=0
LOAD_CPU=1

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((SOAK_CONNECTIONS + 1000)) ]; then
  echo "ulimit -n is $(ulimit -n); need at least $((SOAK_CONNECTIONS + 1000)) for $SOAK_CONNECTIONS connections" >&2
  exit 1
fi

echo "== building (release)"
cargo build --release -p pikku-bench
BIN=${CARGO_TARGET_DIR:-target}/release
mkdir -p "$(dirname "$OUT")" "$(dirname "$PNG")"
LOG=${OUT%.csv}.server.log

taskset -c "$SERVER_CPU" "$BIN/bench-server" --port "$PORT" >"$LOG" 2>&1 &
SERVER_PID=$!
trap 'kill -TERM "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true' EXIT
for _ in $(seq 200); do
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "bench-server exited at startup:" >&2
    cat "$LOG" >&2
    exit 1
  fi
  if [ -n "$(ss -Hltn "sport = :$PORT" 2>/dev/null)" ]; then break; fi
  sleep 0.05
done

# shellcheck disable=SC2086 # SOAK_FLAGS is a list of flags
load=(taskset -c "$LOAD_CPU" "$BIN/pikku-bench" soak --url "ws://127.0.0.1:$PORT/bench"
  --server-pid "$SERVER_PID" --connections "$SOAK_CONNECTIONS" --duration-secs "$SOAK_SECS"
  --sample-secs "$SAMPLE_SECS" --out "$OUT" $SOAK_FLAGS)
echo "== ${load[*]}"
status=0
"${load[@]}" | tee "${OUT%.csv}.out" || status=$?
echo "== server log error lines: $(grep -ciE 'error|panic' "$LOG" || true)"

python3 bench/plot_soak.py "$OUT" "$PNG"
exit "$status"
