"""Classification and latency metrics (scikit-learn): accuracy, weighted F1, per-class F1,
confusion matrix (and its PNG), latency percentiles.

Weighted F1 is the headline metric of emotion recognition in conversation (MELD, IEMOCAP;
Sync-TVA arXiv 2507.21395 Sec. 4 reports weighted F1 and accuracy).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["classification_metrics", "confusion", "plot_confusion", "latency_stats"]

log = logging.getLogger(__name__)


def _check(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.int64).reshape(-1)
    p = np.asarray(y_pred, dtype=np.int64).reshape(-1)
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} labels, y_pred {p.size}")
    if t.size == 0:
        raise ValueError("no labels to score")
    for name, a in (("y_true", t), ("y_pred", p)):
        if a.min() < 0 or a.max() >= n_classes:
            raise ValueError(f"{name} has a class index outside [0, {n_classes})")
    return t, p


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], class_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, weighted/macro F1, per-class precision/recall/F1/support and the confusion matrix.

    Args:
        y_true, y_pred: ``(N,)`` class indices into ``class_names``.
        class_names: C names.

    Returns:
        JSON-able dict: ``n``, ``accuracy``, ``weighted_f1``, ``macro_f1``, ``per_class``
        (``{name: {precision, recall, f1, support}}``), ``confusion`` (C x C list, rows = true),
        ``class_names``. Metrics are fractions in [0, 1].

    Raises:
        ValueError: lengths differ, no labels, or an index outside ``[0, C)``.
    """
    # deferred: scikit-learn takes ~1.4 s to import; report formatting and plotting do not need it
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    c = len(class_names)
    t, p = _check(y_true, y_pred, c)
    labels = list(range(c))
    prec, rec, f1, sup = precision_recall_fscore_support(t, p, labels=labels, zero_division=0)
    return {
        "n": int(t.size),
        "accuracy": float(accuracy_score(t, p)),
        "weighted_f1": float(f1_score(t, p, labels=labels, average="weighted", zero_division=0)),
        "macro_f1": float(f1_score(t, p, labels=labels, average="macro", zero_division=0)),
        "per_class": {name: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]),
                             "support": int(sup[i])} for i, name in enumerate(class_names)},
        "confusion": confusion(t, p, c).tolist(),
        "class_names": list(class_names),
    }


def confusion(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """``(C, C)`` int64 confusion matrix, rows = true class, columns = predicted (sklearn)."""
    # deferred: scikit-learn (see classification_metrics)
    from sklearn.metrics import confusion_matrix

    t, p = _check(y_true, y_pred, n_classes)
    return confusion_matrix(t, p, labels=list(range(n_classes))).astype(np.int64)


def plot_confusion(matrix: Sequence[Sequence[int]], class_names: Sequence[str], path: str | os.PathLike[str],
                   title: str = "", normalise: bool = True) -> Path:
    """Write the confusion matrix as a PNG (matplotlib, Agg backend); returns the path.

    With ``normalise`` each row is divided by its support (recall per cell); counts are
    printed in the cells either way.

    Raises:
        ValueError: matrix not ``(C, C)`` with C = ``len(class_names)``.
    """
    # deferred: matplotlib is needed only for the PNG, and must get the Agg backend before pyplot loads
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    m = np.asarray(matrix, dtype=np.float64)
    c = len(class_names)
    if m.shape != (c, c):
        raise ValueError(f"confusion matrix shape {m.shape} does not match {c} classes")
    shown = m / np.maximum(m.sum(1, keepdims=True), 1) if normalise else m
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * c, 0.8 + 0.8 * c), dpi=100)
    try:
        im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalise else None)
        ax.set_xticks(range(c), labels=list(class_names), rotation=45, ha="right")
        ax.set_yticks(range(c), labels=list(class_names))
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        if title:
            ax.set_title(title)
        hi = shown.max() if shown.size else 0
        for i in range(c):
            for j in range(c):
                ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center", fontsize=8,
                        color="white" if shown[i, j] > 0.6 * hi else "black")
        fig.colorbar(im, ax=ax, fraction=0.046)
        fig.tight_layout()
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out)
    finally:
        plt.close(fig)
    return out


def latency_stats(seconds: Sequence[float], percentiles: Sequence[float] = (50, 90, 95, 99)) -> dict[str, float]:
    """Latency summary in seconds: ``n``, ``mean``, ``max`` and ``p50``, ``p90``... (numpy ``percentile``).

    Non-finite values are dropped (logged). An empty input gives ``{"n": 0}``.
    """
    x = np.asarray(list(seconds), dtype=np.float64)
    bad = ~np.isfinite(x)
    if bad.any():
        log.warning("dropping %d non-finite latency values", int(bad.sum()))
        x = x[~bad]
    if x.size == 0:
        return {"n": 0}
    out: dict[str, float] = {"n": int(x.size), "mean": float(x.mean()), "max": float(x.max())}
    for q in percentiles:
        out[f"p{q:g}"] = float(np.percentile(x, q))
    return out
