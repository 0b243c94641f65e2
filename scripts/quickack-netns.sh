#!/bin/sh
# Runs a command (as root) in a network namespace of its own whose loopback routes have
# `quickack 1` (no delayed ACKs), as README "Several shops" advises for the routes between the
# boxes and the central broker. For the cluster benchmark (BENCHMARKS.md):
#   unshare -n scripts/quickack-netns.sh target/release/kefud-load --spawn target/release/kefud cluster
# The machine's own routes are untouched.
set -e
ip link set lo up
ip route change local 127.0.0.0/8 dev lo proto kernel scope host src 127.0.0.1 table local quickack 1
ip route change local 127.0.0.1 dev lo proto kernel scope host src 127.0.0.1 table local quickack 1
exec "$@"
