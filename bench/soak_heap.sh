#!/usr/bin/env bash
# Heap in use over a soak, to tell a leak from allocator retention: runs bench-server under heaptrack
# with a churn-heavy `pikku-bench soak`, then prints the heap in use (live allocations) every ~30 s
# next to the server RSS the soak sampled. A leak grows the heap; retention grows only the RSS.
#
# Usage: bash bench/soak_heap.sh
# Knobs (environment): SECS (600), CONNECTIONS (5000), CHURN (250 per second), PORT (18710),
# DIR (target/bench-results/soak-heap). Needs heaptrack (apt-get install heaptrack).
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${SECS:-600}
CONNECTIONS=${CONNECTIONS:-5000}
CHURN=${CHURN:-250}
PORT=${PORT:-18710}
DIR=${DIR:-target/bench-results/soak-heap}
command -v heaptrack >/dev/null || { echo "heaptrack is not installed" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

cargo build --release -p pikku-bench
BIN=${CARGO_TARGET_DIR:-target}/release
mkdir -p "$DIR"
rm -f "$DIR"/heap.*
LAUNCHED=$(date +%s.%N)
heaptrack -o "$DIR/heap" "$BIN/bench-server" --port "$PORT" >"$DIR/server.log" 2>&1 &
for _ in $(seq 200); do
  [ -n "$(ss -Hltn "sport = :$PORT" 2>/dev/null)" ] && break
  sleep 0.05
done
# The server itself, not heaptrack's wrapper around it.
SERVER_PID=$(pgrep -xf "$BIN/bench-server --port $PORT" | head -1)
[ -n "$SERVER_PID" ] || { echo "bench-server did not start" >&2; cat "$DIR/server.log" >&2; exit 1; }
LOAD_STARTED=$(date +%s.%N)
"$BIN/pikku-bench" soak --url "ws://127.0.0.1:$PORT/bench" --server-pid "$SERVER_PID" \
  --connections "$CONNECTIONS" --echoers 100 --duration-secs "$SECS" --sample-secs 30 \
  --churn-per-s "$CHURN" --out "$DIR/soak.csv" | tail -1 | tee "$DIR/result.json"
kill -TERM "$SERVER_PID"
while kill -0 "$SERVER_PID" 2>/dev/null; do sleep 0.2; done
sleep 1
heaptrack_print -f "$DIR"/heap.*zst --print-massif "$DIR/massif.out" >/dev/null
python3 - "$DIR/massif.out" "$DIR/soak.csv" "$LAUNCHED" "$LOAD_STARTED" "$DIR/result.json" <<'PY'
import csv, json, sys
heap = []
t = None
for line in open(sys.argv[1]):
    if line.startswith("time="):
        t = float(line.split("=")[1])
    elif line.startswith("mem_heap_B=") and t is not None:
        heap.append((t, int(line.split("=")[1])))
rows = list(csv.DictReader(open(sys.argv[2])))
# Soak time 0 is when its connections were up: load start + setup, on heaptrack's clock (process start).
setup = json.loads(open(sys.argv[5]).read().split(" ", 1)[1])["setup_s"]
start = float(sys.argv[4]) - float(sys.argv[3]) + setup
print(f"{'soak s':>8} {'heap in use MiB':>16} {'server RSS MiB':>15}")
for row in rows:
    at = start + float(row["t_s"])
    live = min(heap, key=lambda h: abs(h[0] - at))[1]
    rss = int(row["server_rss_kib"]) / 1024
    print(f"{float(row['t_s']):8.0f} {live / 2**20:16.2f} {rss:15.2f}")
PY
