"""Evaluation report: a JSON-able dict and a fixed-width text table."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from synctva_ros.evaluation.metrics import plot_confusion

__all__ = ["make_report", "format_table", "write_report"]


def make_report(metrics: Mapping[str, Any], *, name: str = "", latency: Mapping[str, float] | None = None,
                extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Bundle :func:`~synctva_ros.evaluation.metrics.classification_metrics` output, latency and context.

    Returns ``{"name", "metrics", "latency_s", **extra}``; values must be JSON-serialisable.
    """
    rep: dict[str, Any] = {"name": name, "metrics": dict(metrics), "latency_s": dict(latency or {})}
    rep.update(dict(extra or {}))
    json.dumps(rep)  # fail early (TypeError) on a non-serialisable value
    return rep


def format_table(metrics: Mapping[str, Any], title: str = "") -> str:
    """Text table: one row per class (precision, recall, F1, support) then accuracy / weighted F1 / macro F1,
    as percentages with one decimal.

    Raises:
        KeyError: ``metrics`` lacks ``per_class``, ``accuracy`` or ``weighted_f1``.
    """
    per = metrics["per_class"]
    width = max([len("weighted F1")] + [len(c) for c in per])
    lines = []
    if title:
        lines.append(title)
    lines.append(f"{'class':<{width}}  {'prec':>6}  {'recall':>6}  {'F1':>6}  {'support':>7}")
    lines.append("-" * (width + 35))
    for cls, v in per.items():
        lines.append(f"{cls:<{width}}  {100 * v['precision']:6.1f}  {100 * v['recall']:6.1f}  "
                     f"{100 * v['f1']:6.1f}  {v['support']:7d}")
    lines.append("-" * (width + 35))
    n = metrics.get("n", sum(v["support"] for v in per.values()))
    lines.append(f"{'accuracy':<{width}}  {'':>6}  {'':>6}  {100 * metrics['accuracy']:6.1f}  {n:7d}")
    lines.append(f"{'weighted F1':<{width}}  {'':>6}  {'':>6}  {100 * metrics['weighted_f1']:6.1f}  {n:7d}")
    if "macro_f1" in metrics:
        lines.append(f"{'macro F1':<{width}}  {'':>6}  {'':>6}  {100 * metrics['macro_f1']:6.1f}  {n:7d}")
    return "\n".join(lines)


def write_report(report: Mapping[str, Any], out_dir: str | os.PathLike[str], stem: str = "report",
                 class_names: Sequence[str] | None = None) -> dict[str, Path]:
    """Write ``{stem}.json``, ``{stem}.txt`` (table) and, when the metrics have a confusion matrix,
    ``{stem}_confusion.png`` into ``out_dir``; returns their paths by kind."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / f"{stem}.json", "txt": out / f"{stem}.txt"}
    paths["json"].write_text(json.dumps(report, indent=2, default=str) + "\n")
    m = report.get("metrics", {})
    paths["txt"].write_text(format_table(m, title=str(report.get("name", ""))) + "\n")
    if "confusion" in m:
        names = list(class_names or m.get("class_names") or [])
        paths["png"] = plot_confusion(m["confusion"], names, out / f"{stem}_confusion.png",
                                      title=str(report.get("name", "")))
    return paths
