#!/usr/bin/env bash
# scripts/test-cross.sh: builds kefud for aarch64 with cross (scripts/cross-podman.sh: Debian's
# podman, an image made here by mmdebstrap, no registry) into target/cross, and checks that it
# behaves as the binary built with Debian's cross linker (scripts/cross.sh
# aarch64-unknown-linux-gnu test must have run: its aarch64 test binaries are reused): the same
# version, the shipped config accepted, and the integration tests of the visitor WebSocket
# contract, the CLI and updates passing against it under qemu-user (KEFUD_BIN). Prints both
# binaries' sizes and the build time.
set -euo pipefail
cd "$(dirname "$0")/.."
target=aarch64-unknown-linux-gnu
plain=target/$target/release/kefud
built=target/cross/$target/release/kefud
[ -x "$plain" ] || { echo "test-cross: no $plain: run scripts/cross.sh $target first" >&2; exit 1; }
start=$(date +%s)
scripts/cross-podman.sh build --release --locked --target "$target" --target-dir target/cross --bin kefud
echo "cross build: $(( $(date +%s) - start )) s"
export QEMU_LD_PREFIX=/usr/aarch64-linux-gnu
passed=0
check() { # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@"; then echo "PASS $what"; passed=$((passed + 1)); else echo "FAIL $what"; exit 1; fi
}
check "cross built an aarch64 binary ($(file -b "$built" | cut -d, -f1-2))" \
  sh -c "file -b '$built' | grep -q 'ARM aarch64'"
check "it is the same version as the plain cross linker's ($("$built" --version))" \
  test "$("$built" --version)" = "$("$plain" --version)"
check "it accepts the shipped config" "$built" --config config/kefud.toml --check-config
echo "sizes: cross $(stat -c %s "$built") bytes, plain cross linker $(stat -c %s "$plain") bytes"
KEFUD_BIN=$PWD/$built cargo test --release --locked --target "$target" \
  --test visitor_ws --test cli --test update -- --test-threads=2
echo "cross tests: $passed checks passed, and the integration tests above against the cross binary"
