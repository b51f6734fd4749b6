"""The benchmark's charts: end-to-end latency per configuration, backend and mode, stages stacked (:func:`plot`);
the scaling series (:func:`plot_scaling`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot", "plot_scaling"]

#: Stage -> bar colour (bottom to top).
_STAGE_COLOURS = (("text", "#4c72b0"), ("audio", "#55a868"), ("visual", "#c44e52"), ("fusion", "#8172b2"))


def _pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (deferred: about 1 s to import, needed only for the charts)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    """Lay ``fig`` out, write it to ``path`` (PNG, 110 dpi), close it; returns ``path``."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def plot(doc: dict[str, Any], path: Path) -> Path:
    """Bar chart: end-to-end p50 (whisker to p95) per configuration/backend/mode, stages stacked.

    Args:
        doc: the ``bench.json`` document (its ``rows``).
        path: PNG file to write (110 dpi).

    Returns:
        ``path``.
    """
    plt = _pyplot()
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
    return _save(fig, path)


def plot_scaling(scaling: dict[str, Any], path: Path) -> Path:
    """The scaling series (:mod:`~synctva_ros.bench.scaling`): one panel per series, end-to-end latency p50 and p95
    and the CPU time at close (ms, left axis) and the streaming work's CPU cores per second of utterance (right
    axis) against the series' x.

    Args:
        scaling: the ``scaling`` document of ``bench.json`` (its ``series``).
        path: PNG file to write (110 dpi).

    Returns:
        ``path``.
    """
    plt = _pyplot()
    series = scaling["series"]
    fig, axes = plt.subplots(1, max(1, len(series)), figsize=(4.2 * max(1, len(series)), 3.8), squeeze=False)
    for ax, (name, s) in zip(axes[0], series.items()):
        x = [p["x"] for p in s["points"]]
        ax.plot(x, [1e3 * p["latency_s"]["p50"] for p in s["points"]], "o-", color="#4c72b0", label="p50")
        ax.plot(x, [1e3 * p["latency_s"]["p95"] for p in s["points"]], "s--", color="#4c72b0", label="p95")
        ax.plot(x, [1e3 * p["close_cpu_s"] for p in s["points"]], "d-", color="#55a868", label="CPU at close (median)")
        ax.set_xlabel(f"{name} ({s['unit']})", fontsize=8)
        ax.set_ylabel("ms from window close to result", fontsize=8)
        ax.set_ylim(bottom=0)
        twin = ax.twinx()
        twin.plot(x, [p["stream_cpu_cores"] for p in s["points"]], "^:", color="#c44e52", label="cores while streaming")
        twin.set_ylabel("CPU cores during the utterance", fontsize=8, color="#c44e52")
        twin.set_ylim(bottom=0)
        ax.legend(loc="upper left", fontsize=7)
        twin.legend(loc="lower right", fontsize=7)
    fig.suptitle(f"synctva bench scaling: {scaling['config']}, {scaling['backend']} (text encoder "
                 f"{scaling.get('text_encoder') or 'none'}), {scaling['mode']}, load average "
                 f"{scaling['load_average'][0]:.1f}", fontsize=9)
    return _save(fig, path)
