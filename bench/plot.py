"""Bar charts from the figures the benchmarks saved: instructions per call by record
shape (bench/instructions.py), or the app thread's µs per call (bench/run.py).

.venv/bin/python bench/plot.py bench/results-instructions.json docs/performance-instructions.png
.venv/bin/python bench/plot.py bench/results.json docs/performance.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import matplotlib

matplotlib.use("Agg")  # no display: write the file only
import matplotlib.pyplot as plt
from contender import LIBRARY_DEFAULTS

OURS = ("logwell-handler", "logwell-client")


def instructions(results: dict[str, Any], out: str) -> None:
    """One panel per record shape: each contender's instructions per call as a ratio to
    format-only, one bar per Python."""
    shapes: list[str] = results["shapes"]
    by_python: dict[str, dict[str, dict[str, Optional[float]]]] = results["instructions"]
    pythons = list(by_python)
    kinds = list(next(iter(by_python.values())))
    fig, grid = plt.subplots(
        1, len(shapes), figsize=(4 * len(shapes), 0.5 * len(kinds) + 1.8), squeeze=False
    )
    axes = list(grid[0])
    height = 0.8 / len(pythons)
    for ax, shape in zip(axes, shapes):
        for p, python in enumerate(pythons):
            rows = by_python[python]
            base = rows["format-only"][shape] or 1.0
            for y, kind in enumerate(kinds):
                value = rows[kind][shape]
                if value is None:
                    continue
                color = "#d9480f" if kind.startswith("logwell-handler") else "#495057"
                alpha = 1.0 - 0.45 * p / max(1, len(pythons) - 1)
                offset = (p - (len(pythons) - 1) / 2) * height
                ax.barh(y + offset, value / base, height, color=color, alpha=alpha)
                ax.text(value / base, y + offset, f" {value / base:.2f}", va="center", fontsize=7)
        ax.axvline(1.0, color="#1971c2", linestyle="--", linewidth=1)
        ax.set_yticks(range(len(kinds)), kinds if ax is axes[0] else [""] * len(kinds))
        ax.invert_yaxis()
        ax.set_title(shape, fontsize=9)
        ax.set_xlabel("× format-only (lower is better)", fontsize=8)
    fig.suptitle(
        "Instructions per log call on the calling thread, callgrind; bars: CPython "
        + ", ".join(pythons)
        + " (dark to light)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(out)


def main() -> int:
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    results = json.loads(Path(sys.argv[1]).read_text())
    if "instructions" in results:
        instructions(results, sys.argv[2])
        return 0
    burst = results["burst"]
    # The library-defaults runs (one thread) have a table of their own, not a bar here.
    kinds = list(
        dict.fromkeys(row["contender"] for row in burst if row["contender"] not in LIBRARY_DEFAULTS)
    )
    cost = {(row["contender"], row["threads"]): row["us_per_call"] for row in burst}

    fig, ax = plt.subplots(figsize=(9, 0.55 * len(kinds) + 1.6), dpi=110)
    height = 0.38
    for offset, threads, shade in ((-height / 2, 1, 1.0), (height / 2, 4, 0.55)):
        for y, kind in enumerate(kinds):
            value = cost[(kind, threads)]
            color = "#d9480f" if kind in OURS else "#495057"
            ax.barh(y + offset, value, height, color=color, alpha=shade)
            ax.text(value, y + offset, f" {value:.1f}", va="center", fontsize=8)
    baseline = cost[("format-only", 1)]
    ax.axvline(
        baseline, color="#1971c2", linestyle="--", linewidth=1, label="format-only, 1 thread"
    )
    ax.legend(loc="lower right", fontsize=8)
    ax.set_yticks(range(len(kinds)), kinds)
    ax.invert_yaxis()
    ax.set_xlabel("µs the calling thread spends per log call (lower is better)")
    ax.set_title(
        "Cost of one log call: 1 thread (dark) and 4 threads (light)\n" + results["machine"],
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(sys.argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main())
