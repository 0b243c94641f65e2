#!/bin/sh
# image/ci.sh: owns the SD-image step of CI: builds the image from the kefud .deb (the base
# root filesystem comes from the cache, and is rebuilt only when its inputs change or weekly)
# and boot-tests it under QEMU. Idempotent; every step is bounded in time. Run as root,
# after the .deb (cargo deb --target aarch64-unknown-linux-gnu) and kefud-load
# (cargo build --release -p kefud-load) are built.
#
# Parameters (environment): BUILD_TIMEOUT (s, default 2400: covers a base rebuild),
# TEST_TIMEOUT (s, default 1800), COMPRESS (default none here: the boot test needs only the
# .img; set COMPRESS=xz for the release .img.xz), and those of build.sh and test-boot.sh
# (NEXT_DEB: the next version's .deb for the update checks).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
export COMPRESS="${COMPRESS:-none}"
start=$(date +%s)
IMG=$(timeout -k 30 "${BUILD_TIMEOUT:-2400}" "$HERE/build.sh")
echo "image/ci.sh: built $IMG in $(( $(date +%s) - start )) s"
timeout -k 30 "${TEST_TIMEOUT:-1800}" "$HERE/test-boot.sh" "$IMG"
echo "image/ci.sh: done in $(( $(date +%s) - start )) s"
