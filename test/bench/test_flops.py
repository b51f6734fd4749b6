"""FLOP counts behind ``synctva bench``'s lower bounds: the face stage counted in torch."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from skimage.data import astronaut

from synctva_ros.bench.flops import face_stage_flops
from synctva_ros.config import load_config
from synctva_ros.core.window import TimedFrame, UtteranceWindow
from synctva_ros.features.faces.evidence import build_face_evidence


def _window(n_frames: int, fps: float = 15.0) -> UtteranceWindow:
    img = np.ascontiguousarray(astronaut())  # has a face
    frames = [TimedFrame(10.0 + j / fps, np.roll(img, j % 5, axis=1)) for j in range(n_frames)]
    return UtteranceWindow(start=10.0, end=13.0, transcript="hello", frames=frames)


def test_face_stage_flops_counts_the_face_networks_in_torch() -> None:
    """The configured stage runs its networks in onnxruntime, where a FLOP counter sees nothing: the count comes from
    a torch copy with the same settings, and grows with the frames the stage samples."""
    cfg = load_config("demo")
    f = cfg.features
    stage = build_face_evidence(f.face_expert, f.face_fps, f.face_policy, detect_every=f.face_detect_every,
                                min_face_frac=f.face_min_size, runtime=f.face_runtime)
    if stage is None:
        pytest.skip("face expert weights not installed (make setup)")
    pipe = SimpleNamespace(faces=stage, cfg=cfg)
    short, full = face_stage_flops(pipe, _window(3)), face_stage_flops(pipe, _window(45))
    assert short["frames"] == 3 and full["frames"] == 45
    assert 0 < short["flops"] < full["flops"]
    assert face_stage_flops(SimpleNamespace(faces=None, cfg=cfg), _window(3)) is None
