"""Small random Sync-TVA models for backend tests."""

from __future__ import annotations

import pytest
import torch

from synctva_ros.config import ModelConfig
from synctva_ros.model.synctva import SyncTVA

DIMS = {"text": 24, "audio": 25, "visual": 16}


def make_model(context_turns: int = 0, seed: int = 0, active: dict | None = None) -> SyncTVA:
    torch.manual_seed(seed)
    cfg = ModelConfig(hidden=32, heads=4, graph_layers=2, context_turns=context_turns)
    return SyncTVA(cfg, DIMS, active).eval()


@pytest.fixture(name="make_model")
def make_model_fixture():
    """The :func:`make_model` factory."""
    return make_model
