#!/usr/bin/env bash
# Installs, idempotently, what the full test run needs on a Debian 12 machine (run as root):
# the cross toolchains and rustup targets, qemu (user and system, from bookworm-backports, see
# README), the SD-image tools, cargo-deb, scikit-learn (the intent benchmark's baseline), and
# binfmt_misc registration for aarch64 and armhf, and mosquitto + openssl (the MQTT tests start their own brokers, one with TLS)
# and mosquitto-clients (the burst test publishes with `mosquitto_pub -l`), and faketime (the
# clock-step test fakes kefud's wall clock with libfaketime).
# Fast when everything is already there.
set -euo pipefail

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

apt_packages=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross gcc-arm-linux-gnueabihf libc6-dev-armhf-cross
  mmdebstrap arch-test mtools dosfstools e2fsprogs fdisk zstd xz-utils curl dpkg-dev fakeroot file
  mosquitto mosquitto-clients openssl faketime)
backports_packages=(qemu-system-arm qemu-user-static qemu-efi-aarch64 ipxe-qemu)

missing=()
for p in "${apt_packages[@]}" "${backports_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing: ${missing[*]}"
  # qemu comes from bookworm-backports: the machine's qemu-utils is the backports one and
  # bookworm's own qemu-system-arm refuses to install beside it.
  if [ ! -e /etc/apt/sources.list.d/bookworm-backports.sources ]; then
    $SUDO tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  fi
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -t bookworm-backports "${backports_packages[@]}" >/dev/null
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${apt_packages[@]}" >/dev/null
fi

# Foreign binaries (the cross-built kefud, the image's chroot) run through binfmt_misc with
# the static qemu; the F flag keeps that working inside chroots. Mounted here because CI has
# no systemd as PID 1 to do it.
if [ -d /proc/sys/fs/binfmt_misc ]; then
  mountpoint -q /proc/sys/fs/binfmt_misc || $SUDO mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  for arch in aarch64 arm; do
    [ -e "/proc/sys/fs/binfmt_misc/qemu-$arch" ] || \
      $SUDO sh -c "cat /usr/lib/binfmt.d/qemu-$arch.conf > /proc/sys/fs/binfmt_misc/register"
  done
fi

for target in aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf; do
  rustup target list --installed | grep -qx "$target" || rustup target add "$target"
done

# The intent benchmark's baseline (bench/intent_sklearn.py).
if ! python3 -c 'import sklearn' 2>/dev/null; then
  echo "== installing scikit-learn"
  python3 -m pip install --quiet --disable-pip-version-check scikit-learn
fi

if ! cargo deb --version >/dev/null 2>&1; then
  echo "== installing cargo-deb"
  cargo install --locked --quiet cargo-deb --version '^3'
fi
