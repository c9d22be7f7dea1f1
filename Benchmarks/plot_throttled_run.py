"""Plots the CSV of `lethe bench retention --throttled` as a PNG: rows deleted per second
over time, the pressure (t1..t2) and the time over the limit shaded, the floor as a line.

usage: plot_throttled_run.py SAMPLES.csv OUT.png   (scripts/plot-throttled-run sets up matplotlib)
"""

import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read(path):
    settings, comments, rows = {}, [], []
    with open(path, newline="") as f:
        lines = []
        for line in f:
            if line.startswith("#"):
                comments.append(line[1:].strip())
                for word in line[1:].split():
                    if "=" in word:
                        key, value = word.split("=", 1)
                        settings[key] = value
            else:
                lines.append(line)
        for row in csv.DictReader(lines):
            rows.append({key: float(value) for key, value in row.items()})
    return settings, comments, rows


def spans(rows, column):
    """The (start, end) seconds where column is 1."""
    result, start = [], None
    for row in rows:
        if row[column] and start is None:
            start = row["seconds"]
        elif not row[column] and start is not None:
            result.append((start, row["seconds"]))
            start = None
    if start is not None:
        result.append((start, rows[-1]["seconds"]))
    return result


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: plot_throttled_run.py SAMPLES.csv OUT.png")
    settings, comments, rows = read(sys.argv[1])
    if not rows:
        sys.exit(f"{sys.argv[1]}: no samples")
    seconds = [row["seconds"] for row in rows]
    rates = [row["rows_per_second"] / 1000 for row in rows]
    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=110)
    ax.step(seconds, rates, where="post", color="tab:blue", linewidth=1.4, label="rows deleted per second (250 ms samples)")
    for start, end in spans(rows, "pressure"):
        ax.axvline(start, color="tab:red", linestyle="--", linewidth=1)
        ax.axvline(end, color="tab:green", linestyle="--", linewidth=1)
        ax.annotate("t1: pressure on", (start, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -12),
                    textcoords="offset points", color="tab:red", fontsize=9)
        ax.annotate("t2: pressure off", (end, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -12),
                    textcoords="offset points", color="tab:green", fontsize=9)
    for index, (start, end) in enumerate(spans(rows, "over_limit")):
        ax.axvspan(start, end, color="tab:red", alpha=0.12,
                   label=f"signal over its limit ({settings.get('limit', '?')})" if index == 0 else None)
    # The floor is per worker process: the fleet's is the processes' sum.
    processes = int(settings.get("processes", 1))
    floor = (float(settings.get("floor_roots_per_second", 0)) * processes
             * float(settings.get("rows_per_root", 0)) / 1000)
    ax.axhline(floor, color="black", linestyle=":", linewidth=1.2,
               label=f"floor: {settings.get('floor_roots_per_second', '0')} roots/s x {processes} processes"
               + (" (pause)" if floor == 0 else ""))
    ax.set_xlabel("seconds since the workers started")
    ax.set_ylabel("thousand rows deleted per second")
    ax.set_ylim(bottom=-max(rates + [1]) * 0.03)
    ax.set_title(comments[0] if comments else "lethe bench retention --throttled", fontsize=10)
    ax.text(0.0, -0.2, comments[1] if len(comments) > 1 else "", transform=ax.transAxes, fontsize=8, color="dimgray")
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(sys.argv[2])


if __name__ == "__main__":
    main()
