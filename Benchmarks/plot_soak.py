"""Plots the CSV of `lethe bench soak` as one PNG per series (OUT_DIR/<column>.png), each
with a least-squares line through the first and through the last half of the run, so a
reader sees at a glance whether the series stays flat.

usage: plot_soak.py SOAK.csv OUT_DIR   (scripts/plot-soak sets up matplotlib)
"""

import csv
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

UNITS = {"_mb": "MB", "_mb_per_s": "MB/s", "_rows": "rows", "_tuples": "tuples", "connections": "connections"}


def read(path):
    with open(path, newline="") as f:
        rows = [{key: float(value) for key, value in row.items()} for row in csv.DictReader(f)]
    if len(rows) < 2:
        sys.exit(f"{path}: fewer than two samples")
    return rows


def fit(points):
    """Slope and intercept of the least-squares line through (x, y) points."""
    n = len(points)
    if n < 2:
        return 0.0, points[0][1] if points else 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    slope = 0.0 if var == 0 else sum((x - mx) * (y - my) for x, y in points) / var
    return slope, my - slope * mx


def unit(column):
    for suffix, name in sorted(UNITS.items(), key=lambda item: -len(item[0])):
        if column.endswith(suffix):
            return name
    return "count"


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: plot_soak.py SOAK.csv OUT_DIR")
    rows = read(sys.argv[1])
    out = sys.argv[2]
    os.makedirs(out, exist_ok=True)
    minutes = [row["elapsed_s"] / 60 for row in rows]
    half = len(rows) // 2
    for column in rows[0]:
        if column == "elapsed_s":
            continue
        values = [row[column] for row in rows]
        fig, ax = plt.subplots(figsize=(7, 3.2))
        ax.plot(minutes, values, marker=".", linewidth=1, label=column)
        for part, colour in ((slice(0, half), "tab:gray"), (slice(half, None), "tab:red")):
            xs, ys = minutes[part], values[part]
            slope, intercept = fit(list(zip(xs, ys)))
            ax.plot(
                [xs[0], xs[-1]], [intercept + slope * xs[0], intercept + slope * xs[-1]], color=colour,
                linestyle="--", linewidth=1, label=f"fit {'first' if colour == 'tab:gray' else 'last'} half: {slope:+.2f}/min")
        ax.set_xlabel("minutes")
        ax.set_ylabel(unit(column))
        ax.set_ylim(bottom=min(0, min(values)))
        ax.set_title(column)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        fig.tight_layout()
        path = os.path.join(out, f"{column}.png")
        fig.savefig(path, dpi=90)
        plt.close(fig)
        print(path)


if __name__ == "__main__":
    main()
