#!/usr/bin/env bash
# image/test-boot.sh IMAGE: owns the boot test of the kefud SD image (IMAGE is the .img or
# the .img.xz that image/build.sh wrote).
#
# Boots copies of the image under qemu-system-aarch64 -M virt -cpu cortex-a72 (TCG), with
# the kernel, initrd and kernel command line the Raspberry Pi firmware would use (read from
# the image's boot partition with mtools; only the console is changed to QEMU's serial port).
# Each disk is a raw, sparse copy grown to a 4 GiB "SD card" (mtools reads raw files, and
# first boot grows the root partition). Network: QEMU user mode with restrict=on (the guest
# reaches nothing outside), forwards bound to 127.0.0.1. A power cut is kill -9 of QEMU.
# The guest's kefu-boot-report prints one KEFU-BOOT-REPORT line on the serial console once
# startup has finished; most checks read it.
#
#   A  as flashed, plus an invalid kefud.toml on the boot partition: boots to a running
#      kefud, /healthz, a visitor message acked; defaults (hostname kefu, SSH off, no host
#      keys, root locked, mosquitto on 127.0.0.1 only, SD-wear settings); the bad
#      kefud.toml is refused and the packaged one kept.
#   B  a shop's card: kefu-setup.txt (written with Windows line ends) and a valid kefud.toml.
#      B1: power cut while first boot applies the settings.
#      B2: first boot completes; settings applied; SSH answers; a visitor message is acked,
#          then the power is cut at once. The boot partition no longer holds the secrets.
#      B3: the acked message is still there, first boot did not run again, same machine-id;
#          the broker's persistence directory has synchronous directory updates and the broker
#          saver runs. Over SSH
#          (a key pair made for this run) and a tunnel to the guest's loopback-only mosquitto:
#          20 QoS 1 messages into kefud's MQTT channel (SD bytes written per message measured),
#          then kefud is stopped, 20 more are published (each acked by the broker, queued for
#          kefud's persistent session) and the power is cut right after the last PUBACK.
#      B4: kefud has every message the broker acknowledged, from both batches. Then an
#          update: an admin uploads a signed bundle of the next version (NEXT_DEB) through the
#          forwarded port; the path unit starts the root helper, which installs it: the next
#          version runs, the data is intact.
#      B5: a bundle whose kefud never starts, put on the boot partition: installed at boot
#          and rolled back by the helper itself; the next version runs again, data intact.
#
# Prints PASS/FAIL/SKIP lines and "image boot tests: N passed, M failed"; exits 1 if any
# check failed. Serial logs stay in LOG_DIR.
#
# Parameters (environment):
#   KEFUD_LOAD    the project's load tool, for the WebSocket probe (default
#                 target/release/kefud-load); set it empty to skip the WebSocket checks
#   BOOT_TIMEOUT  seconds one boot may take to finish starting up (default 420)
#   LOG_DIR       default target/image/test-boot
#   KEEP_DISKS=1  keep the disk copies in LOG_DIR/disks
#   NEXT_DEB      the image's architecture's .deb of the next version (scripts/next-release.sh
#                 aarch64-unknown-linux-gnu), signed into bundles with UPDATE_KEY (default
#                 target/update-key/test.key, whose public half the image's .deb ships) by
#                 KEFUD_HOST (default target/release/kefud); empty: the update checks are skipped
set -eu

IMAGE=${1:?usage: image/test-boot.sh IMAGE (.img or .img.xz)}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
KEFUD_LOAD=${KEFUD_LOAD-$REPO/target/release/kefud-load}
NEXT_DEB=${NEXT_DEB:-}
UPDATE_KEY=${UPDATE_KEY:-$REPO/target/update-key/test.key}
KEFUD_HOST=${KEFUD_HOST:-$REPO/target/release/kefud}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-420}
LOG_DIR=${LOG_DIR:-$REPO/target/image/test-boot}
KEEP_DISKS=${KEEP_DISKS:-0}
SD_SIZE=4G
GUEST_MIB=512   # the smallest supported board, Zero 2 W
WIFI_PSK='correct horse battery staple'

