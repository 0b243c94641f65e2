#!/usr/bin/env python3
"""Plots the CSV of `kefud-load soak` (RSS, open descriptors, threads, open connections over
time, one dashed line per restart) into a PNG, and prints each lifetime's trend.

Usage: python3 bench/plot_soak.py soak.csv docs/soak.png
Needs matplotlib (Debian: apt-get install python3-matplotlib).
"""

import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def main(src, dst):
    with open(src, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        sys.exit(f"{src} has no samples")
    col = {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}
    minutes = col["seconds"] / 60.0
    gen = col["generation"].astype(int)
    restarts = [minutes[i] for i in range(1, len(gen)) if gen[i] != gen[i - 1]]

    series = [
        ("RSS (MiB)", col["rss_kib"] / 1024.0),
        ("open descriptors", col["fds"]),
        ("threads", col["threads"]),
        ("open connections", col["connections"]),
    ]
    fig, axes = plt.subplots(len(series), 1, figsize=(10, 9), sharex=True)
    for ax, (label, values) in zip(axes, series):
        ax.plot(minutes, values, linewidth=0.8)
        for r in restarts:
            ax.axvline(r, color="grey", linestyle="--", linewidth=0.6)
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0, top=max(values.max() * 1.15, 1))
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("minutes (dashed: SIGTERM + restart on the same data directory)")
    acked, replies, images = (int(col[k][-1]) for k in ("acked", "replies", "images"))
    fig.suptitle(
        f"kefud soak, {minutes[-1]:.0f} min: {acked:,} visitor messages, "
        f"{replies:,} agent replies, {images:,} images acknowledged"
    )
    fig.tight_layout()
    fig.savefig(dst, dpi=80)
    print(f"wrote {dst}")

    # Each lifetime after its first 30 s: first, last, and the least-squares slope.
    for g in sorted(set(gen)):
        sel = (gen == g) & (col["seconds"] >= col["seconds"][gen == g][0] + 30)
        if sel.sum() < 3:
            continue
        t = minutes[sel]
        parts = []
        for name, values, unit in (
            ("RSS", col["rss_kib"][sel] / 1024.0, "MiB"),
            ("fds", col["fds"][sel], ""),
            ("threads", col["threads"][sel], ""),
        ):
            slope = np.polyfit(t, values, 1)[0]
            parts.append(
                f"{name} {values[0]:.1f}->{values[-1]:.1f}{unit} "
                f"(min {values.min():.1f}, max {values.max():.1f}, slope {slope:+.3f}/min)"
            )
        print(f"lifetime {g} ({t[0]:.1f}-{t[-1]:.1f} min): " + "; ".join(parts))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
