#!/usr/bin/env bash
# Runs every test kefud has. Idempotent: installs what is missing (scripts/setup-host.sh),
# fast when all is there. Runs as root (package install, tmpfs mounts, the image build).
# Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# Packages built here for the tests take update bundles signed with this machine's test key
# (scripts/update-key.sh); a release sets KEFUD_RELEASE_KEY instead.
export KEFUD_UPDATE_TEST_KEY=1

# Rust toolchain: the machine's rustup one; nothing to fetch beyond crates and targets.
command -v cargo >/dev/null || { echo "cargo not found: install Rust with rustup first" >&2; exit 1; }
scripts/setup-host.sh

# The workspace: the daemon (the root package) and tools/ (the load tool, the test kit).
echo "== formatting (cargo fmt --all --check)"
if cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt >/dev/null 2>&1; then
  cargo fmt --all --check
else
  echo "rustfmt is not available on this machine: formatting not checked" >&2
fi

echo "== lints (cargo clippy --workspace --all-targets -- -D warnings)"
cargo clippy --locked --workspace --all-targets -- -D warnings

echo "== unit and integration tests (debug build, real binary, loopback only)"
cargo test --locked --workspace -- --test-threads=2

echo "== release build and a short load run (bounded: 3 s per phase, loopback)"
cargo build --release --locked --workspace --bins
./target/release/kefud-load throughput --visitors 50 --seconds 3 --spawn ./target/release/kefud
echo "== what a message costs on the Pi's terms: disk bytes, write syscalls, CPU (BENCHMARKS.md)"
./target/release/kefud-load throughput --visitors 100 --rate 50 --seconds 5 --spawn ./target/release/kefud
./target/release/kefud-load throughput --visitors 1000 --rate 2000 --seconds 5 --spawn ./target/release/kefud
if [ "$(id -u)" = 0 ] && [ -w /sys/fs/cgroup/blkio/blkio.throttle.write_iops_device ] && command -v losetup >/dev/null; then
  echo "== the same on a loop device throttled to a cheap A1 SD card's write IOPS and bandwidth"
  ./target/release/kefud-load throughput --visitors 100 --rate 50 --seconds 5 --slow-device a1-cheap \
    --spawn ./target/release/kefud
else
  echo "== slow-device run SKIPPED: needs root, losetup and cgroup v1 blkio throttling (see BENCHMARKS.md)"
fi
echo "== MQTT in: kefud (durable PUBACKs) vs mosquitto's own QoS 1 pub->sub, the image's broker config and broker saver"
./target/release/kefud-load mqtt --messages 20000 --broker-saver --spawn ./target/release/kefud \
  --mosquitto-conf image/overlay/etc/mosquitto/conf.d/kefu.conf

echo "== cluster sync: three boxes, each mosquitto bridged to a central one, vs the brokers alone"
./target/release/kefud-load cluster --steady-secs 4 --burst-secs 2 --catch-up-ops 20000 \
  --spawn ./target/release/kefud
echo "== the same with delayed ACKs off on the routes, as README 'Several shops' advises (mosquitto's"
echo "   bridges keep Nagle on their own sockets), in a network namespace of its own"
if unshare -n true 2>/dev/null && command -v ip >/dev/null; then
  unshare -n scripts/quickack-netns.sh ./target/release/kefud-load cluster --steady-secs 4 \
    --burst-secs 2 --catch-up-ops 20000 --spawn ./target/release/kefud
else
  echo "skipped: this machine cannot make a network namespace (unshare -n needs root) or has no ip"
fi

echo "== import: a go-fly dump through 'kefud import gofly' vs a parse-only pass of the same file"
echo "   (1,000,000 messages here; the 5,000,000 of the goal are in BENCHMARKS.md with their command)"
./target/release/kefud-load import --messages 1000000 --visitors 40000 --spawn ./target/release/kefud

echo "== the console and the widget in headless Chromium (playwright-core), pages embedded in the binary"
scripts/test-browser.sh

intents=${KEFUD_INTENT_DATA:-../shared/data/intents}
if [ -f "$intents/clinc150.jsonl" ]; then
  echo "== intent detection: kefud vs scikit-learn on the intent datasets (read in place)"
  KEFUD_INTENT_DATA=$(cd "$intents" && pwd) cargo bench --locked --bench intent
else
  echo "== intent benchmark SKIPPED: no datasets at $intents (set KEFUD_INTENT_DATA)"
fi

echo "== the Debian package on this machine: install, unit checks, upgrade, remove, purge"
scripts/test-deb.sh
echo "== upgrade from the previous release's package to this one, kefud-rollback, and forward again"
scripts/test-upgrade.sh
echo "== signed update bundles: uploaded in the console's API, installed by the root helper, rolled back"
scripts/test-update.sh

echo "== aarch64: the release binary that ships, and every test against it under qemu-user"
scripts/cross.sh aarch64-unknown-linux-gnu test
echo "== the same benchmark against the aarch64 binary under qemu-user (a smoke run: figures not compared)"
QEMU_LD_PREFIX=/usr/aarch64-linux-gnu ./target/release/kefud-load throughput --visitors 100 --rate 50 \
  --seconds 3 --spawn target/aarch64-unknown-linux-gnu/release/kefud

if [ -f "$intents/clinc150.jsonl" ]; then
  echo "== intent training and matching for aarch64 under qemu-user (the same bench, the shipped architecture)"
  KEFUD_INTENT_DATA=$(cd "$intents" && pwd) cargo bench --locked --target aarch64-unknown-linux-gnu --bench intent
fi

echo "== cross build in podman (an image made by mmdebstrap), tested like the plain cross linker's binary"
scripts/test-cross.sh

echo "== armv7 (32-bit Raspberry Pi OS): release build and .deb"
scripts/cross.sh armv7-unknown-linux-gnueabihf

echo "== the next release for aarch64 (this tree as the next patch version), for the image's update checks"
next_deb=$(scripts/next-release.sh aarch64-unknown-linux-gnu)
echo "== the SD-card image: build (cached base), boot under qemu-system-aarch64, power cuts, MQTT, updates"
NEXT_DEB=$next_deb image/ci.sh
