"""Mean and spread over training seeds (issue 8: report the shipped recipes over at least 3 seeds).

:func:`~synctva_ros.training.runs.train_seeds` trains one run per seed (the validation split stays
the same, ``training.split_seed``; the seed changes initialisation, dropout and shuffling) into
``{out_dir}/seed_{s}`` and calls :func:`write_seeds_report`, which writes ``{out_dir}/seeds.json``::

    {"seeds": [0, 1, 2], "split_seed": 0, "select_metric": "weighted_f1",
     "summary": {"valid": {"weighted_f1": {"mean", "std", "min", "max", "values"}, "macro_f1": ..., "accuracy": ...},
                 "report": {...}},
     "runs": [{"seed", "out_dir", "best_epoch", "train_s", "valid": {...}, "report": {...}}, ...]}

``std`` is the sample standard deviation (``ddof = 1``; 0 for a single seed). Metrics are fractions.
:func:`run_brief` and :func:`write_report` also write the folds' report (:mod:`synctva_ros.training.runs`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from synctva_ros.training.saving import REPORTED

__all__ = ["SEEDS_FILE", "parse_seeds", "summarise_seeds", "run_brief", "write_report", "write_seeds_report"]

#: Multi-seed summary file in the run's ``out_dir``.
SEEDS_FILE = "seeds.json"


def parse_seeds(text: str | Sequence[int]) -> list[int]:
    """``"0,1,2"`` (or a sequence) -> ``[0, 1, 2]``.

    Raises:
        ValueError: empty, negative, repeated or non-integer seeds.
    """
    items = [s.strip() for s in text.split(",") if s.strip()] if isinstance(text, str) else list(text)
    try:
        seeds = [int(s) for s in items]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"seeds must be integers separated by commas, got {text!r}") from exc
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct non-negative integers, got {text!r}")
    return seeds


def summarise_seeds(runs: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{split: {metric: {"mean", "std", "min", "max", "values"}}}`` over ``runs``.

    Args:
        runs: one ``metrics.json`` dict per seed (``valid`` and ``report`` entries, ``report`` may be ``None``).

    Returns:
        Per split present in every run, per metric of :data:`~synctva_ros.training.saving.REPORTED`.
    """
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for split in ("valid", "report"):
        if not runs or any(not r.get(split) for r in runs):
            continue
        out[split] = {}
        for metric in REPORTED:
            v = np.array([float(r[split][metric]) for r in runs])
            out[split][metric] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
                                  "min": float(v.min()), "max": float(v.max()), "values": v.tolist()}
    return out


def write_seeds_report(out_dir: str | os.PathLike[str], seeds: Sequence[int], runs: Sequence[Mapping[str, Any]],
                       extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``{out_dir}/seeds.json`` (format in the module docstring); returns its path.

    Args:
        out_dir: the multi-seed run's directory.
        seeds: the seeds, in the order of ``runs``.
        runs: each seed's ``metrics.json`` dict plus ``out_dir``.
        extra: more top-level keys (``split_seed``, ``select_metric``, ...).
    """
    brief = [{"seed": int(s), **run_brief(r)} for s, r in zip(seeds, runs)]
    doc = {"seeds": [int(s) for s in seeds], **dict(extra or {}), "summary": summarise_seeds(runs), "runs": brief}
    return write_report(Path(out_dir) / SEEDS_FILE, doc)


def run_brief(run: Mapping[str, Any]) -> dict[str, Any]:
    """One run's entry in a multi-run report: ``out_dir``, ``best_epoch``, ``train_s`` (seconds) and the
    :data:`~synctva_ros.training.saving.REPORTED` metrics (fractions) of ``valid`` and ``report`` (``None`` when the
    run has no such split), from the run's ``metrics.json`` dict plus ``out_dir``. Raises ``KeyError`` for a split
    that lacks a reported metric."""
    keep = ("out_dir", "best_epoch", "train_s")
    return {**{k: run.get(k) for k in keep},
            **{split: ({m: run[split][m] for m in REPORTED} if run.get(split) else None)
               for split in ("valid", "report")}}


def write_report(path: str | os.PathLike[str], doc: Mapping[str, Any]) -> Path:
    """Write ``doc`` as indented JSON to ``path`` (its folder created); returns the path. Raises ``OSError``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2))
    return path
