#!/usr/bin/env bash
# Browser tests of the agent console and the web widget: Debian's chromium driven by
# playwright-core (tests/browser) against a real kefud on 127.0.0.1 with a fresh data directory.
# Installs what is missing (chromium, CJK fonts, the npm packages), runs the tests with every
# wait bounded, leaves one screenshot per test in target/screenshots/ and the daemon's log in
# target/browser-kefud.log, stops kefud, and exits non-zero on any failure.
#
#   KEFUD_BIN=path      the binary to test (default target/release/kefud; build it first)
#   KEFUD_WEB_DIR=dir   serve web/ from disk instead of the copy embedded in the binary
#   UPDATE_DOC_SCREENSHOTS=1  also refresh docs/screenshots/console.png and widget.png
#   BROWSER_TESTS="a b"  run only these files of tests/browser/test (while working on them)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

export KEFUD_BIN=${KEFUD_BIN:-$root/target/release/kefud}
if [ ! -x "$KEFUD_BIN" ]; then
  echo "test-browser: no kefud at $KEFUD_BIN (run cargo build --release first)" >&2
  exit 1
fi

# certutil (libnss3-tools) puts the box's CA into the test browser's own trust store.
if [ ! -x /usr/bin/chromium ] || ! fc-list 2>/dev/null | grep -qi 'Noto Sans CJK' || ! command -v certutil >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  timeout 600 apt-get update -qq
  timeout 1200 apt-get install -y -qq --no-install-recommends chromium fonts-noto-cjk fontconfig libnss3-tools >/dev/null
fi
if ! command -v npm >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "test-browser: Node.js 20 or newer with npm is needed" >&2
  exit 1
fi
# npm ci again whenever the lock file changed since the last install (a new package, a new
# version): node_modules/.lock-sha256 holds the hash of the lock it was installed from.
want=$(sha256sum tests/browser/package-lock.json | cut -d' ' -f1)
have=$(cat tests/browser/node_modules/.lock-sha256 2>/dev/null || true)
if [ "$want" != "$have" ]; then
  (cd tests/browser && timeout 600 npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" >tests/browser/node_modules/.lock-sha256
fi

work=$(mktemp -d /tmp/kefud-browser.XXXXXX)
export KEFUD_PID_FILE=$work/kefud.pid
cleanup() {
  if [ -s "$KEFUD_PID_FILE" ]; then kill -9 "$(cat "$KEFUD_PID_FILE")" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

export KEFUD_PORT
KEFUD_PORT=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
export KEFUD_TLS_PORT
KEFUD_TLS_PORT=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
export KEFUD_CONFIG=$work/kefud.toml
mkdir -p "$work/data"
printf '[server]\nlisten = "127.0.0.1:%s"\n[storage]\ndata_dir = "%s"\n' "$KEFUD_PORT" "$work/data" >"$KEFUD_CONFIG"
# HTTPS beside HTTP, on loopback (https.test.mjs maps kefu.local to it in the browser).
printf '[tls]\nlisten = "127.0.0.1:%s"\n' "$KEFUD_TLS_PORT" >>"$KEFUD_CONFIG"
# Updates: a release key of this run's own, a bundle of the next version signed with it and one
# signed with another key (kefud never opens the package inside; the helper is not run here).
keys=$work/update-keys
mkdir -p "$keys"
"$KEFUD_BIN" update keygen "$keys/release" >/dev/null
"$KEFUD_BIN" update keygen "$keys/other" >/dev/null
next=$("$KEFUD_BIN" --version | sed 's/^kefud //' | awk -F. '{ printf "%d.%d.%d", $1, $2, $3 + 1 }')
deb=$keys/kefud_${next}-1_$(dpkg --print-architecture).deb
head -c 200000 /dev/urandom >"$deb"
export KEFUD_UPDATE_NEXT=$next KEFUD_UPDATE_GOOD=$work/next.kefu KEFUD_UPDATE_FORGED=$work/forged.kefu
"$KEFUD_BIN" update bundle --key "$keys/release.key" --version "$next" --out "$KEFUD_UPDATE_GOOD" "$deb" >/dev/null
"$KEFUD_BIN" update bundle --key "$keys/other.key" --version "$next" --out "$KEFUD_UPDATE_FORGED" "$deb" >/dev/null
export KEFUD_UPDATE_SPOOL=$work/update-spool
printf '[update]\npublic_key = "%s"\nspool_dir = "%s"\n' "$keys/release.pub" "$KEFUD_UPDATE_SPOOL" >>"$KEFUD_CONFIG"

export SCREENSHOT_DIR=$root/target/screenshots KEFUD_LOG=$root/target/browser-kefud.log
rm -rf "$SCREENSHOT_DIR"
mkdir -p "$SCREENSHOT_DIR"
: >"$KEFUD_LOG"

cd tests/browser
if [ -n "${BROWSER_TESTS:-}" ]; then
  read -r -a files <<<"$BROWSER_TESTS"
  files=("${files[@]/#/test/}")
else
  files=(test/*.test.mjs)
fi
timeout 900 node --test --test-concurrency=1 --test-reporter=spec "${files[@]}"
