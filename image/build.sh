#!/bin/sh
# image/build.sh: owns the kefud SD image for Raspberry Pi 3, 4, Zero 2 W (and Pi 5 with a
# flavour that has its kernel; see image/README.md).
#
# 1. gets the cached base root filesystem (image/build-base.sh; built when missing),
# 2. unpacks it, installs the kefud .deb (dpkg -i in the arm64 chroot via qemu-user binfmt),
#    adds image/overlay and sets which units start,
# 3. assembles an MBR disk image without loop devices or mounts: FAT32 boot partition
#    (mkfs.vfat -C + mcopy) and ext4 root partition (mkfs.ext4 -d), placed with sfdisk + dd,
# 4. compresses it:
#      target/image/kefud-VERSION-arm64.img      (kept for image/test-boot.sh)
#      target/image/kefud-VERSION-arm64.img.xz   (the release artifact)
#      target/image/kefud-VERSION-arm64.packages (the image's packages and versions)
# VERSION is the .deb's version. Run as root.
#
# Parameters (environment):
#   KEFUD_DEB       the kefud .deb (default: newest
#                   target/aarch64-unknown-linux-gnu/debian/kefud_*_arm64.deb)
#   FLAVOUR, INITRD_MODULES, BASE_REFRESH, KEFUD_IMAGE_CACHE: see image/build-base.sh
#   COMPRESS=xz     "none" skips the .img.xz (image/ci.sh does, the boot test needs the .img)
#   XZ_LEVEL=6      xz preset for the .img.xz
#   OUT_DIR         default target/image
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
OUT_DIR=${OUT_DIR:-$REPO/target/image}
COMPRESS=${COMPRESS:-xz}
XZ_LEVEL=${XZ_LEVEL:-6}
BOOT_MIB=256   # FAT32 boot partition: kernel, initrd, device trees, GPU firmware, settings
START_MIB=4    # first partition offset (SD erase-block aligned, as Debian's raspi images)

log() { echo "build: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
elapsed() { echo "$(( $(date +%s) - $1 )) s"; }

[ "$(id -u)" -eq 0 ] || die "run as root"
# stdout is only for the result's path; every tool's output goes to stderr.
exec 3>&1 1>&2
case $COMPRESS in xz|none) ;; *) die "COMPRESS must be xz or none" ;; esac
if [ -z "${KEFUD_DEB:-}" ]; then
  KEFUD_DEB=$(ls -t "$REPO"/target/aarch64-unknown-linux-gnu/debian/kefud_*_arm64.deb 2>/dev/null | head -n 1 || true)
  [ -n "$KEFUD_DEB" ] || die "no kefud .deb in target/aarch64-unknown-linux-gnu/debian/ (scripts/cross.sh aarch64-unknown-linux-gnu builds it) and KEFUD_DEB not set"
fi
[ -f "$KEFUD_DEB" ] || die "KEFUD_DEB=$KEFUD_DEB: no such file"
[ "$(dpkg-deb -f "$KEFUD_DEB" Package)" = kefud ] || die "$KEFUD_DEB is not the kefud package"
[ "$(dpkg-deb -f "$KEFUD_DEB" Architecture)" = arm64 ] || die "$KEFUD_DEB is not an arm64 package"
VERSION=$(dpkg-deb -f "$KEFUD_DEB" Version)
NAME=kefud-$VERSION-arm64
IMG=$OUT_DIR/$NAME.img
mkdir -p "$OUT_DIR"

t0=$(date +%s)
BASE=$("$HERE/build-base.sh")
log "base ready ($(elapsed "$t0")): $BASE"

t1=$(date +%s)
W=$(mktemp -d "${TMPDIR:-/var/tmp}/kefud-image.XXXXXX")
trap 'rm -rf "$W"' EXIT
trap 'exit 130' INT TERM
R=$W/rootfs
mkdir "$R"
tar --zstd --numeric-owner --xattrs --xattrs-include='*' -xpf "$BASE" -C "$R"

# Overlay: files only; directories that exist keep their owner and mode.
tar -C "$HERE/overlay" --owner=0 --group=0 --mode=go-w -cf - . | tar -C "$R" --no-overwrite-dir -xpf -

# kefud from its .deb; its postinst creates the kefud user and enables kefud.service.
# policy-rc.d: nothing is started inside the chroot.
cp "$KEFUD_DEB" "$R/tmp/kefud.deb"
printf '#!/bin/sh\nexit 101\n' > "$R/usr/sbin/policy-rc.d"
chmod 755 "$R/usr/sbin/policy-rc.d"
chroot "$R" dpkg -i /tmp/kefud.deb
rm -f "$R/usr/sbin/policy-rc.d" "$R/tmp/kefud.deb"
# The image has its broker (mosquitto on 127.0.0.1): the MQTT bridge is on.
sed -i '/^\[mqtt\]/,/^\[/ s/^enabled = false$/enabled = true/' "$R/etc/kefud/kefud.toml"
grep -A8 '^\[mqtt\]' "$R/etc/kefud/kefud.toml" | grep -qx 'enabled = true'

