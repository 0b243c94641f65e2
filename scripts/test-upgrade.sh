#!/usr/bin/env bash
# The upgrade from the previous release to this tree and back, on this machine (root, systemd,
# the real packages): installs the previous release's .deb (built from its commit in this
# repository's history), gives it messages through the HTTP API channel, upgrades to this
# tree's .deb, gives it more, runs `kefud-rollback`, gives it more, and upgrades again; at each
# step every message is there (`kefud export`). Then a rollback the previous release cannot
# take (the journal holds an operation it does not know) must put the current version back
# by itself, with all the data. The service listens on loopback only (a drop-in points it at a
# test config). Usage: scripts/test-upgrade.sh (after `cargo build --release`). Leaves kefud
# purged.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "test-upgrade.sh installs packages: run it as root" >&2; exit 1; }

# The previous release: version 0.1.0 is what landed at this commit (the last landing before
# the schema migrations 009-011 and operation kind 17), so going back undoes real migrations.
previous_version=0.1.0
previous_commit=63d02b073dbef1be7a76bf0b0914e588dfec2d27
root=$(pwd)
arch=$(dpkg --print-architecture)
work=target/previous-release
previous_deb=$work/kefud_${previous_version}-1_${arch}.deb
current_version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)

if [ ! -f "$previous_deb" ]; then
  echo "== building the previous release ($previous_version, ${previous_commit:0:7}) from this repository's history"
  commit=$(git rev-parse --verify --quiet "${previous_commit:0:7}^{commit}") || {
    echo "FAIL the previous release's commit ${previous_commit:0:7} is not in this clone (a shallow clone?)" >&2
    exit 1
  }
  rm -rf "$work/src" && mkdir -p "$work/src"
  git archive "$commit" | tar -x -C "$work/src"
  # One target directory, so the dependencies built for this tree are reused; the uplifted
  # target/release/kefud is this tree's again afterwards.
  cp -p target/release/kefud "$work/kefud.current"
  (cd "$work/src" && CARGO_TARGET_DIR="$root/target" cargo build --release --locked --bin kefud)
  (cd "$work/src" && CARGO_TARGET_DIR="$root/target" cargo deb --no-build --deb-revision 1 \
    -o "$root/$previous_deb" >/dev/null)
  rm -f target/release/kefud && cp -p "$work/kefud.current" target/release/kefud
fi
scripts/update-key.sh >/dev/null
current_deb=$(cargo deb --no-build --deb-revision 1 -o target/debian/upgrade-current/ 2>/dev/null | tail -1)

passed=0
check() { # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@" >/tmp/kefud-upgrade-check.log 2>&1; then
    echo "PASS $what"; passed=$((passed + 1))
  else
    echo "FAIL $what"; cat /tmp/kefud-upgrade-check.log; exit 1
  fi
}
config=/etc/kefud-upgrade-test/kefud.toml
export KEFUD_TEST_CONFIG=$config
# Where systemd is not PID 1 (a build container), a stand-in starts and stops the service as
# its unit would (scripts/upgrade-test/systemctl); the packages' own scripts then leave the
# service alone, so this test stops and starts it around each dpkg -i, as they would.
[ -d /run/systemd/system ] || export PATH=$root/scripts/upgrade-test:$PATH
as_kefud() { (cd /var/lib/kefud && runuser -u kefud -- "$@"); }
ready() { # waits (10 s at most) until kefud answers /healthz
  for _ in $(seq 100); do curl -fsS 127.0.0.1:18080/healthz >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}
post() { # post PREFIX COUNT: COUNT customer messages through the HTTP API channel
  for i in $(seq "$2"); do
    curl -fsS -XPOST 127.0.0.1:18080/api/v1/inbox/kiosk/messages -H "X-Api-Key: $key" \
      -H 'content-type: application/json' \
      -d "{\"contact_id\":\"table-$((i % 3))\",\"client_id\":\"$1-$i\",\"text\":\"$1 message $i\"}" >/dev/null
  done
}
messages() { # messages PREFIX: how many messages with that prefix the store has
  as_kefud /usr/bin/kefud --config "$config" export 2>/dev/null | grep -c "\"$1 message " || true
}
has_messages() { # has_messages PREFIX COUNT (the store trails the journal by a commit interval)
  for _ in $(seq 50); do [ "$(messages "$1")" = "$2" ] && return 0; sleep 0.2; done
  echo "$1: $(messages "$1") messages, $2 expected"; return 1
}
cleanup() {
  systemctl stop kefud >/dev/null 2>&1 || true
  dpkg -P kefud >/dev/null 2>&1 || true
  rm -rf /var/lib/kefud /usr/lib/kefud /run/kefud-upgrade-test.log /etc/kefud-upgrade-test /etc/systemd/system/kefud.service.d/upgrade-test.conf
  systemctl daemon-reload
}

cleanup
trap cleanup EXIT
mkdir -p /etc/kefud-upgrade-test /etc/systemd/system/kefud.service.d
printf '[server]\nlisten = "127.0.0.1:18080"\n' > "$config"
chmod 644 "$config"
cat > /etc/systemd/system/kefud.service.d/upgrade-test.conf <<EOF
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/kefud --config $config --check-config
ExecStart=
ExecStart=/usr/bin/kefud --config $config
EOF
systemctl daemon-reload

