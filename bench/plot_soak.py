#!/usr/bin/env python3
"""Plots the CSV of `pikku-bench soak` over time: server RSS, open fds and connections, echo and
delivery p99 per window, and the running error count.

Usage: python3 bench/plot_soak.py [CSV] [PNG]
       (defaults: target/bench-results/soak.csv, docs/soak.png)

Needs matplotlib (`pip install matplotlib`).
"""

import csv
import sys

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    sys.exit("plot_soak.py needs matplotlib: pip install matplotlib")


def column(rows, name, scale=1.0):
    """The values of one column (None where the cell is empty), divided by `scale`."""
    out = []
    for row in rows:
        cell = row.get(name, "")
        out.append(float(cell) / scale if cell not in ("", None) else None)
    return out


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "target/bench-results/soak.csv"
    dst = sys.argv[2] if len(sys.argv) > 2 else "docs/soak.png"
    with open(src, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        sys.exit(f"{src}: no rows")
    t = [float(r["t_s"]) / 60.0 for r in rows]
    errors = [
        sum(float(r[k]) for k in ("unexpected_closes", "failed_connects", "echo_timeouts", "error_replies"))
        for r in rows
    ]

    fig, axes = plt.subplots(4, 1, figsize=(10, 11), sharex=True)
    fig.suptitle(f"pikku soak: {rows[0]['conns_open']}→{rows[-1]['conns_open']} connections, {t[-1]:.1f} min")

    ax = axes[0]
    ax.plot(t, column(rows, "server_rss_kib", 1024.0), label="server RSS")
    ax.plot(t, column(rows, "client_rss_kib", 1024.0), label="load generator RSS", linestyle="--")
    ax.set_ylabel("MiB")
    ax.set_ylim(bottom=0)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)

    ax = axes[1]
    ax.plot(t, column(rows, "server_fds"), label="server open fds")
    ax.plot(t, column(rows, "conns_open"), label="connections open (client)", linestyle="--")
    ax.set_ylabel("count")
    ax.set_ylim(bottom=0)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)

    ax = axes[2]
    ax.plot(t, column(rows, "echo_p99_us", 1000.0), label="echo p99")
    ax.plot(t, column(rows, "delivery_p99_us", 1000.0), label="publish delivery p99")
    ax.set_ylabel("ms (per window)")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper right")
    ax.grid(alpha=0.3)

    ax = axes[3]
    ax.plot(t, errors, label="errors (running total)", color="tab:red")
    ax.plot(t, column(rows, "churned"), label="connections churned per window", color="tab:gray")
    ax.set_ylabel("count")
    ax.set_xlabel("minutes")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)

    fig.tight_layout()
    fig.savefig(dst, dpi=90)
    print(f"wrote {dst} ({len(rows)} samples)")


if __name__ == "__main__":
    main()
