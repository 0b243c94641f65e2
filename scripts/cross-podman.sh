#!/usr/bin/env bash
# scripts/cross-podman.sh CROSS-ARGS...: runs cross (https://github.com/cross-rs/cross, 0.2.5)
# with Debian's podman and a build image made here from a Debian root by mmdebstrap: no
# registry, and no network inside the container. Sets up what is missing first, idempotently
# (about a second once done):
#   - packages podman, runc, mmdebstrap (and cross itself: cargo install, 0.2.5);
#   - podman settings for a build container on a machine like this one, for these runs only
#     (target/cross-podman/containers.conf, given as CONTAINERS_CONF; the machine's own podman
#     settings are left alone): runc, because crun refuses a host with both cgroup versions
#     mounted; ulimits within the hard limits, because there is no CAP_SYS_RESOURCE to raise
#     them; cgroupfs and a file events log, without systemd's bus;
#   - the image localhost/kefud-cross:aarch64-bookworm (Cross.toml names it): Debian bookworm,
#     gcc and libc6-dev for build scripts, gcc-aarch64-linux-gnu and libc6-dev-arm64-cross for
#     kefud and bundled SQLite; ~420 MB, about a minute to make.
# cross mounts the host's toolchain (it must have aarch64's rust-std: rustup target add),
# ~/.cargo (crates are fetched on the host, by cross's `cargo metadata`), the workspace and
# the target directory. scripts/cross-shim/rustup keeps cross 0.2.5 from "installing" the
# toolchain that is there (it misreads newer rustup's `toolchain list`).
# Example: scripts/cross-podman.sh build --release --target aarch64-unknown-linux-gnu
set -euo pipefail
cd "$(dirname "$0")/.."
image=localhost/kefud-cross:aarch64-bookworm
mirror=${DEBIAN_MIRROR:-http://deb.debian.org}
export DEBIAN_FRONTEND=noninteractive

missing=()
for p in podman runc mmdebstrap; do
  dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  timeout 600 apt-get update -qq
  timeout 1200 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

nofile=$(ulimit -Hn)
if [ "$nofile" = unlimited ] || [ "$nofile" -gt 1048576 ]; then nofile=1048576; fi
conf=$PWD/target/cross-podman/containers.conf
want="# scripts/cross-podman.sh (kefud): a build container on this machine
[containers]
default_ulimits = [\"nofile=$nofile:$nofile\", \"nproc=32768:32768\"]

[engine]
runtime = \"runc\"
cgroup_manager = \"cgroupfs\"
events_logger = \"file\""
if [ "$(cat "$conf" 2>/dev/null)" != "$want" ]; then
  mkdir -p "$(dirname "$conf")"
  printf '%s\n' "$want" > "$conf"
fi
export CONTAINERS_CONF=$conf

if ! podman image exists "$image"; then
  echo "== making $image from a Debian root (mmdebstrap)" >&2
  work=$(mktemp -d /var/tmp/kefud-cross.XXXXXX)
  trap 'rm -rf "$work"' EXIT
  timeout 1800 mmdebstrap --quiet --variant=essential \
    --include=gcc,libc6-dev,gcc-aarch64-linux-gnu,libc6-dev-arm64-cross \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    bookworm "$work/root.tar" \
    "deb $mirror/debian bookworm main" \
    "deb $mirror/debian bookworm-updates main" \
    "deb $mirror/debian-security bookworm-security main"
  timeout 600 podman import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc' \
    --change 'ENV CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc' \
    --change 'ENV AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar' \
    --change 'CMD ["/bin/bash"]' \
    --message 'kefud cross image: Debian bookworm and gcc-aarch64-linux-gnu, made by mmdebstrap' \
    "$work/root.tar" "$image" >/dev/null
  rm -rf "$work"
  trap - EXIT
fi

if ! cargo install --list | grep -q '^cross v0\.2\.5:'; then
  timeout 1800 nice cargo install --quiet --locked cross --version 0.2.5
fi
rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || {
  echo "cross-podman: the toolchain has no aarch64 rust-std: rustup target add aarch64-unknown-linux-gnu" >&2
  exit 1
}

export PATH=$PWD/scripts/cross-shim:$HOME/.cargo/bin:$PATH
export CROSS_CONTAINER_ENGINE=podman      # a docker client elsewhere on PATH would win
export CROSS_CUSTOM_TOOLCHAIN=1           # no `rustup component add rust-src`
export CROSS_CONTAINER_OPTS="${CROSS_CONTAINER_OPTS:---network none --pull never}"
exec cross "$@"
