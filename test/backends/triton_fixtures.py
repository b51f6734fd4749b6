"""Shared pieces of the Triton tests (test_triton_repository.py, test_triton_backend.py); a plain module.

``fleet_model``: a small Sync-TVA with dialogue context (2 turns) and, given the tiny BERT of the ``bert`` fixture
(test/conftest.py), two fine-tuned text layers that attend over the context's word pieces: every input the
served graph can have (``context``, ``text_prefix``). ``random_batch``: collated windows with random node counts,
missing modalities and context.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from synctva_ros.config import ModelConfig
from synctva_ros.core.batch import Batch, ModalityFeatures, UtteranceFeatures, collate
from synctva_ros.model.synctva import SyncTVA

DIMS = {"text": 32, "audio": 7, "visual": 9}


def fleet_model(bert: Path | None = None, seed: int = 0) -> SyncTVA:
    """The test network (see the module docstring); ``seed`` changes every weight (another checkpoint)."""
    torch.manual_seed(seed)
    layers = 2 if bert is not None else 0
    cfg = ModelConfig(hidden=16, heads=2, graph_layers=1, dropout=0.0, modality_dropout=0.0, context_turns=2,
                      text_top_layers=layers)
    model = SyncTVA(cfg, DIMS)
    if bert is not None:
        from synctva_ros.checkpoint import build_text_top
        from synctva_ros.model.text_top import TextTopLayers

        base = build_text_top(str(bert), 1, 2)
        top = TextTopLayers({**base.spec, "context_keys": True})
        top.load_hf_state(base.hf_state())
        model.attach_text_top(top)
        with torch.no_grad():
            for p in model.text_top.parameters():
                p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def random_batch(rng: np.random.Generator, b: int = 1, with_prefix: bool = True,
                 nodes: dict[str, int] | None = None) -> Batch:
    """``b`` windows: random node counts (1-40 text, 1-32 audio, 0-3 frames), a missing modality now and then,
    dialogue context and context word pieces; ``nodes`` fixes the node counts (every modality present, no
    context word pieces: windows of equal shapes)."""
    items, ctx = [], []
    for _ in range(b):
        u = UtteranceFeatures()
        for m, hi in (("text", 40), ("audio", 32), ("visual", 3)):
            if nodes is None and rng.random() < 0.25 and m != "text":
                continue
            n = int(nodes[m]) if nodes else int(rng.integers(1, hi + 1))
            k = int(rng.integers(0, 20)) if (m == "text" and with_prefix and not nodes) else 0
            setattr(u, m, ModalityFeatures(rng.standard_normal((n, DIMS[m])).astype(np.float32),
                                           np.sort(rng.random(n)).astype(np.float32),
                                           rng.standard_normal((k, DIMS[m])).astype(np.float32) if k else None))
        items.append(u)
        turns = 2 if nodes else int(rng.integers(0, 3))
        ctx.append([rng.standard_normal(DIMS["text"]).astype(np.float32) for _ in range(turns)])
    return collate(items, DIMS, contexts=ctx, context_turns=2)


def softmax(x: np.ndarray) -> np.ndarray:
    """Probabilities over the last axis."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)
