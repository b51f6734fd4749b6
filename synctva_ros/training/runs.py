"""Several runs of one recipe: training seeds, or validation folds over the training dialogues.

Issue 8 asks for the shipped recipes' mean and spread over at least 3 seeds (:func:`train_seeds`), and for
choices made on held-out **training** dialogues only. With a dozen held-out dialogues the choice between two recipes
can turn on which dialogues were drawn (on IEMOCAP, validation and the report split disagreed by up to 8 points
from seed to seed); :func:`train_folds` therefore trains one run per fold, each fold a pattern of dialogue ids held
out as the validation split (``training.valid_dialogues``, :func:`~synctva_ros.training.split.split_by_dialogue`):
for IEMOCAP's sessions 1-4, ``Ses01*,Ses02*,Ses03*,Ses04*`` is leave-one-session-out cross-validation, each fold's
speakers unseen in its training (as session 5's are in the official test).

``{out_dir}/folds.json``::

    {"folds": ["Ses01*", ...], "seed": 0, "select_metric": "weighted_f1",
     "summary": {"valid": {"weighted_f1": {"mean", "std", "min", "max", "values"}, ...}, "report": {...}},
     "pooled": {"valid_utterances": 5163, "weighted_f1": ..., "macro_f1": ..., "accuracy": ...},
     "runs": [{"fold", "valid_dialogue_count", "valid_utterances", "out_dir", "best_epoch", "train_s", "valid",
               "report"}]}

``summary`` is :func:`~synctva_ros.training.seeds.summarise_seeds` over the folds (sample sd); ``pooled`` weighs each
fold's validation figures by its utterances. Metrics are fractions.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from synctva_ros.config import SyncTVAConfig
from synctva_ros.training.config import TrainingConfig, load_training_config
from synctva_ros.training.saving import METRICS_FILE, REPORTED
from synctva_ros.training.seeds import parse_seeds, run_brief, summarise_seeds, write_report, write_seeds_report
from synctva_ros.training.train import train

__all__ = ["FOLDS_FILE", "parse_folds", "pooled_validation", "train_folds", "train_seeds", "train_from_file"]

#: Cross-validation summary file in the run's ``out_dir``.
FOLDS_FILE = "folds.json"


def parse_folds(text: str | Sequence[str]) -> list[str]:
    """``"Ses01*,Ses02*"`` (or a sequence) -> ``["Ses01*", "Ses02*"]``: one dialogue-id pattern per fold.

    Raises:
        ValueError: no fold, or a fold given twice.
    """
    folds = [f.strip() for f in (text.split(",") if isinstance(text, str) else text) if f and f.strip()]
    if not folds or len(set(folds)) != len(folds):
        raise ValueError(f"folds must be distinct dialogue-id patterns separated by commas, got {text!r}")
    return folds


def _runs(tcfg: TrainingConfig, cfg: SyncTVAConfig, variants: Sequence[tuple[str, str, dict[str, Any]]],
          resume: bool) -> list[dict[str, Any]]:
    """Train ``tcfg`` once per ``(subdirectory, name suffix, field changes)``; each run's ``metrics.json`` plus
    ``out_dir``."""
    root, runs = Path(tcfg.out_dir), []
    for sub, suffix, changes in variants:
        t = dataclasses.replace(tcfg, out_dir=str(root / sub), name=f"{tcfg.name}_{suffix}", **changes)
        out = train(t, copy.deepcopy(cfg), resume=resume)
        runs.append({**json.loads((out / METRICS_FILE).read_text()), "out_dir": str(out)})
    return runs


def train_seeds(tcfg: TrainingConfig, cfg: SyncTVAConfig, seeds: Sequence[int], resume: bool = False) -> Path:
    """Train one run per seed into ``{out_dir}/seed_{s}`` and write ``{out_dir}/seeds.json``.

    The validation split (``split_seed`` or ``valid_dialogues``) is the same for every seed; ``seed`` changes the
    initialisation, dropout and shuffling. Format of ``seeds.json``: :mod:`synctva_ros.training.seeds`.

    Args:
        tcfg, cfg: the run (``out_dir`` becomes the parent of the per-seed checkpoints).
        seeds: training seeds.
        resume: resume each seed's run from its own ``resume.pt``.

    Returns:
        Path of ``seeds.json``.

    Raises:
        see :func:`~synctva_ros.training.train.train`.
    """
    runs = _runs(tcfg, cfg, [(f"seed_{s}", f"seed{s}", {"seed": int(s)}) for s in seeds], resume)
    return write_seeds_report(tcfg.out_dir, seeds, runs, {"name": tcfg.name, "split_seed": tcfg.split_seed,
                                                          "valid_dialogues": tcfg.valid_dialogues or None,
                                                          "select_metric": tcfg.select_metric,
                                                          "report_split": tcfg.report_split or None})


def pooled_validation(runs: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Each metric of :data:`~synctva_ros.training.saving.REPORTED` on the validation splits, weighted by their
    utterances (``valid_split.valid_utterances`` of each run's ``metrics.json``), plus ``valid_utterances``.

    Returns:
        ``{"valid_utterances": total count, "weighted_f1", "macro_f1", "accuracy"}``: fractions, the mean of the
        folds' figures weighted by utterances (not a metric recomputed over the pooled predictions).

    Raises:
        ValueError: no run, or a run without validation figures.
    """
    if not runs or any(not r.get("valid") for r in runs):
        raise ValueError("pooled_validation needs at least one run with validation figures")
    n = [int(r["valid_split"]["valid_utterances"]) for r in runs]
    out: dict[str, float] = {"valid_utterances": float(sum(n))}
    for metric in REPORTED:
        out[metric] = sum(k * float(r["valid"][metric]) for k, r in zip(n, runs)) / sum(n)
    return out


