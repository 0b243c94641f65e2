#!/usr/bin/env bash
# Cross-builds kefud for a Raspberry Pi target with Debian's cross compilers (.cargo/config.toml)
# and packages it with cargo-deb; with `test`, first runs the whole test suite for that target
# under qemu-user (cargo's runner), and packages exactly the binary those tests ran.
# Usage: scripts/cross.sh TARGET [test]     e.g. scripts/cross.sh aarch64-unknown-linux-gnu test
# Prints the .deb's path and the stripped binary's size.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: scripts/cross.sh TARGET [test]}
mode=${2:-build}
bin=target/$target/release/kefud

if [ "$mode" = test ]; then
  # The integration tests spawn $bin (CARGO_BIN_EXE_kefud), which the kernel hands to qemu
  # through binfmt_misc; the runner passes QEMU_LD_PREFIX on to it.
  cargo test --release --locked --target "$target" -- --test-threads=2
else
  cargo build --release --locked --target "$target" --bin kefud
fi
tested=$(sha256sum "$bin" | cut -d' ' -f1)
scripts/update-key.sh >/dev/null
deb=$(cargo deb --no-build --target "$target" -o "target/$target/debian/" 2>/dev/null | tail -1)
packaged=$(dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/bin/kefud | sha256sum | cut -d' ' -f1)
if [ "$tested" != "$packaged" ]; then
  echo "FAIL $deb does not hold the binary that was built/tested ($bin)" >&2
  exit 1
fi
echo "package: $deb"
echo "stripped kefud for $target: $(stat -c %s "$bin") bytes ($(file -b "$bin" | cut -d, -f1-2))"
