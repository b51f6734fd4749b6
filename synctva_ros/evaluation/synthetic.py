"""Seeded synthetic fusion benchmark: does Sync-TVA combine modalities that each carry part of the label?

Data (our construction, for testing fusion, not a claim about real emotions):

* 7 classes with MELD's training proportions (4710/1743/1205/1109/683/271/268 for
  neutral, joy, surprise, anger, sadness, disgust, fear).
* Class ``c`` has the 3-bit code ``(c >> 2 & 1, c >> 1 & 1, c & 1)``. Text carries bit 2
  (the class group), audio bit 1 (the sub-class), visual bit 0 (a third factor). A
  single modality can therefore tell at best which of 2-4 classes it is; all three
  identify the class.
* Each modality is a node sequence (text 6-20 tokens, audio 4-12 segments, visual
  2-6 frames) with sorted times in [0, 1]. Node features are Gaussian noise; about
  a third of the nodes ("cue nodes") add the prototype of the modality's bit value,
  scaled by ``signal``. With probability ``p_missing`` a row loses its visual modality.

Models (all trained with weighted cross-entropy, AdamW, same epochs): (a) Sync-TVA,
(b) Sync-TVA with a single active branch for each modality, (c) concatenation of the
masked-mean-pooled modalities followed by an MLP. Score: weighted F1 (scikit-learn) and
accuracy on a held-out split.

Entry point: :func:`run_synthetic_benchmark` (or ``python -m synctva_ros.evaluation.synthetic``,
which prints its result for ``seed=0`` as JSON) produces the "synthetic benchmark" table of
``docs/results.md``; ``test/evaluation/test_synthetic.py`` runs a small version. No other code
imports this module: it is evidence that the fusion combines modalities, not part of the node,
the latency benchmark (:mod:`synctva_ros.bench`) or training.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from typing import Any

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score
from torch import Tensor, nn

from synctva_ros.config import ModelConfig
from synctva_ros.core.batch import Batch, ModalityFeatures, UtteranceFeatures, collate
from synctva_ros.core.modalities import MODALITIES
from synctva_ros.model.attention import masked_mean
from synctva_ros.model.losses import class_weights
from synctva_ros.model.synctva import SyncTVA

__all__ = ["MELD_TRAIN_COUNTS", "make_synthetic", "ConcatBaseline", "run_synthetic_benchmark"]

logger = logging.getLogger(__name__)

#: MELD training-set class counts in ModelConfig's default class order.
MELD_TRAIN_COUNTS = (4710, 1743, 1205, 1109, 683, 271, 268)
_DIMS = {"text": 24, "audio": 12, "visual": 16}
_NODES = {"text": (6, 20), "audio": (4, 12), "visual": (2, 6)}
_BIT = {"text": 2, "audio": 1, "visual": 0}


def make_synthetic(n: int, rng: np.random.Generator, signal: float = 1.0, p_missing: float = 0.1,
                   prototypes: dict[str, np.ndarray] | None = None) -> tuple[list[UtteranceFeatures], dict]:
    """``n`` synthetic utterances (see module docstring) and the prototypes used.

    Args:
        n: number of utterances.
        rng: numpy random generator (the only source of randomness).
        signal: scale of the cue prototypes relative to unit noise.
        p_missing: probability that a row has no visual modality.
        prototypes: ``{modality: (2, F_m)}``; drawn from ``rng`` when ``None`` (pass the train
            split's to the test split).

    Returns:
        ``(items, prototypes)``: ``n`` :class:`UtteranceFeatures` (node times in [0, 1], label in
        ``[0, 7)``) and the prototypes used.
    """
    if prototypes is None:
        prototypes = {m: rng.standard_normal((2, d)).astype(np.float32) for m, d in _DIMS.items()}
    p = np.asarray(MELD_TRAIN_COUNTS, dtype=np.float64)
    labels = rng.choice(len(p), size=n, p=p / p.sum())
    items = []
    for y in labels:
        mods: dict[str, ModalityFeatures | None] = {}
        for m in MODALITIES:
            if m == "visual" and rng.random() < p_missing:
                mods[m] = None
                continue
            lo, hi = _NODES[m]
            k = int(rng.integers(lo, hi + 1))
            x = rng.standard_normal((k, _DIMS[m])).astype(np.float32)
            cue = rng.random(k) < 0.35
            cue[rng.integers(k)] = True
            x[cue] += signal * prototypes[m][(int(y) >> _BIT[m]) & 1]
            t = np.sort(rng.random(k)).astype(np.float32)
            mods[m] = ModalityFeatures(x, t)
        items.append(UtteranceFeatures(text=mods["text"], audio=mods["audio"], visual=mods["visual"], label=int(y)))
    return items, prototypes


class ConcatBaseline(nn.Module):
    """Masked-mean pooling per modality, concatenation, MLP (the non-graph baseline).

    Shapes: same inputs as :class:`SyncTVA` (``forward_batch``) -> logits ``(B, C)``.
    """

    def __init__(self, dims: dict[str, int], hidden: int, num_classes: int, dropout: float = 0.1) -> None:
        super().__init__()
        width = sum(dims[m] for m in MODALITIES) + len(MODALITIES)
        self.net = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, num_classes))

    def forward_batch(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """Logits and modality presence of a padded batch.

        Shapes:
            batch: :class:`~synctva_ros.core.batch.Batch` with ``(B, N_m, F_m)`` nodes and
            ``(B, N_m)`` masks per modality -> logits ``(B, C)``, presence ``(B, 3)`` (0/1 float).
        """
        parts, flags = [], []
        for m in MODALITIES:
            x, mask = getattr(batch, m), getattr(batch, f"{m}_mask")
            parts.append(masked_mean(x, mask))
            flags.append(mask.any(dim=1, keepdim=True).float())
        logits = self.net(torch.cat(parts + flags, dim=-1))
        return logits, torch.cat(flags, dim=-1)


def _train_eval(model: nn.Module, train: list[UtteranceFeatures], test: list[UtteranceFeatures], epochs: int,
                batch_size: int, lr: float, weight: Tensor, seed: int) -> dict[str, float]:
    torch.manual_seed(seed)
    gen = np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss(weight=weight)
    for _ in range(epochs):
        model.train()
        order = gen.permutation(len(train))
        for s in range(0, len(order), batch_size):
            batch = collate([train[i] for i in order[s : s + batch_size]], _DIMS)
            logits, _ = model.forward_batch(batch)
            loss = loss_fn(logits, batch.labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    preds = []
    with torch.no_grad():
        for s in range(0, len(test), 256):
            batch = collate(test[s : s + 256], _DIMS)
            preds.append(model.forward_batch(batch)[0].argmax(dim=-1).numpy())
    y_true = np.array([u.label for u in test])
    y_pred = np.concatenate(preds)
    return {"weighted_f1": float(f1_score(y_true, y_pred, average="weighted", zero_division=0)),
            "accuracy": float(accuracy_score(y_true, y_pred))}


def run_synthetic_benchmark(seed: int = 0, n_train: int = 1200, n_test: int = 600, epochs: int = 12,
                            batch_size: int = 32, lr: float = 3e-3, hidden: int = 32, signal: float = 1.0,
                            p_missing: float = 0.1, models: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Train and score the benchmark's models on one seeded synthetic data set.

    Args:
        seed: seeds data, initialisation and batching.
        n_train, n_test: utterances per split.
        epochs, batch_size, lr: training schedule (AdamW).
        hidden: width of Sync-TVA (2 heads, 2 graph layers) and of the concat MLP.
        signal, p_missing: see :func:`make_synthetic`.
        models: subset of ``("synctva", "text", "audio", "visual", "concat")`` (default all).

    Returns:
        ``{"seed", "n_train", "n_test", "epochs", "seconds", "weighted_f1": {model: f1},
        "accuracy": {model: acc}}``.
    """
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    train, protos = make_synthetic(n_train, rng, signal, p_missing)
    test, _ = make_synthetic(n_test, rng, signal, p_missing, protos)
    counts = np.bincount([u.label for u in train], minlength=len(MELD_TRAIN_COUNTS))
    weight = class_weights(counts, 0.5)
    cfg = ModelConfig(hidden=hidden, heads=2, graph_layers=2, dropout=0.1, modality_dropout=0.1,
                      temporal_neighbours=2, align_tolerance=0.1)
    names = models or ("synctva", "text", "audio", "visual", "concat")
    out: dict[str, Any] = {"seed": seed, "n_train": n_train, "n_test": n_test, "epochs": epochs,
                           "weighted_f1": {}, "accuracy": {}}
    for name in names:
        torch.manual_seed(seed)
        if name == "synctva":
            model: nn.Module = SyncTVA(cfg, _DIMS)
        elif name in MODALITIES:
            model = SyncTVA(dataclasses.replace(cfg, modality_dropout=0.0), _DIMS,
                            {m: m == name for m in MODALITIES})
        elif name == "concat":
            model = ConcatBaseline(_DIMS, hidden, len(MELD_TRAIN_COUNTS))
        else:
            raise ValueError(f"unknown benchmark model '{name}'")
        res = _train_eval(model, train, test, epochs, batch_size, lr, weight, seed)
        out["weighted_f1"][name] = res["weighted_f1"]
        out["accuracy"][name] = res["accuracy"]
        logger.info("synthetic benchmark seed %d %s: weighted F1 %.3f", seed, name, res["weighted_f1"])
    out["seconds"] = time.perf_counter() - t0
    return out


if __name__ == "__main__":  # pragma: no cover - manual run
    logging.basicConfig(level=logging.INFO)
    print(json.dumps(run_synthetic_benchmark(), indent=2))
