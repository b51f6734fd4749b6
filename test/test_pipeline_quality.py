"""The quality profile end to end with its shipped checkpoint ``models/meld_mpnet`` (issue 8): real all-mpnet-base-v2
with dialogue context, up to the profile's ``features.text_layer`` in the extractor and the checkpoint's fine-tuned
layers above it (all 12 through LoRA for ``meld_mpnet``, the top one for ``iemocap_mpnet``), openSMILE on espeak-ng
speech.

Needs the mpnet weights (``make test`` installs them; ``make setup PROFILE=quality``) and espeak-ng; skips
without them. The windows are the shipped MELD dev sample's first utterances (``data/demo/meld_dev_sample.csv``),
predicted in order so that each carries its dialogue context, as the node and ``synctva evaluate`` do.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from synctva_ros.config import load_config, resolve_path
from synctva_ros.evaluation.offline import dataset_windows
from synctva_ros.pipeline import EmotionPipeline
from text_top_fixtures import real_mpnet

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "demo" / "meld_dev_sample.csv"
CKPT = ROOT / "models" / "meld_mpnet"

pytestmark = [
    pytest.mark.skipif(real_mpnet() is None, reason="all-mpnet-base-v2 is not installed (make setup PROFILE=quality)"),
    pytest.mark.skipif(not (CKPT / "manifest.json").is_file(), reason="models/meld_mpnet is not shipped"),
]


def _pipeline(backend: str, cache_dir: Path) -> EmotionPipeline:
    from synctva_ros.datasets.speech import espeak_binary

    try:
        espeak_binary()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    cfg = load_config("quality", {"runtime.backend": backend, "runtime.threads": 1,
                                  "runtime.cache_dir": str(cache_dir), "features.streaming": False,
                                  "features.face_expert": False})
    return EmotionPipeline(cfg)


def _predict(pipe: EmotionPipeline, n: int) -> tuple[np.ndarray, list[str]]:
    """``(probabilities (n, C), labels)`` of the sample's first ``n`` windows, in dialogue order."""
    probs, labels = [], []
    for window, _truth in dataset_windows(SAMPLE, limit=n):
        r = pipe.predict(window)
        probs.append(r.probabilities)
        labels.append(r.label)
    return np.asarray(probs, np.float64), labels


@pytest.mark.parametrize(("profile", "checkpoint"), [("quality", "meld_mpnet"), ("iemocap_quality", "iemocap_mpnet")])
def test_quality_profiles_name_their_shipped_checkpoint_and_its_extractor(profile: str, checkpoint: str) -> None:
    """Each mpnet profile and its checkpoint agree on the extractor (its layer, the context turns) and the classes,
    so it loads; the extractor's layer and the checkpoint's fine-tuned layers together cover the installed mpnet's
    layers (``num_hidden_layers`` in its ``config.json``)."""
    cfg = load_config(profile)
    ckpt = ROOT / "models" / checkpoint
    if not (ckpt / "manifest.json").is_file():
        pytest.skip(f"models/{checkpoint} is not shipped")
    assert resolve_path(cfg.runtime.checkpoint) == ckpt.resolve()
    man = json.loads((ckpt / "manifest.json").read_text())
    text = man["extractors"]["text"]
    assert text["name"] == cfg.features.text_encoder == "all-mpnet-base-v2"
    assert text["layer"] == cfg.features.text_layer
    depth = json.loads((real_mpnet() / "config.json").read_text())["num_hidden_layers"]
    layers = man["text_top"]["spec"]["layers"]
    assert layers == list(range(cfg.features.text_layer, depth))
    assert len(layers) == man["architecture"]["text_top_layers"]
    assert text["context_turns"] == cfg.features.text_context_turns
    assert man["class_names"] == cfg.model.class_names


def test_quality_pipeline_onnxruntime_matches_torch(tmp_path) -> None:
    """Backend onnxruntime (the extractor's layers and the checkpoint's fine-tuned layers exported and served, the
    network's graph) gives torch's class probabilities within 1e-4 on real windows with context; every distribution
    is finite and sums to 1."""
    ref = _pipeline("torch", tmp_path)
    try:
        p_torch, labels = _predict(ref, 4)
    finally:
        ref.close()
    served = _pipeline("onnxruntime", tmp_path)
    try:
        # mpnet's embeddings alone (text_layer 0) are a table look-up that stays in torch by design
        # (synctva_ros/backends/text_encoder.py); any encoder layers in the extractor, and the checkpoint's
        # fine-tuned layers, are served by onnxruntime
        embeddings_only = served.cfg.features.text_layer == 0
        assert served.text_runtime == ("torch" if embeddings_only else "onnxruntime")
        assert served.text_top_runner.name == "onnxruntime"
        p_ort, labels_ort = _predict(served, 4)
    finally:
        served.close()
    assert np.isfinite(p_torch).all() and np.allclose(p_torch.sum(axis=1), 1.0, atol=1e-5)
    assert set(labels) <= set(load_config("quality").model.class_names)
    np.testing.assert_allclose(p_ort, p_torch, atol=1e-4)
    assert labels_ort == labels
