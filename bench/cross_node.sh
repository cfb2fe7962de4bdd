#!/usr/bin/env bash
# Cross-node fan-out through each broker: two bench-server nodes on the same hub URL, SUBSCRIBERS
# subscribers on node 1, a publisher on node 2 publishing RATE times a second, so every delivery
# crosses the broker. Prints one table row per backend: deliveries/s, delivery ratio, publish->deliver
# p50/p99/max, CPU per delivery of both nodes and of the broker.
#
# Usage: bash bench/cross_node.sh
# Knobs (environment): HUBS (the three brokers on their default ports), SUBSCRIBERS (100), RATE
# (200), DURATION (10), PORT (18950), OUT (target/bench-results/cross-node).
set -euo pipefail
cd "$(dirname "$0")/.."

HUBS=${HUBS:-"redis://127.0.0.1:6379 nats://127.0.0.1:4222 postgres://postgres@127.0.0.1:5432/postgres"}
SUBSCRIBERS=${SUBSCRIBERS:-100}
RATE=${RATE:-200}
DURATION=${DURATION:-10}
PORT=${PORT:-18950}
OUT=${OUT:-target/bench-results/cross-node}

cargo build --release -p pikku-bench
BIN=${CARGO_TARGET_DIR:-target}/release
rm -rf "$OUT"
mkdir -p "$OUT"

# The broker's process, from the port it listens on. PostgreSQL serves each session from a
# process of its own, so its listening process says nothing about the work: no figure for it.
broker_pid() {
  local port
  case $1 in postgres*) return 0 ;; esac
  port=$(echo "$1" | sed -E 's#^[a-z+]+://([^@/]*@)?[^:/]+:?([0-9]*).*#\2#')
  ss -Hltnp "sport = :$port" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2
}

echo "| backend | subscribers × rate | deliveries/s | delivery ratio | p50 ms | p99 ms | max ms | node 1 µs/delivery | node 2 µs/delivery | broker µs/delivery |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for hub in $HUBS; do
  name=${hub%%://*}
  "$BIN/bench-server" --port "$PORT" --hub "$hub" >"$OUT/$name-node1.log" 2>&1 &
  n1=$!
  "$BIN/bench-server" --port $((PORT + 1)) --hub "$hub" >"$OUT/$name-node2.log" 2>&1 &
  n2=$!
  for log in "$OUT/$name-node1.log" "$OUT/$name-node2.log"; do
    for _ in $(seq 100); do grep -q "listening on" "$log" && break; sleep 0.1; done
  done
  broker=$(broker_pid "$hub")
  "$BIN/pikku-bench" fanout --url "ws://127.0.0.1:$PORT/bench" \
    --publisher-url "ws://127.0.0.1:$((PORT + 1))/bench" --server-pid "$n1" --publisher-pid "$n2" \
    ${broker:+--broker-pid "$broker"} --subscribers "$SUBSCRIBERS" --rate "$RATE" \
    --duration "$DURATION" --warmup 2 >"$OUT/$name.out" 2>&1 || true
  kill "$n1" "$n2" 2>/dev/null || true
  wait "$n1" "$n2" 2>/dev/null || true
  PORT=$((PORT + 2))
  python3 - "$OUT/$name.out" "$name" "$SUBSCRIBERS" "$RATE" <<'EOF'
import json, sys
path, name, subs, rate = sys.argv[1:]
lines = [l for l in open(path) if l.startswith("RESULT ")]
if not lines:
    print(f"| {name} | failed: see {path} |")
    sys.exit()
d = json.loads(lines[-1][7:])
f = lambda k, div=1, fmt="{:.2f}": fmt.format(d[k] / div) if k in d else "—"
print(f"| {name} | {subs} × {rate}/s | {d['deliveries_per_s']:,.0f} | {d.get('delivery_ratio', 0):.4f} | "
      f"{f('latency_p50_us', 1000)} | {f('latency_p99_us', 1000)} | {f('latency_max_us', 1000)} | "
      f"{f('server_cpu_us_per_delivery')} | {f('publisher_server_cpu_us_per_delivery')} | "
      f"{f('broker_cpu_us_per_delivery')} |")
EOF
done
