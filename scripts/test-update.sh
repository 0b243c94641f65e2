#!/usr/bin/env bash
# Signed update bundles on this machine (root, the real packages, kefud-update and
# kefud-rollback as the .deb ships them): installs this tree's .deb, gives it messages, then
# uploads bundles in the console's API as an admin and runs the root helper as its path unit
# would: a newer release is installed (version changes, data intact), rolled back from the
# console and installed again; a release whose kefud never becomes ready is rolled back by the
# helper itself with the data as before; forged, unsigned, wrong-architecture, downgrade and
# garbage bundles are refused by kefud (HTTP 422) and by `kefud update verify`, and a
# non-admin cannot upload. The newer release is this tree built as the next patch version
# (scripts/next-release.sh; the same target directory, so only kefud itself is compiled again);
# the broken one is that package with a kefud that reports its version and never starts.
# Bundles are signed with this machine's test key (scripts/update-key.sh). kefud listens on
# loopback only. Usage: scripts/test-update.sh (after `cargo build --release`). Leaves kefud
# purged.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "test-update.sh installs packages: run it as root" >&2; exit 1; }
root=$(pwd)
arch=$(dpkg --print-architecture)
current_version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
next_version=$(echo "$current_version" | awk -F. '{ printf "%d.%d.%d", $1, $2, $3 + 1 }')
broken_version=$(echo "$current_version" | awk -F. '{ printf "%d.%d.%d", $1, $2, $3 + 2 }')
work=target/next-release
bundles=$work/bundles
port=18090
export KEFUD_UPDATE_TEST_KEY=1
scripts/update-key.sh
key=target/update-key/test.key
current_deb=$(cargo deb --no-build --deb-revision 1 -o target/debian/update-current/ 2>/dev/null | tail -1)

# --- the next release: this tree as $next_version ------------------------------------------
next_deb=$(scripts/next-release.sh)

# --- the bundles ---------------------------------------------------------------------------
rm -rf "$bundles" && mkdir -p "$bundles"
kefud=target/release/kefud
$kefud update bundle --key $key --version "$next_version" --out $bundles/next.kefu "$next_deb"
# The broken release: the next package with a kefud that says its version and exits.
rm -rf $work/broken && dpkg-deb -R "$next_deb" $work/broken
printf '#!/bin/sh\n[ "${1:-}" = --version ] && { echo "kefud %s"; exit 0; }\necho "kefud %s: simulated broken release" >&2\nexit 1\n' \
  "$broken_version" "$broken_version" > $work/broken/usr/bin/kefud
sed -i "s/^Version: .*/Version: ${broken_version}-1/" $work/broken/DEBIAN/control
broken_deb=$bundles/kefud_${broken_version}-1_${arch}.deb
dpkg-deb -b --root-owner-group $work/broken "$broken_deb" >/dev/null
$kefud update bundle --key $key --version "$broken_version" --out $bundles/broken.kefu "$broken_deb"
# Signed by another key.
rm -f $bundles/other.key $bundles/other.pub
$kefud update keygen $bundles/other >/dev/null
$kefud update bundle --key $bundles/other.key --version "$next_version" --out $bundles/forged.kefu "$next_deb"
# For another architecture only.
other_arch=s390x; [ "$arch" = s390x ] && other_arch=riscv64
cp "$next_deb" "$bundles/kefud_${next_version}-1_${other_arch}.deb"
$kefud update bundle --key $key --version "$next_version" --out $bundles/wrong-arch.kefu \
  "$bundles/kefud_${next_version}-1_${other_arch}.deb"
# The version that runs before the update (a downgrade once the next one runs).
$kefud update bundle --key $key --version "$current_version" --out $bundles/old.kefu "$current_deb"
# Without its signature.
mkdir -p $bundles/unsigned && tar -xf $bundles/next.kefu -C $bundles/unsigned
tar --format=ustar -cf $bundles/unsigned.kefu -C $bundles/unsigned manifest.json "$(basename "$next_deb")"
head -c 100000 /dev/urandom > $bundles/garbage.kefu

