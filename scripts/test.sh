#!/usr/bin/env bash
# Runs every test kefud has. Idempotent: installs what is missing, fast when all is there.
# Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# Rust toolchain: the machine's rustup one; nothing to fetch beyond crates.
command -v cargo >/dev/null || { echo "cargo not found: install Rust with rustup first" >&2; exit 1; }

echo "== unit and integration tests (debug build, real binary, loopback only)"
cargo test --locked -- --test-threads=2

echo "== release build and a short load run (bounded: 3 s per phase, loopback)"
cargo build --release --locked --bins
./target/release/kefud-load throughput --visitors 50 --seconds 3 --spawn ./target/release/kefud