echo "== install the previous release, kefud $previous_version"
dpkg -i "$previous_deb" >/dev/null
systemctl start kefud
check "kefud $previous_version is installed and answers" sh -c "[ \"\$(/usr/bin/kefud --version)\" = 'kefud $previous_version' ]"
check "it answers on loopback" ready
key=$(as_kefud /usr/bin/kefud --config "$config" apikey add kiosk --name upgrade-test | tail -1)
echo "a long enough password" | as_kefud /usr/bin/kefud --config "$config" agent add li --password-stdin >/dev/null
login() { # login PASSWORD: a session token, or nothing
  curl -fsS -XPOST 127.0.0.1:18080/api/v1/login -H 'content-type: application/json' \
    -d "{\"username\":\"li\",\"password\":\"$1\"}" | sed -n 's/.*"token":"\([^"]*\)".*/\1/p'
}
signed_in() { # signed_in TOKEN: the session is accepted
  curl -fsS 127.0.0.1:18080/api/v1/conversations -H "Authorization: Bearer $1" >/dev/null
}
token=$(login "a long enough password")
check "an agent signed in on $previous_version" signed_in "$token"
post before-upgrade 20
check "20 messages taken by $previous_version" has_messages before-upgrade 20

echo "== upgrade to this tree, kefud $current_version"
systemctl stop kefud
dpkg -i "$current_deb" >/dev/null
systemctl start kefud
check "kefud $current_version is installed" sh -c "[ \"\$(/usr/bin/kefud --version)\" = 'kefud $current_version' ]"
check "the previous version is kept for kefud-rollback" \
  sh -c "[ \"\$(cat /usr/lib/kefud/previous/version)\" = $previous_version ] && [ \"\$(/usr/lib/kefud/previous/kefud --version)\" = 'kefud $previous_version' ]"
check "it answers after the upgrade" ready
check "the store was copied before its migration" \
  sh -c 'ls /var/lib/kefud/kefud-data/pre-migration/ | grep -q "^kefud-schema0008-"'
check "the messages of $previous_version are there" has_messages before-upgrade 20
# A key and a password made after the upgrade: neither is journaled, so the rollback carries
# them over (with the agent's session from before the upgrade in the store: references).
check "the session from $previous_version is still accepted" signed_in "$token"
echo "changed after the upgrade" | as_kefud /usr/bin/kefud --config "$config" agent passwd li --password-stdin >/dev/null
key=$(as_kefud /usr/bin/kefud --config "$config" apikey add kiosk --name after-upgrade | tail -1)
post after-upgrade 20
check "20 more taken by $current_version" has_messages after-upgrade 20

echo "== kefud-rollback"
kefud-rollback | tee /tmp/kefud-rollback.log
check "kefud $previous_version runs again" sh -c "[ \"\$(/usr/bin/kefud --version)\" = 'kefud $previous_version' ] && systemctl is-active -q kefud"
check "it answers after the rollback" ready
check "the store went back to schema 8 and the newer one is kept aside" \
  sh -c 'grep -q "back at schema 8" /tmp/kefud-rollback.log && ls /var/lib/kefud/kefud-data/rolled-back/ | grep -qE "^kefud-schema00(09|[1-9][0-9])-"'
check "the messages from before the upgrade are there" has_messages before-upgrade 20
check "the messages taken by $current_version are there (the journal replayed them)" has_messages after-upgrade 20
check "the API key made after the upgrade is still accepted" post after-rollback 20
check "sessions were ended by the rollback" sh -c "! curl -fsS 127.0.0.1:18080/api/v1/conversations -H 'Authorization: Bearer $token'"
check "the agent signs in again with the password set after the upgrade" \
  sh -c "[ -n \"\$(curl -fsS -XPOST 127.0.0.1:18080/api/v1/login -H 'content-type: application/json' -d '{\"username\":\"li\",\"password\":\"changed after the upgrade\"}')\" ]"
check "20 more taken by $previous_version" has_messages after-rollback 20
check "a second kefud-rollback has nothing to go back to" sh -c 'kefud-rollback 2>&1 | grep -q "no previous version"'

echo "== upgrade again"
systemctl stop kefud
dpkg -i "$current_deb" >/dev/null
systemctl start kefud
check "kefud $current_version is installed again" sh -c "[ \"\$(/usr/bin/kefud --version)\" = 'kefud $current_version' ] && systemctl is-active -q kefud"
check "it answers" ready
for prefix in before-upgrade after-upgrade after-rollback; do
  check "the $prefix messages are there" has_messages $prefix 20
done

echo "== a rollback the previous release cannot take puts the current version back by itself"
systemctl stop kefud
printf 'contact,sender,text,time,name\nregular-1,customer,imported message 1,2024-05-01 10:00:00,Ms Li\n' \
  > /var/lib/kefud/history.csv
as_kefud /usr/bin/kefud --config "$config" import history /var/lib/kefud/history.csv >/dev/null
systemctl start kefud
check "the import's contact details (an operation $previous_version does not know) are journaled" \
  sh -c "as_kefud() { (cd /var/lib/kefud && runuser -u kefud -- \"\$@\"); }; as_kefud /usr/bin/kefud --config $config export | grep -q 'Ms Li'"
check "kefud-rollback fails and says so" sh -c '! kefud-rollback > /tmp/kefud-rollback.log 2>&1'
cat /tmp/kefud-rollback.log
check "it names why" grep -qs "unknown operation kind 17" /tmp/kefud-rollback.log /run/kefud-upgrade-test.log
check "and says nothing was rolled back" grep -q "rolled back nothing" /tmp/kefud-rollback.log
check "kefud $current_version runs again" sh -c "[ \"\$(/usr/bin/kefud --version)\" = 'kefud $current_version' ] && systemctl is-active -q kefud"
check "it answers" ready
for prefix in before-upgrade after-upgrade after-rollback imported; do
  n=20; [ $prefix = imported ] && n=1
  check "the $prefix messages are there" has_messages $prefix $n
done

echo "upgrade tests: $passed passed, 0 failed"
