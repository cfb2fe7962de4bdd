#!/usr/bin/env bash
# Regenerates every committed description and generated client from the Rust definitions: the conformance
# fixture's (the generator's golden files) and the chat demo's (the client its page imports). Tests fail while any
# of them is stale. The demo's client is also compiled to JavaScript, which needs Node and npm.
set -euo pipefail
cd "$(dirname "$0")/.."

fixture=crates/pikku-codegen/tests/fixtures/conformance.description.json
cargo run -q -p pikku-conformance --example describe > "$fixture"
cargo run -q -p pikku-codegen -- --description "$fixture" --out crates/pikku-codegen/tests/golden

# The chat demo: its description, the generated files, and channels.gen.js, the ES module its page imports
# (compiled with the typescript pinned in the browser test's package, so the output is reproducible).
chat=examples/chat-rooms
cargo run -q -p example-chat-rooms --example describe > "$chat/static/chat.description.json"
cargo run -q -p pikku-codegen -- --description "$chat/static/chat.description.json" --out "$chat/static/client" \
  --title "pikku chat rooms"
node_dir="$chat/tests/browser"
if [ ! -e "$node_dir/node_modules/typescript/bin/tsc" ]; then
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
fi
node "$node_dir/node_modules/typescript/bin/tsc" -p "$node_dir/tsconfig.client.json"
