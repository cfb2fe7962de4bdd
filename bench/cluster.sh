#!/usr/bin/env bash
# A cluster on one machine: NODES bench-server processes sharing one broker, CONNECTIONS subscribers in
# all (spread evenly, one load-generating process per node, each below the per-process descriptor
# limit), every connection subscribed to one topic; then COUNT broadcasts from node 0 at RATE per
# second. Prints and writes $OUT/summary.md: connections accepted, delivery ratio, publish->deliver
# latency, server RSS per connection and the broker's CPU.
#
# Usage: bash bench/cluster.sh
# Knobs (environment): NODES (6), CONNECTIONS (100000), COUNT (20), RATE (0.5), HUB
# (redis://127.0.0.1:6379), BROKER_PID (found from the HUB port when unset), PORT (first port, 18900),
# SOURCE_IPS (32, loopback source addresses per load process),
# OUT (target/bench-results/cluster).
set -euo pipefail
cd "$(dirname "$0")/.."

NODES=${NODES:-6}
CONNECTIONS=${CONNECTIONS:-100000}
COUNT=${COUNT:-20}
RATE=${RATE:-0.5}
HUB=${HUB:-redis://127.0.0.1:6379}
PORT=${PORT:-18900}
OUT=${OUT:-target/bench-results/cluster}
# Loopback source addresses per load process: each address has its own ephemeral ports, and a
# crowded range makes every bind() slower, which stalls a single-threaded load generator.
SOURCE_IPS=${SOURCE_IPS:-32}

cargo build --release -p pikku-bench
BIN=${CARGO_TARGET_DIR:-target}/release
rm -rf "$OUT"
mkdir -p "$OUT"

children=()
cleanup() {
  for pid in "${children[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

if [ -z "${BROKER_PID:-}" ]; then
  broker_port=$(echo "$HUB" | sed -E 's#^[a-z+]+://([^@/]*@)?[^:/]+:?([0-9]*).*#\2#')
  BROKER_PID=$(ss -Hltnp "sport = :${broker_port:-6379}" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
fi
echo "== broker pid ${BROKER_PID:-unknown} for $HUB"

echo "== starting $NODES nodes on $HUB"
node_pids=()
for i in $(seq 0 $((NODES - 1))); do
  "$BIN/bench-server" --port $((PORT + i)) --hub "$HUB" >"$OUT/node$i.log" 2>&1 &
  node_pids+=($!)
  children+=($!)
done
for i in $(seq 0 $((NODES - 1))); do
  for _ in $(seq 100); do grep -q "listening on" "$OUT/node$i.log" && break; sleep 0.1; done
  grep -q "listening on" "$OUT/node$i.log" || { echo "node $i did not start"; cat "$OUT/node$i.log"; exit 1; }
done
rss_idle=()
for pid in "${node_pids[@]}"; do rss_idle+=("$(rss_kib "$pid")"); done

echo "== opening $CONNECTIONS subscribers"
per=$((CONNECTIONS / NODES))
sub_pids=()
open_started=$SECONDS
for i in $(seq 0 $((NODES - 1))); do
  n=$per
  [ "$i" -eq 0 ] && n=$((CONNECTIONS - per * (NODES - 1)))
  "$BIN/pikku-bench" broadcast --role subscribe --url "ws://127.0.0.1:$((PORT + i))/bench" \
    --server-pid "${node_pids[$i]}" --subscribers "$n" --count "$COUNT" --settle 15 --source-ips "$SOURCE_IPS" \
    >"$OUT/subscribers$i.out" 2>&1 &
  sub_pids+=($!)
  children+=($!)
done
for i in $(seq 0 $((NODES - 1))); do
  until grep -q '^READY' "$OUT/subscribers$i.out"; do
    kill -0 "${sub_pids[$i]}" 2>/dev/null || { echo "subscribers $i failed"; tail "$OUT/subscribers$i.out"; exit 1; }
    [ $((SECONDS - open_started)) -lt 600 ] || { echo "subscribers $i not ready in 600 s"; exit 1; }
    sleep 0.5
  done
done
open_s=$((SECONDS - open_started))
accepted=$(cat "$OUT"/subscribers*.out | awk '/^READY/ { s += $2 } END { print s }')
echo "== $accepted connections subscribed in ${open_s} s"

broker_before=$( [ -n "${BROKER_PID:-}" ] && cpu_ticks "$BROKER_PID" || echo 0)
nodes_before=0
for pid in "${node_pids[@]}"; do nodes_before=$((nodes_before + $(cpu_ticks "$pid"))); done
echo "== broadcasting $COUNT publications from node 0 at $RATE/s"
"$BIN/pikku-bench" broadcast --role publish --url "ws://127.0.0.1:$PORT/bench" --count "$COUNT" \
  --rate "$RATE" >"$OUT/publisher.out" 2>&1
for pid in "${sub_pids[@]}"; do wait "$pid" || true; done
broker_after=$( [ -n "${BROKER_PID:-}" ] && cpu_ticks "$BROKER_PID" || echo 0)
nodes_after=0
for pid in "${node_pids[@]}"; do nodes_after=$((nodes_after + $(cpu_ticks "$pid"))); done
rss_loaded=()
for pid in "${node_pids[@]}"; do rss_loaded+=("$(rss_kib "$pid")"); done

python3 - "$OUT" "$CONNECTIONS" "$accepted" "$COUNT" "$RATE" "$NODES" "$HUB" "$open_s" \
  "$((broker_after - broker_before))" "$((nodes_after - nodes_before))" "$(getconf CLK_TCK)" \
  "${rss_idle[*]}" "${rss_loaded[*]}" <<'EOF'
import glob, json, sys
(out, wanted, accepted, count, rate, nodes, hub, open_s, broker_ticks, node_ticks, hz,
 rss_idle, rss_loaded) = sys.argv[1:]
results = []
for path in sorted(glob.glob(f"{out}/subscribers*.out")):
    line = [l for l in open(path) if l.startswith("RESULT ")][-1]
    results.append(json.loads(line[len("RESULT "):]))
pub = json.loads([l for l in open(f"{out}/publisher.out") if l.startswith("RESULT ")][-1][7:])
deliveries = sum(r["deliveries"] for r in results)
expected = int(accepted) * int(count)
hz = int(hz)
idle = [int(x) for x in rss_idle.split()]
loaded = [int(x) for x in rss_loaded.split()]
rss_per_conn = (sum(loaded) - sum(idle)) * 1024 / max(int(accepted), 1)
rows = [
    ("nodes", f"{nodes} × bench-server, hub {hub}"),
    ("connections wanted / accepted", f"{int(wanted):,} / {int(accepted):,} (subscribed in {open_s} s)"),
    ("broadcasts acknowledged", f"{pub['publishes']} of {count} at {rate}/s from node 0"),
    ("deliveries / expected", f"{deliveries:,} / {expected:,}"),
    ("delivery ratio", f"{deliveries / max(expected, 1):.6f}"),
    ("publish→deliver p50 (median of the nodes' p50)", f"{sorted(r['latency_p50_us'] for r in results)[len(results)//2] / 1000:.1f} ms"),
    ("publish→deliver p99 (worst node)", f"{max(r['latency_p99_us'] for r in results) / 1000:.1f} ms"),
    ("publish→deliver max", f"{max(r['latency_max_us'] for r in results) / 1000:.1f} ms"),
    ("server RSS per connection (all nodes)", f"{rss_per_conn:,.0f} B"),
    ("server CPU per delivery (all nodes)", f"{int(node_ticks) / hz * 1e6 / max(deliveries, 1):.2f} µs"),
    ("broker CPU during the broadcasts", f"{int(broker_ticks) / hz:.2f} s ({int(broker_ticks) / hz * 1e6 / max(int(pub['publishes']) * int(nodes), 1):.0f} µs per message and node)"),
]
table = "| | |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows) + "\n"
per_node = "\n| node | connections | deliveries | p50 | p99 | max | RSS per connection |\n|---|---|---|---|---|---|---|\n"
for i, r in enumerate(results):
    per_node += (f"| {i} | {r['subscribers']:,} | {r['deliveries']:,} | {r['latency_p50_us']/1000:.1f} ms | "
                 f"{r['latency_p99_us']/1000:.1f} ms | {r['latency_max_us']/1000:.1f} ms | "
                 f"{r.get('server_rss_per_conn_b', 0):,.0f} B |\n")
open(f"{out}/summary.md", "w").write(table + per_node)
print(table + per_node)
EOF
