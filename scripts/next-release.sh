#!/usr/bin/env bash
# scripts/next-release.sh [TARGET]: this tree built again as the next patch version (0.2.0 ->
# 0.2.1) and packaged, for the update tests: prints the .deb's path. TARGET is a Rust target
# (default: this machine's). The copy of the tree is built in target/next-release/TARGET/src
# with the same target directory, so only kefud itself is compiled again; the binary this
# tree's build left in target/[TARGET/]release is put back afterwards. Reused while the tree is
# unchanged. Run scripts/update-key.sh first (the package ships its public key).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
target=${1:-}
current_version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
next_version=$(echo "$current_version" | awk -F. '{ printf "%d.%d.%d", $1, $2, $3 + 1 }')
if [ -n "$target" ]; then
  arch=$(case $target in aarch64-*) echo arm64 ;; armv7-*) echo armhf ;; x86_64-*) echo amd64 ;; *) echo "$target" ;; esac)
  release_dir=target/$target/release
  target_args=(--target "$target")
else
  arch=$(dpkg --print-architecture)
  release_dir=target/release
  target_args=()
fi
work=target/next-release/${target:-host}
deb=$work/kefud_${next_version}-1_${arch}.deb
tree_id=$( (git rev-parse HEAD; git diff HEAD; git ls-files --others --exclude-standard; cat target/update-key/update-key.pub) | sha256sum | cut -c1-16)
if [ "$(cat "$work/built-from" 2>/dev/null)" = "$tree_id" ] && [ -f "$deb" ]; then
  echo "$deb"
  exit 0
fi
echo "== building this tree as kefud $next_version for ${target:-this machine} (the next release)" >&2
rm -rf "$work" && mkdir -p "$work/src"
git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -x -C "$work/src"
sed -i "0,/^version = \"$current_version\"/s//version = \"$next_version\"/" "$work/src/Cargo.toml"
sed -i "/^name = \"kefud\"$/{n;s/^version = \"$current_version\"/version = \"$next_version\"/}" "$work/src/Cargo.lock"
mkdir -p "$work/src/target/update-key"
cp target/update-key/update-key.pub "$work/src/target/update-key/"
kept=
if [ -f "$release_dir/kefud" ]; then kept=$work/kefud.current; cp -p "$release_dir/kefud" "$kept"; fi
(cd "$work/src" && CARGO_TARGET_DIR="$root/target" cargo build --release --locked "${target_args[@]}" --bin kefud) >&2
(cd "$work/src" && CARGO_TARGET_DIR="$root/target" cargo deb --no-build "${target_args[@]}" --deb-revision 1 \
  -o "$root/$deb" >/dev/null)
# rm first: the uplifted binary is a hard link to cargo's own copy, which must stay intact.
if [ -n "$kept" ]; then rm -f "$release_dir/kefud" && cp -p "$kept" "$release_dir/kefud"; fi
echo "$tree_id" > "$work/built-from"
echo "$deb"
