"""Bar chart of the app-thread cost per call, from the figures bench/run.py saved.

.venv/bin/python bench/plot.py bench/results.json docs/performance.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: write the file only
import matplotlib.pyplot as plt

OURS = ("logwell-handler", "logwell-client")


def main() -> int:
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    results = json.loads(Path(sys.argv[1]).read_text())
    burst = results["burst"]
    kinds = list(dict.fromkeys(row["contender"] for row in burst))
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
