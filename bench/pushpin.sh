#!/usr/bin/env bash
# Benchmarks the stateless worker behind a real Pushpin and writes the "Behind Pushpin" section of
# docs/benchmarks.md (between its begin and end markers; `bench/run.sh` keeps the section when it rewrites
# the rest of the page).
#
# Each row is a fresh `pushpin-bench-server` (a private Pushpin in front of a backend in the same process)
# loaded by `pikku-bench` through Pushpin's client port, and for comparison the embedded `bench-server` with
# the same load. Backends: `echo`, a trivial WebSocket-over-HTTP backend (the gateway's own ceiling), and the
# pikku worker on in-memory and on Redis stores. Nothing is pinned: Pushpin's four processes, the backend and
# the load share the two cores, the same for every row, so compare rows of one run only.
#
# Usage: bash bench/pushpin.sh       Knobs: DURATION (10), WARMUP (2), PORT (18700), DOC (docs/benchmarks.md)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
PORT=${PORT:-18700}
DOC=${DOC:-docs/benchmarks.md}
OUT=${OUT:-target/bench-pushpin}
REDIS=${REDIS:-redis://127.0.0.1:6379}

echo "== building (release)"
cargo build --release -p pikku-bench
BIN=${CARGO_TARGET_DIR:-target}/release
rm -rf "$OUT"
mkdir -p "$OUT"
started_at=$(date -u '+%Y-%m-%d %H:%M UTC')

# run NAME SCENARIO SERVER-COMMAND... -- LOAD-FLAGS...: starts the server on the next port, waits for its
# "listening on" line, runs the load with --server-pid, keeps the RESULT line as $OUT/NAME.json.
run() {
  local name=$1 scenario=$2
  shift 2
  local server=() load=()
  while [ "$1" != "--" ]; do server+=("$1"); shift; done
  shift
  load=("$@")
  local port=$PORT
  PORT=$((PORT + 1))
  "${server[@]}" --port "$port" >"$OUT/$name.log" 2>&1 &
  local pid=$!
  for _ in $(seq 300); do
    grep -q "listening on" "$OUT/$name.log" && break
    sleep 0.05
  done
  echo "== $name: $scenario ${load[*]}"
  "$BIN/pikku-bench" "$scenario" --url "ws://127.0.0.1:$port/bench" --server-pid "$pid" \
    --duration "$DURATION" --warmup "$WARMUP" "${load[@]}" >"$OUT/$name.out" 2>&1 || true
  grep '^RESULT ' "$OUT/$name.out" | tail -n 1 | sed 's/^RESULT //' >"$OUT/$name.json" || true
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  sleep 1
}

ECHO=(--connections 50 --window 4 --payload 64)
FANOUT=(--subscribers 1000 --window 8)
run echo-trivial echo "$BIN/pushpin-bench-server" --backend echo -- "${ECHO[@]}"
run echo-worker echo "$BIN/pushpin-bench-server" --backend worker -- "${ECHO[@]}"
run echo-worker-redis echo "$BIN/pushpin-bench-server" --backend worker --store "$REDIS" -- "${ECHO[@]}"
run echo-embedded echo "$BIN/bench-server" -- "${ECHO[@]}"
run fanout-worker fanout "$BIN/pushpin-bench-server" --backend worker -- "${FANOUT[@]}"
run fanout-worker-redis fanout "$BIN/pushpin-bench-server" --backend worker --store "$REDIS" -- "${FANOUT[@]}"
run fanout-embedded fanout "$BIN/bench-server" -- "${FANOUT[@]}"

field() { sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" "$OUT/$1.json"; }
row() {
  local name=$1 label=$2 unit=$3 one=$4 base=$5 rate
  rate=$(field "$name" "${unit}_per_s")
  local ratio="–"
  if [ -n "$base" ] && [ -n "$rate" ]; then
    ratio=$(awk -v a="$rate" -v b="$(field "$base" "${unit}_per_s")" 'BEGIN { if (b > 0) printf "%.2f×", a / b }')
  fi
  printf '| %s | %s | %s | %s | %s | %s |\n' "$label" "${rate:-failed}" "$ratio" \
    "$(field "$name" latency_p99_us)" "$(field "$name" server_cpu_us_per_"$one")" "$(field "$name" other_cpu_pct)"
}

section=$OUT/section.md
{
  echo "<!-- pushpin:begin -->"
  echo "## Behind Pushpin (stateless)"
  echo
  echo "Measured by \`bash bench/pushpin.sh\` on $started_at (Pushpin $(pushpin --version | cut -d' ' -f2)): each backend"
  echo "behind a private Pushpin (\`pushpin-bench-server\`), loaded through Pushpin's client port; the embedded"
  echo "\`bench-server\` with the same load for comparison. Nothing is pinned, so Pushpin's processes (\"other CPU\")"
  echo "share the two cores with the backend and the load alike in every row. *Backend CPU per message* is the"
  echo "backend process's own CPU (Pushpin runs in child processes) per message or delivery."
  echo
  echo "| echo (50 connections, window 4, 64 B) | msgs/s | vs trivial backend | p99 µs | backend CPU µs/msg | other CPU % |"
  echo "|---|---|---|---|---|---|"
  row echo-trivial "trivial backend (the gateway's ceiling)" msgs msg echo-trivial
  row echo-worker "pikku worker, memory stores" msgs msg echo-trivial
  row echo-worker-redis "pikku worker, Redis stores" msgs msg echo-trivial
  row echo-embedded "embedded server, no gateway" msgs msg ""
  echo
  echo "| fan-out (1,000 subscribers, window 8) | deliveries/s | | p99 µs | backend CPU µs/delivery | other CPU % |"
  echo "|---|---|---|---|---|---|"
  row fanout-worker "pikku worker, memory stores" deliveries delivery ""
  row fanout-worker-redis "pikku worker, Redis stores" deliveries delivery ""
  row fanout-embedded "embedded server, no gateway" deliveries delivery ""
  echo
  echo "Through Pushpin, every message is an HTTP request from Pushpin to the backend and back, so Pushpin's own"
  echo "work bounds the rate; the worker's share is its CPU per message. A publication reaches the subscribers with"
  echo "one request to Pushpin's publish API per 900 kB of items, and Pushpin delivers them (its \`message_rate\`"
  echo "defaults to 2,500 messages a second; the bench's Pushpin allows 100,000). In the fan-out rows the"
  echo "publisher's acks come back once Pushpin has taken the items, sooner than it delivers them, so deliveries"
  echo "queue in Pushpin and their latency grows over the run: there the rate, not the p99, is what to read."
  echo "<!-- pushpin:end -->"
} >"$section"

if grep -q '<!-- pushpin:begin -->' "$DOC"; then
  awk -v section="$section" '
    /<!-- pushpin:begin -->/ { while ((getline line < section) > 0) print line; skip = 1; next }
    /<!-- pushpin:end -->/ { skip = 0; next }
    !skip { print }
  ' "$DOC" >"$DOC.tmp" && mv "$DOC.tmp" "$DOC"
else
  { echo; cat "$section"; } >>"$DOC"
fi
cat "$section"
echo "== wrote the Pushpin section of $DOC"
