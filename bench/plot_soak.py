#!/usr/bin/env python3
"""Plots the CSV of `pikku-bench soak` over time: server RSS, open fds and connections, echo and
delivery p99 per window (with the CPU other programs used meanwhile), and the running error count.

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


def from_zero(ax, *series):
    """Starts the y axis at 0 with headroom above the largest value, so flat lines stay visible."""
    top = max((v for s in series for v in s if v is not None), default=1.0)
    ax.set_ylim(0, top * 1.1 if top > 0 else 1.0)


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
    rss, client = column(rows, "server_rss_kib", 1024.0), column(rows, "client_rss_kib", 1024.0)
    ax.plot(t, rss, label="server RSS")
    ax.plot(t, client, label="load generator RSS", linestyle="--")
    ax.set_ylabel("MiB")
    from_zero(ax, rss, client)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)

    ax = axes[1]
    fds, conns = column(rows, "server_fds"), column(rows, "conns_open")
    ax.plot(t, fds, label="server open fds")
    ax.plot(t, conns, label="connections open (client)", linestyle="--")
    ax.set_ylabel("count")
    from_zero(ax, fds, conns)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)

    ax = axes[2]
    echo, delivery = column(rows, "echo_p99_us", 1000.0), column(rows, "delivery_p99_us", 1000.0)
    ax.plot(t, echo, label="echo p99")
    ax.plot(t, delivery, label="publish delivery p99")
    ax.set_ylabel("ms (per window)")
    from_zero(ax, echo, delivery)
    if "other_cpu_pct" in rows[0]:
        # Other work on the (shared) machine: explains latency spikes that are not the server's.
        other = column(rows, "other_cpu_pct")
        twin = ax.twinx()
        twin.plot(t, other, label="other CPU % (right)", color="tab:gray", linestyle=":")
        twin.set_ylabel("% of a core")
        from_zero(twin, other)
        twin.legend(loc="upper left")
    ax.legend(loc="upper right")
    ax.grid(alpha=0.3)

    ax = axes[3]
    churned = column(rows, "churned")
    ax.plot(t, errors, label="errors (running total)", color="tab:red")
    ax.plot(t, churned, label="connections churned per window", color="tab:gray")
    ax.set_ylabel("count")
    ax.set_xlabel("minutes")
    from_zero(ax, errors, churned)
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)

    fig.tight_layout()
    fig.savefig(dst, dpi=90)
    print(f"wrote {dst} ({len(rows)} samples)")


if __name__ == "__main__":
    main()
