#!/bin/sh
# scripts/update-key.sh: writes target/update-key/update-key.pub, the public key the .deb ships
# (/usr/share/kefud/update-key.pub) and update bundles must be signed with. Run before
# `cargo deb` (the test command and scripts/cross.sh do).
#   KEFUD_RELEASE_KEY=FILE   a release: the public half of that secret key (made once with
#                            `kefud update keygen`, kept off the repository and the boxes)
#   KEFUD_UPDATE_TEST_KEY=1  tests: this machine's test key, target/update-key/test.key, made on
#                            first use; packages built so take bundles signed with it, so they
#                            are for tests only (the test command sets it)
#   neither                  an empty file: the package takes no bundles (the console says so)
#                            and is updated with dpkg
# Uses the kefud binary in target/release (KEFUD=... to name another). Idempotent.
set -eu
cd "$(dirname "$0")/.."
kefud=${KEFUD:-target/release/kefud}
dir=target/update-key
mkdir -p "$dir"
if [ -n "${KEFUD_RELEASE_KEY:-}" ]; then
  secret=$KEFUD_RELEASE_KEY
elif [ "${KEFUD_UPDATE_TEST_KEY:-0}" = 1 ]; then
  secret=$dir/test.key
else
  : > "$dir/update-key.pub.tmp"
  mv -f "$dir/update-key.pub.tmp" "$dir/update-key.pub"
  echo "$dir/update-key.pub: empty (no KEFUD_RELEASE_KEY): packages built now take no update bundles"
  exit 0
fi
[ -x "$kefud" ] || cargo build --release --locked --bin kefud
[ -f "$secret" ] || [ -n "${KEFUD_RELEASE_KEY:-}" ] || "$kefud" update keygen "$dir/test" >/dev/null
"$kefud" update public-key --key "$secret" > "$dir/update-key.pub.tmp"
mv -f "$dir/update-key.pub.tmp" "$dir/update-key.pub"
echo "$dir/update-key.pub: $(cut -d' ' -f3 "$dir/update-key.pub" | cut -c1-16)... (from $secret)"
