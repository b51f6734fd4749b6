"""The project's floor: logistic regression on frozen sentence embeddings (scikit-learn).

A linear classifier on the text encoder's pooled sentence embedding, with and without
``class_weight="balanced"``, fitted on the whole training split (it selects nothing, so it needs no
validation split) and scored on the report split (``training.report_split``: MELD dev, IEMOCAP
valid). Sync-TVA must beat this on the same split to be worth its cost.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np

from synctva_ros.config import SyncTVAConfig
from synctva_ros.core.batch import UtteranceFeatures
from synctva_ros.evaluation.metrics import classification_metrics
from synctva_ros.training.config import TrainingConfig
from synctva_ros.training.caches import load_split_cache

__all__ = ["sentence_matrix", "logreg_baseline", "run_baselines", "baseline_report"]

log = logging.getLogger(__name__)


def sentence_matrix(items: Sequence[UtteranceFeatures]) -> tuple[np.ndarray, np.ndarray]:
    """``(X (N, F) float32, y (N,) int64)`` of the utterances that have a sentence embedding.

    Raises:
        ValueError: no utterance has one.
    """
    keep = [u for u in items if u.sentence is not None and u.label >= 0]
    if not keep:
        raise ValueError("no utterance with a sentence embedding and a label")
    return (np.stack([np.asarray(u.sentence, np.float32) for u in keep]),
            np.array([u.label for u in keep], np.int64))


def logreg_baseline(train: Sequence[UtteranceFeatures], valid: Sequence[UtteranceFeatures],
                    class_names: Sequence[str], class_weight: str | None = None, C: float = 1.0,
                    max_iter: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Fit ``LogisticRegression`` (lbfgs, multinomial) on ``train`` sentence embeddings, score ``valid``.

    Returns:
        :func:`~synctva_ros.evaluation.metrics.classification_metrics` of the validation split plus
        ``model`` ("logreg"), ``class_weight``, ``C``, ``train_size``.
    """
    # deferred: scikit-learn takes about 2 s to import and only the baseline uses it
    from sklearn.linear_model import LogisticRegression

    xtr, ytr = sentence_matrix(train)
    xva, yva = sentence_matrix(valid)
    clf = LogisticRegression(C=C, class_weight=class_weight, max_iter=max_iter, random_state=seed)
    clf.fit(xtr, ytr)
    pred = clf.predict(xva)  # sklearn returns the original label values (global class indices)
    m = classification_metrics(yva, pred, class_names)
    m.update({"model": "logreg", "class_weight": class_weight or "none", "C": C, "train_size": int(len(ytr))})
    return m


def run_baselines(train: Sequence[UtteranceFeatures], valid: Sequence[UtteranceFeatures],
                  class_names: Sequence[str], seed: int = 0) -> dict[str, dict[str, Any]]:
    """``{"logreg": ..., "logreg_balanced": ...}`` (see :func:`logreg_baseline`)."""
    return {"logreg": logreg_baseline(train, valid, class_names, None, seed=seed),
            "logreg_balanced": logreg_baseline(train, valid, class_names, "balanced", seed=seed)}


def baseline_report(tcfg: TrainingConfig, cfg: SyncTVAConfig) -> dict[str, dict[str, Any]]:
    """:func:`run_baselines` on the caches a training config names (train split -> report split).

    Args:
        tcfg: :class:`~synctva_ros.training.config.TrainingConfig`; cfg: :class:`~synctva_ros.config.SyncTVAConfig`.

    Returns:
        ``{"logreg": ..., "logreg_balanced": ...}`` scored on ``tcfg.report_split``.

    Raises:
        FileNotFoundError: a cache is missing (see :func:`synctva_ros.training.caches.load_split_cache`).
        ValueError: ``training.report_split`` is empty.
    """
    if not tcfg.report_split:
        raise ValueError("the baseline is scored on training.report_split, which is empty")
    tr = load_split_cache(tcfg, cfg, tcfg.train_split, tcfg.limit)
    va = load_split_cache(tcfg, cfg, tcfg.report_split, tcfg.report_limit)
    return run_baselines(tr.items, va.items, list(cfg.model.class_names), seed=tcfg.seed)