# --- the box -------------------------------------------------------------------------------
passed=0
check() { # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@" >/tmp/kefud-update-check.log 2>&1; then
    echo "PASS $what"; passed=$((passed + 1))
  else
    echo "FAIL $what"; cat /tmp/kefud-update-check.log; exit 1
  fi
}
config=/etc/kefud/kefud.toml
export KEFUD_TEST_CONFIG=$config
# Where systemd is not PID 1 (a build container), the stand-in of test-upgrade.sh starts and
# stops kefud as its unit would; the packages' scripts then leave the service alone, so the
# test starts it after the first install, and kefud-update (re)starts it itself.
[ -d /run/systemd/system ] || export PATH=$root/scripts/upgrade-test:$PATH
as_kefud() { (cd /var/lib/kefud && runuser -u kefud -- "$@"); }
api="http://127.0.0.1:$port/api/v1"
ready() { for _ in $(seq 100); do curl -fsS "127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }
post() { # post PREFIX COUNT: COUNT customer messages through the HTTP API channel
  for i in $(seq "$2"); do
    curl -fsS -XPOST "$api/inbox/kiosk/messages" -H "X-Api-Key: $apikey" -H 'content-type: application/json' \
      -d "{\"contact_id\":\"table-$((i % 3))\",\"client_id\":\"$1-$i\",\"text\":\"$1 message $i\"}" >/dev/null
  done
}
messages() { as_kefud /usr/bin/kefud --config "$config" export 2>/dev/null | grep -c "\"$1 message " || true; }
has_messages() { # has_messages PREFIX COUNT
  for _ in $(seq 50); do [ "$(messages "$1")" = "$2" ] && return 0; sleep 0.2; done
  echo "$1: $(messages "$1") messages, $2 expected"; return 1
}
login() { # login USER PASSWORD: a session token
  curl -fsS -XPOST "$api/login" -H 'content-type: application/json' \
    -d "{\"username\":\"$1\",\"password\":\"$2\"}" | sed -n 's/.*"token":"\([^"]*\)".*/\1/p'
}
upload() { # upload TOKEN FILE: prints the HTTP status and the body
  curl -sS -o /tmp/kefud-update-upload.json -w '%{http_code}' -XPOST "$api/update" \
    -H "Authorization: Bearer $1" -H 'content-type: application/octet-stream' --data-binary "@$2"
  echo " $(cat /tmp/kefud-update-upload.json)"
}
refused() { # refused FILE STATUS PHRASE: the admin's upload gets STATUS with PHRASE in the message
  local out; out=$(upload "$admin" "$1"); echo "$out"
  [ "${out%% *}" = "$2" ] && grep -qF -- "$3" <<<"$out"
}
status() { curl -fsS "$api/update" -H "Authorization: Bearer $admin"; }
runs() { [ "$(/usr/bin/kefud --version)" = "kefud $1" ] && systemctl is-active -q kefud && ready; }
helper_state() { sed -n 's/.*"state":"\([^"]*\)".*/\1/p' /var/lib/kefud-update/status.json; }
cleanup() {
  systemctl stop kefud >/dev/null 2>&1 || true
  dpkg -P kefud >/dev/null 2>&1 || true
  rm -rf /var/lib/kefud /var/lib/kefud-update /usr/lib/kefud /run/kefud-upgrade-test.log /etc/kefud
  systemctl daemon-reload
}

cleanup
trap cleanup EXIT
echo "== install kefud $current_version"
dpkg -i "$current_deb" >/dev/null
# The shop's config: loopback only for the test (HTTP on $port, HTTPS on a port the kernel
# picks), the rest packaged (update paths included).
sed -i "0,/^listen = .*/s//listen = \"127.0.0.1:$port\"/" $config
sed -i '/^\[tls\]/,/^\[/ s/^listen = .*/listen = "127.0.0.1:0"/' $config
systemctl start kefud
check "kefud $current_version runs and answers" runs "$current_version"
check "the package ships the update key, the helper and its units" \
  sh -c "cmp -s /usr/share/kefud/update-key.pub target/update-key/update-key.pub && [ -x /usr/sbin/kefud-update ] && systemd-analyze verify /usr/lib/systemd/system/kefud-update.service /usr/lib/systemd/system/kefud-update.path"
apikey=$(as_kefud /usr/bin/kefud --config "$config" apikey add kiosk --name update-test | tail -1)
echo "an owner's long password" | as_kefud /usr/bin/kefud --config "$config" agent add owner --admin --password-stdin >/dev/null
echo "an agent's long password" | as_kefud /usr/bin/kefud --config "$config" agent add li --password-stdin >/dev/null
admin=$(login owner "an owner's long password")
agent=$(login li "an agent's long password")
post before-update 20
check "20 messages taken by $current_version" has_messages before-update 20
check "GET /api/v1/update: kefud $current_version runs, nothing kept to go back to, the key is known" \
  sh -c "s=\$(curl -fsS $api/update -H 'Authorization: Bearer $admin'); echo \"\$s\"; echo \"\$s\" | grep -q '\"running\":\"$current_version\"' && echo \"\$s\" | grep -q '\"previous\":null' && echo \"\$s\" | grep -q '\"key\":\"[0-9a-f]\\{16\\}\"'"

echo "== refusals"
check "an agent who is not an admin cannot upload (403)" sh -c "upload() { curl -sS -o /dev/null -w '%{http_code}' -XPOST $api/update -H \"Authorization: Bearer \$1\" --data-binary @\$2; }; [ \"\$(upload $agent $bundles/next.kefu)\" = 403 ]"
check "nor read the update status (403)" sh -c "[ \"\$(curl -sS -o /dev/null -w '%{http_code}' $api/update -H 'Authorization: Bearer $agent')\" = 403 ]"
check "no upload without signing in (401)" sh -c "[ \"\$(curl -sS -o /dev/null -w '%{http_code}' -XPOST $api/update --data-binary @$bundles/next.kefu)\" = 401 ]"
check "a bundle signed by another key is refused (422)" refused $bundles/forged.kefu 422 "signature is not from this box's release key"
check "an unsigned bundle is refused (422)" refused $bundles/unsigned.kefu 422 "not signed"
check "a bundle for another architecture is refused (422)" refused $bundles/wrong-arch.kefu 422 "no package for this box ($arch)"
check "a bundle of the version that runs is refused (422)" refused $bundles/old.kefu 422 "is not newer than kefud $current_version"
check "garbage is refused (422)" refused $bundles/garbage.kefu 422 "not a kefud update bundle"
check "nothing refused was handed to the helper" sh -c "[ -z \"\$(ls -A /var/lib/kefud/updates 2>/dev/null)\" ]"
check "kefud update verify refuses the forged bundle with the packaged key" \
  sh -c "if /usr/bin/kefud update verify $bundles/forged.kefu > /tmp/kefud-verify.log 2>&1; then exit 1; fi; cat /tmp/kefud-verify.log; grep -q \"signature is not from this box's release key\" /tmp/kefud-verify.log"
check "the helper refuses a forged bundle put in the spool behind kefud's back, and says so" \
  sh -c "cp $bundles/forged.kefu /var/lib/kefud/updates/pending.kefu && ! /usr/sbin/kefud-update && grep -q '\"state\":\"refused\"' /var/lib/kefud-update/status.json && [ ! -e /var/lib/kefud/updates/pending.kefu ]"
check "kefud $current_version still runs" runs "$current_version"

echo "== update to kefud $next_version from the console"
check "the bundle is accepted (202) and handed to the helper" \
  sh -c "upload() { curl -sS -o /dev/null -w '%{http_code}' -XPOST $api/update -H 'Authorization: Bearer $admin' --data-binary @\$1; }; [ \"\$(upload $bundles/next.kefu)\" = 202 ] && [ -f /var/lib/kefud/updates/pending.kefu ]"
check "another upload meanwhile is refused (409)" refused $bundles/next.kefu 409 "waiting"
/usr/sbin/kefud-update | tee /tmp/kefud-update.log
check "kefud $next_version runs" runs "$next_version"
check "the helper reports it" sh -c "[ \"\$(sed -n 's/.*\"state\":\"\([^\"]*\)\".*/\1/p' /var/lib/kefud-update/status.json)\" = updated ]"
admin=$(login owner "an owner's long password")
check "GET /api/v1/update: $next_version runs, $current_version kept, the last update reported" \
  sh -c "s=\$(curl -fsS $api/update -H 'Authorization: Bearer $admin'); echo \"\$s\"; echo \"\$s\" | grep -q '\"running\":\"$next_version\"' && echo \"\$s\" | grep -q '\"previous\":\"$current_version\"' && echo \"\$s\" | grep -q '\"state\":\"updated\"'"
check "the messages from before the update are there" has_messages before-update 20
post after-update 20
check "20 more taken by $next_version" has_messages after-update 20
check "a bundle older than what runs is refused (422)" refused $bundles/old.kefu 422 "is not newer than kefud $next_version"

echo "== roll back from the console"
check "a rollback is asked for (202)" sh -c "[ \"\$(curl -sS -o /dev/null -w '%{http_code}' -XPOST $api/update/rollback -H 'Authorization: Bearer $admin')\" = 202 ]"
/usr/sbin/kefud-update | tee /tmp/kefud-update.log
check "kefud $current_version runs again" runs "$current_version"
check "the helper reports the rollback" sh -c "[ \"\$(sed -n 's/.*\"state\":\"\([^\"]*\)\".*/\1/p' /var/lib/kefud-update/status.json)\" = rolled-back ]"
check "the messages from before the update are there" has_messages before-update 20
check "the messages taken by $next_version are there" has_messages after-update 20
admin=$(login owner "an owner's long password")
check "nothing is left to roll back to (409)" sh -c "[ \"\$(curl -sS -o /dev/null -w '%{http_code}' -XPOST $api/update/rollback -H 'Authorization: Bearer $admin')\" = 409 ]"
check "the update is taken again (202)" refused $bundles/next.kefu 202 "\"version\":\"$next_version\""
/usr/sbin/kefud-update | tee /tmp/kefud-update.log
check "kefud $next_version runs again" runs "$next_version"

echo "== a release that never becomes ready is rolled back by the helper"
admin=$(login owner "an owner's long password")
check "the broken release's bundle is accepted (it is signed and newer)" refused $bundles/broken.kefu 202 "\"version\":\"$broken_version\""
check "the helper fails and says why" sh -c "if KEFUD_UPDATE_READY_TIMEOUT=10 /usr/sbin/kefud-update > /tmp/kefud-update.log 2>&1; then cat /tmp/kefud-update.log; exit 1; fi; cat /tmp/kefud-update.log; grep -q 'did not become ready (kefud.service' /tmp/kefud-update.log"
check "kefud $next_version runs again" runs "$next_version"
check "the helper reports the automatic rollback" sh -c "[ \"\$(sed -n 's/.*\"state\":\"\([^\"]*\)\".*/\1/p' /var/lib/kefud-update/status.json)\" = rolled-back ] && grep -q 'data as before' /var/lib/kefud-update/status.json"
check "the messages from before the update are there" has_messages before-update 20
check "the messages taken by $next_version are there" has_messages after-update 20
admin=$(login owner "an owner's long password")
post after-rollback 20
check "20 more taken after the automatic rollback" has_messages after-rollback 20

echo "== what kefud (or anyone able to write the spool) might leave for root, and a run cut short"
ln -sf /dev/zero /var/lib/kefud/updates/pending.kefu
check "a symlink in the spool is refused at once, not followed, and removed" \
  sh -c "if timeout 60 /usr/sbin/kefud-update > /tmp/kefud-update.log 2>&1; then exit 1; fi; cat /tmp/kefud-update.log; grep -q 'not a regular file' /var/lib/kefud-update/status.json && [ ! -e /var/lib/kefud/updates/pending.kefu ] && [ ! -L /var/lib/kefud/updates/pending.kefu ]"
mkdir -p /var/lib/kefud/updates/pending.kefu
check "so is a directory, which does not stay behind to start the helper again and again" \
  sh -c "if timeout 60 /usr/sbin/kefud-update > /tmp/kefud-update.log 2>&1; then exit 1; fi; [ ! -e /var/lib/kefud/updates/pending.kefu ]"
echo 9.9.9 > /var/lib/kefud-update/in-progress
check "a run that was cut short is finished at the next start: kefud is healthy, so it stays" \
  sh -c "/usr/sbin/kefud-update && grep -q '\"state\":\"interrupted\"' /var/lib/kefud-update/status.json && [ ! -e /var/lib/kefud-update/in-progress ]"
check "kefud $next_version runs" runs "$next_version"

echo "update tests: $passed passed, 0 failed"
