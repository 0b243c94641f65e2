#!/bin/sh
# image/build-base.sh: owns the cached base root filesystem of the kefud SD image.
#
# Builds, with mmdebstrap (arm64, under qemu-user binfmt), a Debian root filesystem that holds
# every Debian package of the image, the boot partition files (/boot/firmware, written by
# raspi-firmware) and one initramfs, and stores it as a tarball in the cache directory:
#   ${KEFUD_IMAGE_CACHE:-/var/cache/kefud-image}/base-FLAVOUR-MODULES-KEY.tar.zst
# KEY hashes every input: this script, base-customize.sh, the flavour file, INITRD_MODULES
# and BASE_REFRESH. A tarball already in the cache is reused. Prints the tarball's path on
# stdout (everything else goes to stderr). Run as root.
#
# Parameters (environment):
#   FLAVOUR=debian        package source, one file in image/flavours/ (see image/README.md)
#   INITRD_MODULES=list   "list": small initramfs (virtio + Raspberry Pi SD drivers, ~30 s to
#                         build); "most": Debian's generic initramfs (~13 min under qemu-user),
#                         the safe choice for release images until "list" is checked on boards
#   BASE_REFRESH=<ISO week>  part of the key, so the base (and its security updates) is
#                         rebuilt once a week; set it to a fixed string to pin a base
#   KEFUD_IMAGE_CACHE     cache directory (the 3 newest tarballs are kept)
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
FLAVOUR=${FLAVOUR:-debian}
INITRD_MODULES=${INITRD_MODULES:-list}
BASE_REFRESH=${BASE_REFRESH:-$(date -u +%G-W%V)}
CACHE=${KEFUD_IMAGE_CACHE:-/var/cache/kefud-image}

log() { echo "build-base: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (mmdebstrap --mode=root)"
# stdout is only for the result's path; every tool's output goes to stderr.
exec 3>&1 1>&2
FLAVOUR_FILE=$HERE/flavours/$FLAVOUR.sh
[ -f "$FLAVOUR_FILE" ] || die "unknown FLAVOUR=$FLAVOUR (no $FLAVOUR_FILE; see image/README.md)"
case $INITRD_MODULES in list|most) ;; *) die "INITRD_MODULES must be list or most" ;; esac
. "$FLAVOUR_FILE"

# Packages of every flavour; the flavour adds its kernel and firmware.
PACKAGES="systemd-sysv udev kmod dbus iproute2 netbase ca-certificates tzdata adduser
  systemd-timesyncd systemd-resolved avahi-daemon mosquitto openssh-server
  wpasupplicant wireless-regdb initramfs-tools zstd cloud-guest-utils fdisk e2fsprogs dosfstools
  $FLAVOUR_BOOT_PACKAGES"

KEY=$( {
  cat "$HERE/build-base.sh" "$HERE/base-customize.sh" "$FLAVOUR_FILE"
  echo "$FLAVOUR $INITRD_MODULES $BASE_REFRESH $FLAVOUR_SOURCES $PACKAGES"
} | sha256sum | cut -c1-16)
TARBALL=$CACHE/base-$FLAVOUR-$INITRD_MODULES-$KEY.tar.zst

mkdir -p "$CACHE"
# One builder per base: a second caller for the same base waits, then reuses the result.
exec 9>"$CACHE/.lock-$KEY"
flock 9
if [ -f "$TARBALL" ]; then
  log "reusing $TARBALL"
  echo "$TARBALL" >&3
  exit 0
fi

log "building $TARBALL (FLAVOUR=$FLAVOUR INITRD_MODULES=$INITRD_MODULES BASE_REFRESH=$BASE_REFRESH)"
start=$(date +%s)
TMP_TARBALL=$CACHE/.building-$KEY.tar.zst
trap 'rm -f "$TMP_TARBALL"' EXIT
trap 'exit 130' INT TERM
# INITRD=No: the kernel's postinst skips mkinitramfs during the install (it is slow under
# qemu-user); base-customize.sh builds the one initramfs at the end.
# shellcheck disable=SC2086 # PACKAGES is a word list
INITRD=No mmdebstrap --mode=root --architectures=arm64 --variant=minbase \
  --include="$(echo $PACKAGES | tr ' ' ,)" \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-include=/usr/share/locale/locale.alias' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --setup-hook='mkdir -p "$1/boot/firmware"' \
  --customize-hook="INITRD_MODULES=$INITRD_MODULES '$HERE/base-customize.sh' \"\$1\"" \
  "$FLAVOUR_SUITE" "$TMP_TARBALL" - <<SOURCES
$FLAVOUR_SOURCES
SOURCES
mv "$TMP_TARBALL" "$TARBALL"
log "built in $(( $(date +%s) - start )) s: $(du -h "$TARBALL" | cut -f1)"

# Keep the three newest bases.
ls -t "$CACHE"/base-*.tar.zst | tail -n +4 | while read -r old; do
  log "pruning $old"
  old_key=${old##*-}
  rm -f "$old" "$CACHE/.lock-${old_key%.tar.zst}"
done
echo "$TARBALL" >&3