def train_folds(tcfg: TrainingConfig, cfg: SyncTVAConfig, folds: Sequence[str], resume: bool = False) -> Path:
    """Cross-validation over the training dialogues: one run per fold into ``{out_dir}/fold_{i}``, each holding out
    the dialogues its pattern matches; writes ``{out_dir}/folds.json`` (format in the module docstring).

    Args:
        tcfg, cfg: the run (``out_dir`` becomes the parent of the per-fold checkpoints; ``seed`` is kept).
        folds: one ``training.valid_dialogues`` pattern per fold (:func:`parse_folds`).
        resume: resume each fold's run from its own ``resume.pt``.

    Returns:
        Path of ``folds.json``.

    Raises:
        ValueError: a pattern that holds out no dialogue or every one; see :func:`~synctva_ros.training.train.train`.
    """
    runs = _runs(tcfg, cfg, [(f"fold_{i}", f"fold{i}", {"valid_dialogues": f}) for i, f in enumerate(folds)], resume)
    brief = [{"fold": f, "valid_dialogue_count": r["valid_split"]["valid_dialogue_count"],
              "valid_utterances": r["valid_split"]["valid_utterances"], **run_brief(r)} for f, r in zip(folds, runs)]
    doc = {"folds": list(folds), "name": tcfg.name, "seed": tcfg.seed, "select_metric": tcfg.select_metric,
           "report_split": tcfg.report_split or None, "summary": summarise_seeds(runs),
           "pooled": pooled_validation(runs), "runs": brief}
    return write_report(Path(tcfg.out_dir) / FOLDS_FILE, doc)


def train_from_file(config: str | os.PathLike[str] | None, *, overrides: Sequence[str] = (),
                    resume: bool = False, seeds: str | Sequence[int] | None = None,
                    folds: str | Sequence[str] | None = None) -> Path:
    """Train the run a training YAML describes (``synctva train CONFIG [--set k=v ...] [--resume] [--seeds 0,1,2]
    [--folds 'Ses01*,Ses02*']``).

    Args:
        config: training YAML (:func:`~synctva_ros.training.config.load_training_config`); ``None``
            = defaults only.
        overrides: ``key=value`` overrides (``training.epochs=5``, ``model.hidden=64``, ...).
        resume: continue from the run's resume file (``resume.pt`` in ``training.out_dir``).
        seeds: ``"0,1,2"`` or a list: train every seed (:func:`train_seeds`); ``None`` = one run.
        folds: ``"Ses01*,Ses02*"`` or a list: one run per validation fold (:func:`train_folds`).

    Returns:
        The checkpoint directory (:func:`~synctva_ros.training.train.train`), or the ``seeds.json`` /
        ``folds.json`` path with ``seeds`` / ``folds``.

    Raises:
        synctva_ros.config.ConfigError: unknown keys / bad values. FileNotFoundError: a missing
        file, profile or cache. ValueError: bad seeds or folds, both given, or see
        :func:`~synctva_ros.training.train.train`.
    """
    tcfg, cfg = load_training_config(config, list(overrides) or None)
    if seeds is not None and folds is not None:
        raise ValueError("give seeds or folds, not both (a fold run keeps training.seed)")
    if folds is not None:
        return train_folds(tcfg, cfg, parse_folds(folds), resume=resume)
    if seeds is not None:
        return train_seeds(tcfg, cfg, parse_seeds(seeds), resume=resume)
    return train(tcfg, cfg, resume=resume)
