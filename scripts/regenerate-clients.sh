#!/usr/bin/env bash
# Regenerates every committed description and generated client from the Rust definitions: the conformance
# fixture's (the generator's golden files) and the chat demo's. Tests fail while any of them is stale.
set -euo pipefail
cd "$(dirname "$0")/.."

fixture=crates/pikku-codegen/tests/fixtures/conformance.description.json
cargo run -q -p pikku-conformance --example describe > "$fixture"
cargo run -q -p pikku-codegen -- --description "$fixture" --out crates/pikku-codegen/tests/golden
