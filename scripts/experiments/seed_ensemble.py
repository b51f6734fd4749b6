"""Issue 8 experiment: the mean of several seeds' probabilities, scored on the validation split and the report split.

Loads each run directory (a ``synctva train`` checkpoint of the same recipe: same caches, same held-out training
dialogues), restores its fine-tuned text layers from the base encoder, runs it on the recipe's validation split
(cut from the training dialogues) and report split (MELD dev / IEMOCAP valid) from the feature caches, and scores
every member and the mean of the members' probabilities (sklearn weighted/macro F1, accuracy). Selection rules stay
those of the recipe: nothing here is tuned on the report split.

    python scripts/experiments/seed_ensemble.py config/train/meld_mpnet_context.yaml \
        /work/runs/meld_mpnet_s0 /work/runs/meld_mpnet_s1 /work/runs/meld_mpnet_s2 \
        --set training.cache_dir=cache/train \
        --out out/ensemble_meld.json
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score

from synctva_ros.checkpoint import load_checkpoint, restore_text_top
from synctva_ros.training.config import load_training_config
from synctva_ros.training.prepare import prepare_data
from synctva_ros.training.train import evaluate_model


def _scores(y: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    pred = probs.argmax(-1)
    return {"weighted_f1": 100 * f1_score(y, pred, average="weighted"),
            "macro_f1": 100 * f1_score(y, pred, average="macro"), "accuracy": 100 * accuracy_score(y, pred)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("recipe")
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--out", default="")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="recipe overrides, as synctva train")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tcfg, cfg = load_training_config(args.recipe, args.set or None)
    data = prepare_data(tcfg, cfg)
    probs: dict[str, dict[str, np.ndarray]] = {"valid": {}, "report": {}}
    labels: dict[str, np.ndarray] = {}
    for run in args.runs:
        model, manifest = load_checkpoint(run)
        if getattr(model, "text_top_layers", 0):
            restore_text_top(model, manifest, cfg.features.text_encoder)  # the base encoder by name
        model.eval()
        with torch.inference_mode():
            for split, ds in (("valid", data.valid_ds), ("report", data.report_ds)):
                y, _, p = evaluate_model(model, ds, 64)
                labels[split], probs[split][run] = y, p
    out: dict[str, object] = {"recipe": args.recipe, "runs": args.runs, "members": {}, "ensembles": {}}
    for split in ("valid", "report"):
        for run, p in probs[split].items():
            out["members"].setdefault(run, {})[split] = _scores(labels[split], p)  # type: ignore[union-attr]
        for k in range(2, len(args.runs) + 1):
            for combo in itertools.combinations(args.runs, k):
                mean = np.mean([probs[split][r] for r in combo], axis=0)
                out["ensembles"].setdefault(" + ".join(Path(r).name for r in combo), {})[split] = \
                    _scores(labels[split], mean)  # type: ignore[union-attr]
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