# Which units start. SSH stays off until kefu-firstboot gets a key. Wi-Fi runs as
# wpa_supplicant@wlan0 once configured (not the D-Bus-driven wpa_supplicant). apt's timers would
# download and write package lists daily; dpkg-db-backup rewrites /var/backups daily.
chroot "$R" systemctl enable --quiet systemd-networkd.service systemd-resolved.service \
  systemd-timesyncd.service avahi-daemon.service mosquitto.service kefu-broker-saver.service \
  kefu-firstboot.service kefu-boot-report.service
chroot "$R" systemctl disable --quiet ssh.service ssh.socket wpa_supplicant.service \
  apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer

# Per-device identity is made on the device (machine-id by systemd, empty file = first
# boot; dbus links its id to it; SSH host keys by kefu-firstboot).
: > "$R/etc/machine-id"
rm -f "$R/var/lib/dbus/machine-id" "$R"/etc/ssh/ssh_host_*
ln -sfn ../run/systemd/resolve/stub-resolv.conf "$R/etc/resolv.conf"
rm -rf "$R/var/log/journal" "$R"/var/cache/apt/*.bin "$R"/var/lib/dpkg/*-old
find "$R/tmp" "$R/var/tmp" -mindepth 1 -delete
cat > "$R/etc/kefud-image-release" <<INFO
KEFUD_IMAGE_VERSION=$VERSION
KEFUD_IMAGE_FLAVOUR=${FLAVOUR:-debian}
KEFUD_IMAGE_INITRD_MODULES=${INITRD_MODULES:-list}
KEFUD_IMAGE_BASE=$(basename "$BASE")
KEFUD_IMAGE_BUILT=$(date -u +%FT%TZ)
INFO

# The image's promises, checked before it is assembled.
[ ! -s "$R/etc/machine-id" ] || die "machine-id is baked in"
! ls "$R"/etc/ssh/ssh_host_* >/dev/null 2>&1 || die "SSH host keys are baked in"
awk -F: '$2 !~ /^[!*]/ { print "account " $1 " has a usable or empty password"; bad = 1 } END { exit bad }' \
  "$R/etc/shadow" || die "an account can log in with a password"
[ -L "$R/etc/systemd/system/multi-user.target.wants/kefud.service" ] || die "kefud.service is not enabled"
for u in multi-user.target.wants/ssh.service sockets.target.wants/ssh.socket timers.target.wants/apt-daily.timer; do
  [ ! -e "$R/etc/systemd/system/$u" ] || die "$u is enabled"
done
dpkg-query --admindir="$R/var/lib/dpkg" -W -f='${Package} ${Version} ${Architecture}\n' > "$OUT_DIR/$NAME.packages"
log "root filesystem ready ($(elapsed "$t1")): kefud $VERSION, $(du -sh "$R" | cut -f1)"

# Boot partition: the files raspi-firmware put in /boot/firmware (the root filesystem keeps
# only the empty mount point).
t2=$(date +%s)
mkfs.vfat -C -F 32 -n KEFU_BOOT -S 512 "$W/boot.vfat" $((BOOT_MIB * 1024)) >/dev/null
mcopy -s -p -m -i "$W/boot.vfat" "$R"/boot/firmware/* ::/
find "$R/boot/firmware" -mindepth 1 -delete
# Root partition: contents +30% +256 MiB, 4 MiB aligned; first boot grows it to the card.
root_kib=$(du -sk --apparent-size "$R" | cut -f1)
ROOT_MIB=$(( (root_kib * 13 / 10 / 1024 + 256 + 3) / 4 * 4 ))
mkfs.ext4 -q -F -L KEFU_ROOT -E root_owner=0:0 -d "$R" "$W/root.ext4" "${ROOT_MIB}M"
# MBR (the Pi 3 and Zero 2 W boot ROMs read only MBR); type c = FAT32 LBA.
truncate -s $((START_MIB + BOOT_MIB + ROOT_MIB))M "$W/disk.img"
sfdisk -q "$W/disk.img" <<SFDISK
label: dos
label-id: 0x4b454655
start=${START_MIB}MiB, size=${BOOT_MIB}MiB, type=c, bootable
start=$((START_MIB + BOOT_MIB))MiB, size=${ROOT_MIB}MiB, type=83
SFDISK
dd if="$W/boot.vfat" of="$W/disk.img" bs=1M seek=$START_MIB conv=notrunc,sparse status=none
dd if="$W/root.ext4" of="$W/disk.img" bs=1M seek=$((START_MIB + BOOT_MIB)) conv=notrunc,sparse status=none
mv -f "$W/disk.img" "$IMG"
log "assembled $IMG ($(elapsed "$t2")): $(du -h --apparent-size "$IMG" | cut -f1) ($(du -h "$IMG" | cut -f1) allocated)"

if [ "$COMPRESS" = xz ]; then
  t3=$(date +%s)
  xz -T0 "-$XZ_LEVEL" -c "$IMG" > "$IMG.xz.tmp"
  mv -f "$IMG.xz.tmp" "$IMG.xz"
  (cd "$OUT_DIR" && sha256sum "$NAME.img.xz" > "$NAME.img.xz.sha256")
  log "compressed $IMG.xz ($(elapsed "$t3")): $(du -h "$IMG.xz" | cut -f1)"
else
  rm -f "$IMG.xz" "$IMG.xz.sha256"   # an older build's, not this image
fi
log "done in $(elapsed "$t0")"
echo "$IMG" >&3
