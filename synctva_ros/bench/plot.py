"""The benchmark's chart: end-to-end latency per configuration, backend and mode, stages stacked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot"]

#: Stage -> bar colour (bottom to top).
_STAGE_COLOURS = (("text", "#4c72b0"), ("audio", "#55a868"), ("visual", "#c44e52"), ("fusion", "#8172b2"))


def plot(doc: dict[str, Any], path: Path) -> Path:
    """Bar chart: end-to-end p50 (whisker to p95) per configuration/backend/mode, stages stacked.

    Args:
        doc: the ``bench.json`` document (its ``rows``).
        path: PNG file to write (110 dpi).

    Returns:
        ``path``.
    """
    # deferred: matplotlib.pyplot takes about 1 s to import and is needed only for this chart
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = doc["rows"]
    labels = [f"{r['config'].split(' ')[0]}\n{r['backend']}\n{r['mode']}" for r in rows]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(rows) + 2), 5))
    x = np.arange(len(rows))
    bottom = np.zeros(len(rows))
    for stage, colour in _STAGE_COLOURS:
        v = np.array([1e3 * r["stages_s"].get(stage, 0.0) for r in rows])
        ax.bar(x, v, bottom=bottom, color=colour, label=f"{stage} (median)", width=0.6)
        bottom += v
    p50 = np.array([1e3 * r["latency_s"]["p50"] for r in rows])
    p95 = np.array([1e3 * r["latency_s"]["p95"] for r in rows])
    ax.errorbar(x, p50, yerr=[np.zeros_like(p50), np.maximum(p95 - p50, 0)], fmt="k_", capsize=4,
                label="end-to-end p50 (bar: to p95)")
    ax.set_xticks(x)
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel("ms from window close to result")
    ax.set_title("synctva bench (CPU; random-weight rows: latency only)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
