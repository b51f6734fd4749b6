"""Shared inputs for the text-top-layer tests (test/model/test_text_top.py, test/checkpoint/test_text_top_*.py).

A plain module (not a conftest): tests import it by name; ``test/`` is on ``sys.path`` because the
session conftest lives there. The tiny BERT itself is the ``bert`` fixture of ``test/conftest.py``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from synctva_ros.checkpoint import build_text_top
from synctva_ros.config import ModelConfig
from synctva_ros.model.synctva import SyncTVA

#: A small Sync-TVA with two fine-tunable text top layers over the tiny BERT's 32-wide states.
CFG = ModelConfig(hidden=16, heads=2, graph_layers=1, dropout=0.0, modality_dropout=0.0, text_top_layers=2)
DIMS = {"text": 32, "audio": 7, "visual": 9}


def model_inputs(b: int = 3, nt: int = 6, na: int = 5, nv: int = 3, seed: int = 0) -> list[torch.Tensor]:
    """Positional inputs of :meth:`SyncTVA.forward`: per modality ``(B, N, F)`` features, ``(B, N)`` mask and times.

    Row 1 has its second half of every modality masked out; with ``b > 2`` row 2 has no audio.
    """
    g = torch.Generator().manual_seed(seed)
    out = []
    for n, d in ((nt, DIMS["text"]), (na, DIMS["audio"]), (nv, DIMS["visual"])):
        mask = torch.ones(b, n, dtype=torch.bool)
        mask[1, n // 2:] = False
        out += [torch.randn(b, n, d, generator=g), mask, torch.sort(torch.rand(b, n, generator=g), 1).values]
    if b > 2:
        out[7][2] = False
    return out


def finetuned_model(bert: Path) -> SyncTVA:
    """A Sync-TVA whose top layers start from ``bert``'s and are then moved away from them (a stand-in for fine-tuning)."""
    torch.manual_seed(0)
    model = SyncTVA(CFG, DIMS)
    model.attach_text_top(build_text_top(str(bert), 1, 2))
    with torch.no_grad():
        for p in model.text_top.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()