passed=0; failed=0; skipped=0
pass() { echo "PASS $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }
skip() { echo "SKIP $*"; skipped=$((skipped + 1)); }
# check DESCRIPTION COMMAND...: PASS or FAIL by the command's status.
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }
die() { echo "test-boot: ERROR: $*" >&2; exit 2; }
elapsed() { echo $(( $(date +%s) - $1 )); }

for tool in qemu-system-aarch64 mcopy mtype sfdisk curl xz ssh ssh-keygen mosquitto_pub; do
  command -v "$tool" >/dev/null || die "$tool not found (run scripts/setup-host.sh)"
done
[ -f "$IMAGE" ] || die "no such image: $IMAGE"
if [ -n "$KEFUD_LOAD" ] && [ ! -x "$KEFUD_LOAD" ]; then
  die "KEFUD_LOAD=$KEFUD_LOAD is not executable (cargo build --release -p kefud-load, or KEFUD_LOAD= to skip the WebSocket checks)"
fi

mkdir -p "$LOG_DIR"
DISKS=$LOG_DIR/disks
rm -rf "$DISKS"
mkdir -p "$DISKS"
# A key pair made for this run (never kept): SSH gets enabled with its public half.
ssh-keygen -q -t ed25519 -N '' -C kefu-test -f "$DISKS/ssh-key"
TEST_SSH_KEY=$(cat "$DISKS/ssh-key.pub")
QPID=
TUNNEL=
cleanup() {
  if [ -n "$TUNNEL" ]; then kill "$TUNNEL" 2>/dev/null || true; fi
  if [ -n "$QPID" ]; then kill -9 "$QPID" 2>/dev/null || true; fi
  if [ "$KEEP_DISKS" != 1 ]; then rm -rf "$DISKS"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the image and what the Pi firmware would boot from it ---------------------------------
if [ "${IMAGE%.xz}" != "$IMAGE" ]; then
  xz -dc "$IMAGE" | dd of="$DISKS/image.img" bs=1M iflag=fullblock conv=sparse status=none
  IMG=$DISKS/image.img
else
  IMG=$IMAGE
fi
# partition N start|size: byte offset or size of partition N of the image.
partition() {
  local sectors
  sectors=$(sfdisk -d "$IMG" | grep 'start=' | sed -n "$1p" | sed "s/.*$2= *\([0-9]*\).*/\1/")
  [ -n "$sectors" ] || die "no partition $1 in $IMG"
  echo $((sectors * 512))
}
FAT=$(partition 1 start)
FAT_SIZE=$(partition 1 size)
mcopy -n -i "$IMG@@$FAT" ::config.txt ::cmdline.txt "$DISKS/"
KERNEL=$(sed -n 's/^kernel=//p' "$DISKS/config.txt" | tail -n 1)
INITRD=$(sed -n 's/^initramfs[[:space:]]\{1,\}\([^[:space:]]*\).*/\1/p' "$DISKS/config.txt" | tail -n 1)
[ -n "$KERNEL" ] && [ -n "$INITRD" ] || die "config.txt names no kernel= or initramfs"
mcopy -n -i "$IMG@@$FAT" "::$KERNEL" "::$INITRD" "$DISKS/"
APPEND="$(sed -e 's/console=[^ ]*//g' -e 's/  */ /g' "$DISKS/cmdline.txt" | tr -d '\n') console=ttyAMA0"
echo "image: $IMAGE"
echo "kernel: $KERNEL, initrd: $INITRD, cmdline: $APPEND"

# free_port FROM: the first port from FROM on that nothing listens on at 127.0.0.1.
free_port() {
  local p=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
  echo "$p"
}
HTTP_PORT=$(free_port 18080)
SSH_PORT=$(free_port $((HTTP_PORT + 1)))
MQTT_PORT=$(free_port $((SSH_PORT + 1)))

# new_disk NAME: a 4 GiB sparse raw copy of the image.
new_disk() {
  cp --sparse=always "$IMG" "$DISKS/$1.img"
  truncate -s "$SD_SIZE" "$DISKS/$1.img"
  echo "$DISKS/$1.img"
}

# boot NAME DISK: power on (in the background); the serial console goes to serial-NAME.log.
boot() {
  SERIAL=$LOG_DIR/serial-$1.log
  rm -f "$SERIAL"
  BOOT_START=$(date +%s)
  qemu-system-aarch64 -M virt -cpu cortex-a72 -smp 2 -m "$GUEST_MIB" \
    -kernel "$DISKS/$KERNEL" -initrd "$DISKS/$INITRD" -append "$APPEND" \
    -drive "if=none,id=sd,file=$2,format=raw" -device virtio-blk-pci,drive=sd \
    -netdev "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:$HTTP_PORT-:8080,hostfwd=tcp:127.0.0.1:$SSH_PORT-:22" \
    -device virtio-net-pci,netdev=n0 -device virtio-rng-pci \
    -display none -monitor none -serial "file:$SERIAL" -no-reboot </dev/null >"$LOG_DIR/qemu-$1.log" 2>&1 &
  QPID=$!
  echo "--- boot $1 (serial console: $SERIAL)"
}

# power_cut: kill -9 QEMU, the nearest thing to pulling the plug.
power_cut() {
  if [ -n "$TUNNEL" ]; then kill "$TUNNEL" 2>/dev/null || true; wait "$TUNNEL" 2>/dev/null || true; TUNNEL=; fi
  kill -9 "$QPID" 2>/dev/null || true
  wait "$QPID" 2>/dev/null || true
  QPID=
}

# wait_console PATTERN: wait until the serial console shows PATTERN (bounded by BOOT_TIMEOUT).
wait_console() {
  while [ "$(elapsed "$BOOT_START")" -lt "$BOOT_TIMEOUT" ]; do
    grep -aq -- "$1" "$SERIAL" 2>/dev/null && return 0
    kill -0 "$QPID" 2>/dev/null || { echo "QEMU exited"; return 1; }
    sleep 0.2
  done
  echo "timed out after ${BOOT_TIMEOUT}s waiting for '$1'"
  return 1
}

# wait_report NAME: wait for the boot report; sets REPORT (empty if none came).
wait_report() {
  REPORT=
  if wait_console 'KEFU-BOOT-REPORT .* ip='; then
    REPORT=$(grep -a 'KEFU-BOOT-REPORT .* ip=' "$SERIAL" | tail -n 1 | tr -d '\r')
    REPORT=${REPORT#*KEFU-BOOT-REPORT }
    pass "$1: startup finished after $(elapsed "$BOOT_START") s: $REPORT"
  else
    fail "$1: no boot report on the serial console (tail of $SERIAL follows)"
    tail -n 30 "$SERIAL" 2>/dev/null | tr -d '\r' | sed 's/^/    /'
  fi
}

# field KEY: KEY's value in the boot report.
field() { printf '%s\n' " $REPORT" | sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
# expect NAME KEY VALUE: the report says KEY=VALUE.
expect() {
  local got
  got=$(field "$2")
  if [ "$got" = "$3" ]; then pass "$1: $2=$3"; else fail "$1: $2 is '$got', expected '$3'"; fi
}

# lan_listeners: the report's TCP listeners that are not on loopback.
lan_listeners() {
  field tcp_listen | tr , '\n' | grep -Ev '^(127\.|\[::1\]|.*%lo:)' | LC_ALL=C sort | paste -sd, -
}

# healthz NAME: /healthz answers through the forwarded port (retried for 60 s).
healthz() {
  local t out
  t=$(date +%s)
  while [ "$(elapsed "$t")" -lt 60 ]; do
    if out=$(curl -fsS --max-time 5 "http://127.0.0.1:$HTTP_PORT/healthz" 2>&1); then
      pass "$1: GET /healthz through 127.0.0.1:$HTTP_PORT: $(printf '%s' "$out" | head -c 120)"
      return 0
    fi
    sleep 2
  done
  fail "$1: GET /healthz through 127.0.0.1:$HTTP_PORT: $out"
}

# probe NAME ARGS...: kefud-load probe against the guest (bounded to 60 s).
probe() {
  local what=$1 out; shift
  if [ -z "$KEFUD_LOAD" ]; then skip "$what (KEFUD_LOAD is empty)"; return 1; fi
  if out=$(timeout 60 "$KEFUD_LOAD" probe --addr "127.0.0.1:$HTTP_PORT" "$@" 2>&1); then
    pass "$what: $(printf '%s' "$out" | tr '\n' ' ' | head -c 200)"
  else
    fail "$what: $(printf '%s' "$out" | tr '\n' ' ' | head -c 400)"
    return 1
  fi
}

# fat_file DISK NAME: print a file of the disk's boot partition (QEMU must be off).
fat_file() { mtype -i "$1@@$FAT" "::$2" 2>/dev/null | tr -d '\r'; }
# fat_put DISK FILE NAME: put FILE on the disk's boot partition as NAME.
fat_put() { mcopy -o -i "$1@@$FAT" "$2" "::$3"; }

sha16() { sha256sum "$1" | cut -c1-16; }

SSH_OPTS=(-i "$DISKS/ssh-key" -p "$SSH_PORT" -o BatchMode=yes -o IdentitiesOnly=yes
  -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR)
# guest CMD...: CMD as root in the guest over SSH (bounded to 60 s).
guest() { timeout 60 ssh "${SSH_OPTS[@]}" root@127.0.0.1 "$@"; }

# mqtt_tunnel: 127.0.0.1:MQTT_PORT forwarded over SSH to the guest's mosquitto, which listens
# on the guest's loopback only. Fails unless the port accepts within 20 s.
mqtt_tunnel() {
  local t
  ssh "${SSH_OPTS[@]}" -N -o ExitOnForwardFailure=yes -L "127.0.0.1:$MQTT_PORT:127.0.0.1:1883" \
    root@127.0.0.1 </dev/null &
  TUNNEL=$!
  t=$(date +%s)
  while [ "$(elapsed "$t")" -lt 20 ]; do
    (exec 3<>"/dev/tcp/127.0.0.1/$MQTT_PORT") 2>/dev/null && return 0
    kill -0 "$TUNNEL" 2>/dev/null || return 1
    sleep 0.5
  done
  return 1
}

# publish BATCH N: N QoS 1 messages to the guest's broker on kefu/in/kiosk/image-test-mqtt,
# one mosquitto_pub each (it exits 0 once the broker's PUBACK came); the text of each one
# acknowledged is appended to DISKS/mqtt-acked. Prints how many were acknowledged.
publish() {
  local i text n=0
  for i in $(seq "$2"); do
    text="mqtt $1 $i $RUN_TAG"
    if timeout 20 mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -q 1 -t kefu/in/kiosk/image-test-mqtt \
        -m "{\"client_id\":\"$1-$i-$RUN_TAG\",\"text\":\"$text\"}" 2>>"$LOG_DIR/mosquitto_pub.log"; then
      printf '%s\n' "$text" >>"$DISKS/mqtt-acked"
      n=$((n + 1))
    fi
  done
  echo "$n"
}
RUN_TAG="$(date +%s)-$$"
# sd_bytes_written: bytes the guest has written to its disk since it booted.
sd_bytes_written() { guest cat /sys/block/vda/stat | awk '{print $7 * 512}'; }
# broker_bytes_written: what mosquitto has written (its saves), from /proc/PID/io.
broker_bytes_written() { guest 'cat /proc/$(pidof mosquitto)/io' | awk '/^write_bytes/ {print $2}'; }

# --- A: as flashed, with an invalid kefud.toml ---------------------------------------------
DISK_A=$(new_disk a)
printf '[server]\nlisten_typo = "0.0.0.0:9999"\n' > "$DISKS/bad-kefud.toml"
fat_put "$DISK_A" "$DISKS/bad-kefud.toml" kefud.toml
boot A "$DISK_A"
wait_report A
if [ -n "$REPORT" ]; then
  expect A system running
  expect A kefud active
  healthz A
  probe "A: visitor message acked" --visitor-id image-test-a --send "hello from image test A" || true
  expect A firstboot success
  expect A host kefu
  expect A ssh disabled/inactive
  expect A hostkeys 0
  expect A authorized_keys 0
  expect A root_password L
  expect A mosquitto active
  expect A broker_saver active
  check "A: TCP listeners: kefud on 0.0.0.0:8080 and 8443 (HTTPS), mosquitto on 127.0.0.1:1883, no SSH ($(field tcp_listen))" \
    test "$(lan_listeners)" = "0.0.0.0:8080,0.0.0.0:8443" -a "$(field tcp_listen | tr , '\n' | grep -c '^127\.0\.0\.1:1883$')" = 1
  expect A avahi active
  check "A: kefud's ready event is in the journal under its MESSAGE_ID ($(field kefud_ready_events))" \
    test "$(field kefud_ready_events)" -ge 1
  check "A: kefud's MQTT bridge connected to the local mosquitto ($(field kefud_mqtt))" \
    test "$(field kefud_mqtt)" -ge 1
  expect A tmp tmpfs
  expect A journal volatile
  expect A apt_timers disabled,disabled
  MACHINE_ID_A=$(field machine_id)
  check "A: machine-id generated on the device ($MACHINE_ID_A)" grep -Eqx '[0-9a-f]{32}' <<<"$MACHINE_ID_A"
  opts=",$(field root_opts),"
  check "A: root mounted noatime,commit=60 ($(field root_opts))" \
    test "${opts#*,noatime,}" != "$opts" -a "${opts#*,commit=60,}" != "$opts"
  check "A: root filesystem grown to the card ($(field root_size) bytes)" test "$(field root_size)" -gt 3000000000
  check "A: invalid kefud.toml not installed" test "$(field kefud_toml)" != "$(sha16 "$DISKS/bad-kefud.toml")"
  check "A: the refusal is on the console" grep -aq 'kefud.toml rejected by kefud --check-config' "$SERIAL"
fi
power_cut
check "A: the refusal is explained in kefu-firstboot.log on the boot partition" \
  grep -q 'kefud.toml rejected' <<<"$(fat_file "$DISK_A" kefu-firstboot.log)"

# --- B: a shop's card, power cuts ----------------------------------------------------------
DISK_B=$(new_disk b)
# Cluster mode too: the central broker is a TEST-NET address nobody answers on (the bridge
# keeps retrying; kefud's cluster link talks to the local broker).
CLUSTER_SECRET="cs-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s\r\n' '# kefu-setup.txt for the image test' \
  'hostname=shop-042' 'timezone=Europe/Berlin' 'wifi_country=de' 'wifi_ssid=Shop WiFi' \
  "wifi_psk=$WIFI_PSK" "ssh_authorized_key=$TEST_SSH_KEY" \
  'cluster_broker=192.0.2.10:1883' 'cluster_name=tea-shops' "cluster_secret=$CLUSTER_SECRET" \
  > "$DISKS/kefu-setup.txt"
# A valid kefud.toml that differs from the packaged one (every key is optional), with the
# MQTT channel on as the image's own kefud.toml has it.
printf '# kefud.toml for the image test\n[log]\nlevel = "info"\n\n[mqtt]\nenabled = true\n' \
  > "$DISKS/good-kefud.toml"
# What kefu-firstboot installs: that file with the cluster switched on.
{ cat "$DISKS/good-kefud.toml"
  printf '\n[cluster]\nenabled = true\nname = "tea-shops"\nsecret = "%s"\n' "$CLUSTER_SECRET"
} > "$DISKS/good-kefud-clustered.toml"
fat_put "$DISK_B" "$DISKS/kefu-setup.txt" kefu-setup.txt
fat_put "$DISK_B" "$DISKS/good-kefud.toml" kefud.toml

boot B1 "$DISK_B"
if wait_console 'kefu-firstboot: settings captured'; then
  power_cut
  reached=$(grep -ao 'kefu-firstboot: settings [a-z]*' "$SERIAL" | tail -n 1)
  pass "B1: power cut during first boot, $(elapsed "$BOOT_START") s after power-on (last step on the console: '$reached')"
else
  power_cut
  fail "B1: first boot never reported 'settings captured'"
fi

boot B2 "$DISK_B"
wait_report B2
if [ -n "$REPORT" ]; then
  expect B2 system running
  expect B2 kefud active
  expect B2 firstboot success
  expect B2 host shop-042
  expect B2 tz Europe/Berlin
  expect B2 wifi configured
  expect B2 ssh enabled/active
  expect B2 authorized_keys 1
  check "B2: TCP listeners on the LAN: kefud and SSH only ($(lan_listeners))" \
    test "$(lan_listeners)" = "0.0.0.0:22,0.0.0.0:8080,0.0.0.0:8443,[::]:22"
  check "B2: SSH host keys made on the device ($(field hostkeys))" test "$(field hostkeys)" -ge 1
  check "B2: kefud.toml from the boot partition installed, cluster mode on" \
    test "$(field kefud_toml)" = "$(sha16 "$DISKS/good-kefud-clustered.toml")"
  expect B2 kefud_toml_mode 640:root:kefud
  expect B2 bridge 192.0.2.10:1883
  check "B2: kefud's cluster link connected to the local broker ($(field kefud_cluster))" \
    test "$(field kefud_cluster)" -ge 1
  check "B2: kefud's MQTT channel connected to the local broker ($(field kefud_mqtt))" \
    test "$(field kefud_mqtt)" -ge 1
  MACHINE_ID_B=$(field machine_id)
  check "B2: machine-id differs from A's (not baked in)" test "$MACHINE_ID_B" != "${MACHINE_ID_A:-}"
  banner=$(timeout 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$SSH_PORT; head -c 8 <&3" 2>/dev/null || true)
  check "B2: SSH answers on 127.0.0.1:$SSH_PORT ('$banner')" test "$banner" = SSH-2.0-
  healthz B2
  message="survives a power cut $(date +%s)-$$"
  if probe "B2: visitor message acked" --visitor-id image-test-b --send "$message"; then
    power_cut
    pass "B2: power cut right after the ack"
    ACKED=$message
  fi
fi
power_cut
setup_left=$(fat_file "$DISK_B" kefu-setup.txt)
check "B: no wifi_psk, ssh_authorized_key or cluster_secret line left in kefu-setup.txt on the boot partition" \
  test -z "$(grep -iE '^[[:space:]]*(wifi_psk|ssh_authorized_key|cluster_secret)[[:space:]]*=' <<<"$setup_left")"
leaks=$(dd if="$DISK_B" bs=1M skip=$((FAT / 1048576)) count=$((FAT_SIZE / 1048576)) status=none \
  | grep -a -c -F -e "$WIFI_PSK" -e "${TEST_SSH_KEY#ssh-ed25519 }" -e "$CLUSTER_SECRET" || true)
check "B: the Wi-Fi passphrase, the SSH key and the cluster secret are nowhere in the boot partition's bytes" test "$leaks" = 0
check "B: other settings kept in kefu-setup.txt" grep -q '^hostname=shop-042$' <<<"$setup_left"
check "B: kefu-firstboot.log on the boot partition names the hostname" \
  grep -q 'hostname: shop-042' <<<"$(fat_file "$DISK_B" kefu-firstboot.log)"

boot B3 "$DISK_B"
wait_report B3
if [ -n "$REPORT" ]; then
  expect B3 system running
  expect B3 kefud active
  expect B3 firstboot skipped
  expect B3 host shop-042
  expect B3 tz Europe/Berlin
  expect B3 wifi configured
  expect B3 ssh enabled/active
  expect B3 authorized_keys 1
  check "B3: kefud.toml from the boot partition still installed" \
    test "$(field kefud_toml)" = "$(sha16 "$DISKS/good-kefud-clustered.toml")"
  expect B3 machine_id "${MACHINE_ID_B:-}"
  healthz B3
  if [ -n "${ACKED:-}" ]; then
    probe "B3: the message acked before the power cut is in the visitor's history" \
      --visitor-id image-test-b --expect "$ACKED" || true
  elif [ -n "$KEFUD_LOAD" ]; then
    fail "B3: no acked message to look for (B2 did not get an ack)"
  else
    skip "B3: message after the power cut (KEFUD_LOAD is empty)"
  fi
  expect B3 mosquitto_dirsync on
  expect B3 broker_saver active
  check "B3: kefud made its own CA at first start and serves HTTPS on port 8443" \
    guest "find /var/lib/kefud -path '*/tls/ca.crt' -size +0 | grep -q . && ss -Hltn 'sport = :8443' | grep -q ."
  rm -f "$DISKS/mqtt-acked"
  if mqtt_tunnel; then
    pass "B3: SSH login with the run's key; tunnel to the guest's broker on 127.0.0.1:$MQTT_PORT"
    t0=$(date +%s); disk0=$(sd_bytes_written || echo 0); broker0=$(broker_bytes_written || echo 0)
    n=$(publish running 20)
    # kefud acknowledges to the broker after its own fsync; give it a moment to catch up.
    sleep 2
    t1=$(date +%s); disk1=$(sd_bytes_written || echo 0); broker1=$(broker_bytes_written || echo 0)
    check "B3: 20 QoS 1 messages acknowledged by the broker with kefud running ($n)" test "$n" = 20
    # What the guest writes anyway, in as long a spell without messages.
    sleep $((t1 - t0))
    disk2=$(sd_bytes_written || echo 0)
    pass "B3: SD bytes written per MQTT message with kefud running: $(( (disk1 - disk0 - (disk2 - disk1)) / 20 )) (the whole disk, less a quiet spell as long: $(( (disk2 - disk1) / 20 ))), of which the broker's saves $(( (broker1 - broker0) / 20 )) (cluster mode on: kefud's operations queue for the unreachable central broker too)"
    guest systemctl stop kefud.service || true
    check "B3: kefud stopped" test "$(guest systemctl is-active kefud.service || true)" = inactive
    n=$(publish stopped 20)
    # mosquitto 2.0 sends PUBACK before it saves (asked by kefu-broker-saver within 100 ms):
    # the power is cut one second after the last PUBACK, well inside the 300 s between saves
    # the image had before, and the 60 s ext4 takes to commit a rename without chattr +D.
    sleep 1
    power_cut
    check "B3: 20 more acknowledged by the broker with kefud stopped ($n); power cut 1 s after the last PUBACK" test "$n" = 20
  else
    fail "B3: SSH login with the run's key and a tunnel to the guest's broker on 127.0.0.1:$MQTT_PORT"
  fi
fi
power_cut

boot B4 "$DISK_B"
wait_report B4
if [ -n "$REPORT" ] && [ -s "$DISKS/mqtt-acked" ]; then
  expect B4 kefud active
  # kefud's session at the broker gets what was queued for it; wait until all of it is in.
  t=$(date +%s)
  missing=$(wc -l <"$DISKS/mqtt-acked")
  while [ "$(elapsed "$t")" -lt 90 ]; do
    guest 'cd /var/lib/kefud && runuser -u kefud -- kefud export --config /etc/kefud/kefud.toml' \
      >"$DISKS/export.jsonl" 2>"$LOG_DIR/export-B4.log" || true
    missing=$(grep -c -v -x -F -f <(grep -o '"text":"mqtt [^"]*"' "$DISKS/export.jsonl" | sed 's/^"text":"//; s/"$//') \
      "$DISKS/mqtt-acked" || true)
    [ "$missing" = 0 ] && break
    sleep 3
  done
  check "B4: every MQTT message the broker acknowledged before the power cut is in kefud ($(wc -l <"$DISKS/mqtt-acked") acked, $missing missing)" \
    test "$missing" = 0
elif [ -n "$REPORT" ]; then
  fail "B4: no MQTT messages were acknowledged in B3 to look for"
fi

# --- updates: a signed bundle uploaded in the console's API; a broken one on the boot partition
# guest_version: the version /usr/bin/kefud says it is.
guest_version() { guest '/usr/bin/kefud --version' 2>/dev/null | sed -n 's/^kefud //p'; }
# runs_version VERSION: that version is installed and kefud.service is active.
runs_version() { [ "$(guest_version)" = "$1" ] && [ "$(guest 'systemctl is-active kefud' 2>/dev/null)" = active ]; }
# updated_to VERSION: it runs, and the helper is done and says so.
updated_to() { runs_version "$1" && [ "$(helper_state)" = updated ]; }
# helper_state: the update helper's last state (status.json).
helper_state() { guest 'cat /var/lib/kefud-update/status.json' 2>/dev/null | sed -n 's/.*"state":"\([^"]*\)".*/\1/p'; }
# wait_for WHAT SECS COMMAND...: polls COMMAND every 3 s until it succeeds.
wait_for() {
  local what=$1 secs=$2 t; shift 2
  t=$(date +%s)
  while [ "$(elapsed "$t")" -lt "$secs" ]; do "$@" && { pass "$what ($(elapsed "$t") s)"; return 0; }; sleep 3; done
  fail "$what (not within $secs s)"; return 1
}
NEXT_VERSION=
if [ -z "$NEXT_DEB" ]; then
  skip "B4/B5: updates (NEXT_DEB is empty)"
elif [ -n "$REPORT" ]; then
  NEXT_VERSION=$(dpkg-deb -f "$NEXT_DEB" Version | sed 's/-[^-]*$//')
  BROKEN_VERSION=$(echo "$NEXT_VERSION" | awk -F. '{ printf "%d.%d.%d", $1, $2, $3 + 1 }')
  "$KEFUD_HOST" update bundle --key "$UPDATE_KEY" --version "$NEXT_VERSION" --out "$DISKS/next.kefu" "$NEXT_DEB" >/dev/null
  rm -rf "$DISKS/broken" && dpkg-deb -R "$NEXT_DEB" "$DISKS/broken"
  printf '#!/bin/sh\n[ "${1:-}" = --version ] && { echo "kefud %s"; exit 0; }\necho "kefud %s: simulated broken release" >&2\nexit 1\n' \
    "$BROKEN_VERSION" "$BROKEN_VERSION" > "$DISKS/broken/usr/bin/kefud"
  sed -i "s/^Version: .*/Version: ${BROKEN_VERSION}-1/" "$DISKS/broken/DEBIAN/control"
  broken_deb=$DISKS/kefud_${BROKEN_VERSION}-1_arm64.deb
  dpkg-deb -b --root-owner-group "$DISKS/broken" "$broken_deb" >/dev/null
  "$KEFUD_HOST" update bundle --key "$UPDATE_KEY" --version "$BROKEN_VERSION" --out "$DISKS/broken.kefu" "$broken_deb" >/dev/null
  FROM_VERSION=$(guest_version)
  echo 'an owner password for the image test' | guest 'cd /var/lib/kefud && runuser -u kefud -- kefud --config /etc/kefud/kefud.toml agent add owner --admin --password-stdin' >/dev/null
  token=$(curl -fsS -XPOST "http://127.0.0.1:$HTTP_PORT/api/v1/login" -H 'content-type: application/json' \
    -d '{"username":"owner","password":"an owner password for the image test"}' | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
  code=$(curl -sS -o "$LOG_DIR/upload-B4.json" -w '%{http_code}' -XPOST "http://127.0.0.1:$HTTP_PORT/api/v1/update" \
    -H "Authorization: Bearer $token" --data-binary "@$DISKS/next.kefu" || true)
  check "B4: the admin's upload of kefud $NEXT_VERSION is accepted (HTTP $code: $(cat "$LOG_DIR/upload-B4.json" 2>/dev/null))" test "$code" = 202
  wait_for "B4: the path unit started the root helper, which installed kefud $NEXT_VERSION (was $FROM_VERSION) and reports it" 300 \
    updated_to "$NEXT_VERSION" || true
  healthz B4
  probe "B4: the message acked before the first power cut is still there" --visitor-id image-test-b --expect "${ACKED:-none}" || true
fi
power_cut

if [ -n "$NEXT_VERSION" ]; then
  fat_put "$DISK_B" "$DISKS/broken.kefu" kefud-update.kefu
  boot B5 "$DISK_B"
  wait_report B5
  if [ -n "$REPORT" ]; then
    check "B5: the boot partition's bundle (kefud $BROKEN_VERSION, which never starts) was rolled back by the helper ($(helper_state))" \
      test "$(helper_state)" = rolled-back
    check "B5: kefud $NEXT_VERSION runs again ($(guest_version))" test "$(guest_version)" = "$NEXT_VERSION"
    # The failed update stays visible: the helper's unit failed, nothing else did.
    expect B5 failed kefud-update.service
    expect B5 kefud active
    healthz B5
    probe "B5: the acked message is still there" --visitor-id image-test-b --expect "${ACKED:-none}" || true
    guest 'journalctl -u kefud-update --no-pager -o cat' > "$LOG_DIR/kefud-update-B5.log" 2>&1 || true
  fi
  power_cut
  check "B5: the bundle on the boot partition was renamed so it is not tried again" \
    sh -c "mdir -i '$DISK_B@@$FAT' ::kefud-update.kefu.done >/dev/null 2>&1 && ! mdir -i '$DISK_B@@$FAT' ::kefud-update.kefu >/dev/null 2>&1"
fi

echo "image boot tests: $passed passed, $failed failed$([ "$skipped" -eq 0 ] || echo ", $skipped skipped")"
[ "$failed" -eq 0 ]
