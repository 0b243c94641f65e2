#!/usr/bin/env bash
# Tests the Debian package on this machine itself (root, no container): install, the service
# unit (systemd-analyze verify and its security exposure), upgrade keeping a locally edited
# conffile and the data, remove keeping both, purge removing both. Also the systemd unit as
# installed. Usage: scripts/test-deb.sh [DEB_V1 DEB_V2]; builds both from target/release/kefud
# with cargo-deb when not given. Leaves kefud purged.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "test-deb.sh installs packages: run it as root" >&2; exit 1; }

if [ $# -eq 2 ]; then
  v1=$1; v2=$2
else
  scripts/update-key.sh >/dev/null
  v1=$(cargo deb --no-build --deb-revision 1 -o target/debian/upgrade-from/ 2>/dev/null | tail -1)
  v2=$(cargo deb --no-build --deb-revision 2 -o target/debian/upgrade-to/ 2>/dev/null | tail -1)
fi

passed=0
check() { # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@" >/tmp/kefud-deb-check.log 2>&1; then
    echo "PASS $what"; passed=$((passed + 1))
  else
    echo "FAIL $what"; cat /tmp/kefud-deb-check.log; exit 1
  fi
}
as_kefud() { (cd /var/lib/kefud && runuser -u kefud -- "$@"); }

dpkg -P kefud >/dev/null 2>&1 || true
rm -rf /var/lib/kefud

echo "== install $(basename "$v1")"
dpkg -i "$v1" >/dev/null
check "the kefud system user exists, with no login shell" \
  sh -c 'getent passwd kefud | grep -q ":/usr/sbin/nologin$"'
check "the unit is installed and enabled" \
  test -L /etc/systemd/system/multi-user.target.wants/kefud.service
check "the config is a conffile" grep -qx /etc/kefud/kefud.toml /var/lib/dpkg/info/kefud.conffiles
check "the config (it may hold secrets) is readable by root and the service only" \
  sh -c '[ "$(stat -c %a:%U:%G /etc/kefud/kefud.toml)" = 640:root:kefud ]'
check "systemd-analyze verify accepts the installed unit" systemd-analyze verify kefud.service
exposure=$(systemd-analyze security --offline=true /usr/lib/systemd/system/kefud.service 2>/dev/null \
  | sed -n 's/.*Overall exposure level for kefud.service: \([0-9.]*\).*/\1/p')
echo "systemd-analyze security exposure: $exposure (0 = best, 10 = worst)"
check "security exposure is at most 2.0" awk -v e="$exposure" 'BEGIN { exit !(e != "" && e <= 2.0) }'
# What ExecStartPre does, as the service user.
install -d -o kefud -g kefud -m 0750 /var/lib/kefud
check "the packaged config passes --check-config as the kefud user" \
  as_kefud /usr/bin/kefud --config /etc/kefud/kefud.toml --check-config
check "an admin can be created in the service's data directory" \
  sh -c 'echo "correct horse battery" | (cd /var/lib/kefud && runuser -u kefud -- /usr/bin/kefud --config /etc/kefud/kefud.toml agent add owner --admin --password-stdin)'
echo "# edited by the shop" >> /etc/kefud/kefud.toml

echo "== upgrade to $(basename "$v2")"
dpkg -i "$v2" >/dev/null
check "the upgrade installed the new version" \
  sh -c "dpkg-query -W -f='\${Version}' kefud | grep -q -- '-2$'"
check "the local edit of the conffile survived the upgrade" grep -q "edited by the shop" /etc/kefud/kefud.toml
check "an upgrade to the same version keeps no previous version for kefud-rollback" \
  test ! -e /usr/lib/kefud/previous -a ! -e /usr/lib/kefud/previous-candidate
check "kefud-rollback is installed and says there is nothing to go back to" \
  sh -c 'kefud-rollback 2>&1 | grep -q "no previous version"'
check "the data survived the upgrade" \
  sh -c 'cd /var/lib/kefud && runuser -u kefud -- /usr/bin/kefud --config /etc/kefud/kefud.toml agent list | grep -q owner'

echo "== remove"
dpkg -r kefud >/dev/null
check "remove deleted the binary and any kept previous version" test ! -e /usr/bin/kefud -a ! -e /usr/lib/kefud
check "remove kept the config and the data" test -f /etc/kefud/kefud.toml -a -d /var/lib/kefud/kefud-data

echo "== purge"
dpkg -P kefud >/dev/null
check "purge deleted the config" test ! -e /etc/kefud/kefud.toml
check "purge deleted the data" test ! -e /var/lib/kefud
check "purge left no enablement symlink" test ! -e /etc/systemd/system/multi-user.target.wants/kefud.service

echo "deb tests: $passed passed, 0 failed"
