"""The backend interface: ``infer`` and ``infer_subsets`` each default to the other."""

from __future__ import annotations

import numpy as np
import pytest

from synctva_ros.backends.base import Backend


class _Subsets(Backend):
    """Answers subsets only: logits ``(B, S, 2)`` = the subset's kept modalities, contributions = its index."""

    name = "subsets"

    def __init__(self) -> None:
        self.asked: list[np.ndarray] = []

    def infer_subsets(self, batch, keep):
        keep = np.asarray(keep, bool).reshape(-1, 3)
        self.asked.append(keep)
        b = int(batch)
        logits = np.broadcast_to(keep.sum(1, dtype=np.float32)[None, :, None], (b, len(keep), 2)).copy()
        contrib = np.broadcast_to(np.arange(len(keep), dtype=np.float32)[None, :, None], (b, len(keep), 3)).copy()
        return logits, contrib


def test_infer_is_the_all_modalities_subset() -> None:
    backend = _Subsets()
    logits, contrib = backend.infer(4)
    assert len(backend.asked) == 1 and backend.asked[0].tolist() == [[True, True, True]]
    assert logits.shape == (4, 2) and contrib.shape == (4, 3) and logits.dtype == np.float32
    assert (logits == 3).all() and (contrib == 0).all()


def test_a_backend_must_override_infer_or_infer_subsets() -> None:
    with pytest.raises(TypeError, match="must override"):
        type("Neither", (Backend,), {"name": "neither"})
