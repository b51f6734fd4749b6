"""EmotionPipeline.fuse asks the network for all modalities, text alone and audio alone in one backend call; the
answers equal the three separate calls the pipeline made before (issue 12), on the shipped checkpoint."""

from __future__ import annotations

import numpy as np
import pytest

from synctva_ros.backends import create_backend
from synctva_ros.core.batch import UtteranceFeatures
from synctva_ros.model.window_fusion import fuse_window
from meld_minilm_windows import demo_pipeline, softmax, window_features


@pytest.fixture(scope="module")
def pipe_and_windows(tmp_path_factory):
    pipe = demo_pipeline(tmp_path_factory.mktemp("subsets_cache"))
    yield pipe, window_features(pipe)
    pipe.close()


def _alone(feats: UtteranceFeatures, modality: str) -> UtteranceFeatures:
    """The window with only ``modality`` (how the pipeline asked for single-modality answers before)."""
    out = UtteranceFeatures(dialogue_id=feats.dialogue_id)
    setattr(out, modality, getattr(feats, modality))
    return out


def _three_calls(pipe, backend, feats: UtteranceFeatures) -> np.ndarray:
    rows = [backend.infer(pipe._collate(feats))[0][0]]
    rows += [backend.infer(pipe._collate(_alone(feats, m)))[0][0] for m in ("text", "audio")]
    return np.stack(rows)


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_one_call_equals_three_calls(pipe_and_windows, backend: str) -> None:
    pipe, windows = pipe_and_windows
    reference = pipe.backend  # torch fp32
    served = reference if backend == "torch" else create_backend(pipe.cfg.runtime.__class__(
        backend="onnxruntime", threads=1, cache_dir=pipe.cfg.runtime.cache_dir), pipe.model, pipe.manifest)
    tol = 1e-6 if backend == "torch" else served.tolerance
    saved, pipe.backend = pipe.backend, served
    try:
        for feats, _ in windows:
            keep, alone = pipe.subsets(feats)
            assert alone == ["text", "audio"] and keep.tolist() == [[True] * 3, [True, False, False],
                                                                     [False, True, False]]
            old = _three_calls(pipe, reference, feats)
            fused = pipe.fuse(feats, None)
            want = fuse_window(pipe.fusion, old[0], reference.infer(pipe._collate(feats))[1][0],
                               {"text": old[1], "audio": old[2]}, None)
            assert np.abs(fused.probabilities - want.probabilities).max() < tol
            for m in ("text", "audio"):
                assert np.abs(fused.modality_probabilities[m] - want.modality_probabilities[m]).max() < tol
            assert np.abs(fused.contributions - want.contributions).max() < tol
            new, _ = served.infer_subsets(pipe._collate(feats), keep)
            assert np.abs(softmax(new[0]) - softmax(old)).max() < tol
    finally:
        pipe.backend = saved


def test_a_window_with_one_modality_makes_one_call(pipe_and_windows) -> None:
    pipe, windows = pipe_and_windows
    feats = _alone(windows[0][0], "text")
    keep, alone = pipe.subsets(feats)
    assert keep.tolist() == [[True] * 3] and alone == ["text"]
    fused = pipe.fuse(feats, None)
    np.testing.assert_allclose(fused.modality_probabilities["text"], fused.probabilities, atol=1e-12)
