"""The facial-expression expert in the pipeline: the shipped ``models/meld_minilm`` fused with the face evidence
of real photographs (../shared/data/faces) as a product of calibrated experts."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from synctva_ros.checkpoint.fusion import VISUAL_TEMPERATURE
from synctva_ros.config import load_config, resolve_path
from synctva_ros.core.window import TimedFrame, UtteranceWindow
from synctva_ros.datasets.speech import render_speech
from synctva_ros.evaluation.faces import read_rgb
from synctva_ros.pipeline import EmotionPipeline

FACES = Path(os.environ.get("SYNCTVA_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data")) / "faces"
HAPPY = "images/Ai_Sugiyama_0001.jpg"
TEXT = "I don't know what to say."


@pytest.fixture(scope="module", params=[True, False], ids=["streaming", "batch"])
def pipe(request) -> EmotionPipeline:
    if not (FACES / HAPPY).is_file():
        pytest.skip(f"no labelled faces at {FACES}")
    cfg = load_config("demo", {"runtime.checkpoint": str(resolve_path("models/meld_minilm")),
                               "features.streaming": request.param})
    p = EmotionPipeline(cfg)
    if p.faces is None:
        pytest.skip("face weights not installed (make setup)")
    yield p
    p.close()


def window(dialogue: str, frames: bool, audio: bool = False) -> UtteranceWindow:
    img = read_rgb(FACES / HAPPY)
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[65:65 + img.shape[0], 145:145 + img.shape[1]] = img
    tf = [TimedFrame(float(t), frame) for t in np.arange(0.0, 2.0, 1 / 30)] if frames else []
    samples = render_speech(TEXT, speaker="Monica") if audio else np.zeros(0, np.float32)
    return UtteranceWindow(start=0.0, end=2.0, transcript=TEXT, frames=tf, audio=samples, dialogue_id=dialogue,
                           utterance_id=dialogue)


def test_absent_face_leaves_the_model_posterior(pipe) -> None:
    win = window("no-face", frames=False)
    feats, _ = pipe.extract(win)
    model_probs, _ = pipe.predict_features(feats)
    t = pipe.fusion.temperatures["model"]  # the network's posterior, calibrated (manifest's expert_fusion)
    model_probs = np.exp(np.log(model_probs) / t) / np.exp(np.log(model_probs) / t).sum()
    res = pipe.predict(win)
    np.testing.assert_allclose(res.probabilities, model_probs, atol=1e-9)
    assert res.active["visual"] is False and "visual" not in res.modality_probabilities
    assert (res.faces_seen, res.face_track_id, res.contributions["visual"]) == (0, -1, 0.0)
    np.testing.assert_allclose(res.modality_probabilities["text"], model_probs, atol=1e-9)  # text alone


def test_a_seen_face_changes_the_fused_distribution_by_the_product_rule(pipe) -> None:
    base = pipe.predict(window("model-only", frames=False))
    res = pipe.predict(window("with-face", frames=True))
    assert res.present["visual"] and res.active["visual"] and res.faces_seen == 1 and res.face_track_id >= 1
    pv = np.asarray(res.modality_probabilities["visual"])
    assert res.class_names[int(pv.argmax())] == "joy" and pv.sum() == pytest.approx(1.0)
    # the shipped block: model T from the training validation split, visual T 3.32, uniform prior
    assert pipe.fusion_from_manifest and pipe.fusion.temperatures == {
        "model": pytest.approx(pipe.manifest["training"]["calibration"]["temperature"]), "visual": VISUAL_TEMPERATURE}
    expected = np.asarray(base.probabilities) * pv
    np.testing.assert_allclose(res.probabilities, expected / expected.sum(), atol=1e-9)
    assert not np.allclose(res.probabilities, base.probabilities, atol=1e-3)
    assert 0 < res.contributions["visual"] < 1
    assert sum(res.contributions.values()) == pytest.approx(1.0)


def test_text_and_audio_each_alone_and_all_three_used(pipe) -> None:
    res = pipe.predict(window("all-three", frames=True, audio=True))
    assert set(res.modality_probabilities) == {"text", "audio", "visual"}
    for m, p in res.modality_probabilities.items():
        assert len(p) == len(res.class_names) and sum(p) == pytest.approx(1.0) and min(p) >= 0, m
    assert res.active == {"text": True, "audio": True, "visual": True}
    assert not np.allclose(res.modality_probabilities["text"], res.modality_probabilities["audio"])


def test_the_face_cost_settings_reach_the_face_stage() -> None:
    """features.face_detect_every / face_min_size / face_runtime are the stage's, not its defaults."""
    if not (FACES / HAPPY).is_file():
        pytest.skip(f"no labelled faces at {FACES}")
    cfg = load_config("demo", {"runtime.checkpoint": str(resolve_path("models/meld_minilm")),
                               "features.face_detect_every": 1, "features.face_min_size": 0.2,
                               "features.face_runtime": "torch", "features.streaming": False})
    p = EmotionPipeline(cfg)
    try:
        if p.faces is None:
            pytest.skip("face weights not installed (make setup)")
        expert = p.faces.expert
        assert (expert.schedule.every, expert.detector.min_face_frac, expert.runtime) == (1, 0.2, "torch")
    finally:
        p.close()
