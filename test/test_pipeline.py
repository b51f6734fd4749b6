"""EmotionPipeline: window -> EmotionResult with a real (tiny, trained) checkpoint and real extractors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from synctva_ros.datasets.speech import render_speech
from synctva_ros.checkpoint import CheckpointError
from synctva_ros.config import load_config
from synctva_ros.pipeline import EmotionPipeline
from synctva_ros.core.window import TimedFrame, UtteranceWindow


@pytest.fixture(scope="module")
def pipe(tiny_checkpoint):
    # the face expert off: these tests are about the network's branches (test_pipeline_faces.py fuses faces;
    # the grey 48x64 frames below would pass as face crops)
    cfg = load_config("demo", {"runtime.checkpoint": str(tiny_checkpoint), "features.face_expert": False})
    return EmotionPipeline(cfg)


def window(text: str | None, with_audio: bool = True, with_frames: bool = True) -> UtteranceWindow:
    audio = render_speech(text or "hello", speaker="Monica") if with_audio else np.zeros(0, np.float32)
    dur = max(audio.size / 16000, 1.0)
    frames = [TimedFrame(t, np.full((48, 64, 3), 120, np.uint8)) for t in np.arange(0, dur, 0.5)] if with_frames else []
    return UtteranceWindow(start=0.0, end=dur, transcript=text, audio=audio, frames=frames, utterance_id="u")


def test_predict_gives_a_distribution_and_contributions_of_active_branches(pipe):
    res = pipe.predict(window("Oh my god, that is wonderful news!"))
    assert math.isclose(sum(res.probabilities), 1.0, abs_tol=1e-5)
    assert res.label == res.class_names[res.index] and res.confidence == max(res.probabilities)
    assert res.present == {"text": True, "audio": True, "visual": True}
    # the tiny checkpoint has no trained visual branch: it is reported inactive and gets no share
    assert res.active == {"text": True, "audio": True, "visual": False}
    assert res.contributions["visual"] == 0.0
    assert math.isclose(res.contributions["text"] + res.contributions["audio"], 1.0, abs_tol=1e-5)
    assert -1 <= res.valence <= 1 and -1 <= res.arousal <= 1
    assert set(res.stage_s) >= {"text", "audio", "fusion"}


def test_missing_modalities_are_absent_not_errors(pipe):
    no_text = pipe.predict(window(None))
    assert no_text.active["text"] is False and no_text.contributions["text"] == 0.0
    assert math.isclose(no_text.contributions["audio"], 1.0, abs_tol=1e-5)
    nothing = pipe.predict(UtteranceWindow(start=0.0, end=1.0))
    assert not any(nothing.active.values()) and math.isclose(sum(nothing.probabilities), 1.0, abs_tol=1e-5)


def test_predictions_are_deterministic(pipe):
    w = window("I can't believe you did that.")
    pipe.reset_dialogue()  # the same (empty) dialogue context for both: predict() adds the window to it
    first = pipe.predict(w).probabilities
    pipe.reset_dialogue()
    assert pipe.predict(w).probabilities == first


def test_checkpoint_with_other_extractor_settings_is_refused(tiny_checkpoint):
    cfg = load_config("demo", {"runtime.checkpoint": str(tiny_checkpoint), "features.text_max_tokens": 32})
    with pytest.raises(CheckpointError, match="text"):
        EmotionPipeline(cfg)


@pytest.mark.parametrize("mode", ["exact", "context"])
def test_streaming_through_the_windower_matches_batch(tiny_checkpoint, mode):
    """The node's path (windower -> pipeline.streaming sink -> predict): 'exact' gives the batch
    probabilities bit for bit, 'context' (the default) the same label and nearly the same probabilities;
    a pipeline with streaming off computes the features at close."""
    from synctva_ros.windowing.windower import UtteranceWindower

    pipe = EmotionPipeline(load_config("demo", {"runtime.checkpoint": str(tiny_checkpoint),
                                                "features.streaming_audio": mode}))
    batch = EmotionPipeline(load_config("demo", {"runtime.checkpoint": str(tiny_checkpoint),
                                                 "features.streaming": False}))
    assert batch.streaming is None and pipe.streaming is not None and pipe.streaming.audio_mode == mode
    pipe.streaming.drain_timeout_s = 30.0  # a loaded CI machine: wait for the live frames rather than fall back
    assert set(pipe.streaming.describe()) >= {"stats", "audio_frames"} and pipe.streaming.visual_ext is None
    speech = render_speech("You never listen to anything I say!", speaker="Rachel")
    t0 = 1_700_000_123.4567
    lead = np.zeros(16000, np.float32)  # 1 s of silence before the utterance
    x = np.concatenate([lead, speech, np.zeros(8000, np.float32)])
    w = UtteranceWindower(pipe.cfg.windowing, 16000, sink=pipe.streaming)
    windows, said = [], False
    for i in range(0, x.size, 320):
        stamp = t0 + i / 16000
        w.add_audio(stamp, x[i:i + 320], 16000)
        if not said and i >= lead.size + speech.size:
            said = True
            w.add_transcript("You never listen to anything I say!", t0 + 1.0, t0 + 1.0 + speech.size / 16000, True,
                             stamp=stamp)
        windows += w.poll(stamp)
    (win,) = windows
    served = {"exact": "cache", "context": "context"}[mode]
    try:
        feats, _ = pipe.extract(win)
        assert feats.meta["streaming"] == {"audio": served} and pipe.streaming.stats[f"audio_{served}"] == 1
        ref, _ = batch.extract(win)
        got, want = pipe.predict(win), batch.predict(win)
    finally:
        pipe.close()
    if mode == "exact":
        np.testing.assert_array_equal(feats.audio.x, ref.audio.x)
        assert got.probabilities == want.probabilities
    else:
        assert feats.audio.x.shape == ref.audio.x.shape and not np.array_equal(feats.audio.x, ref.audio.x)
        assert got.label == want.label
        np.testing.assert_allclose(got.probabilities, want.probabilities, atol=1e-3)


def test_dialogue_context_follows_the_predicted_windows_and_resets(pipe):
    """Only predict() adds a window to its session's context (after predicting it), in the order predicted;
    reset_dialogue() (the node's answer to a time reset) forgets every session."""
    pipe.reset_dialogue()
    said = [("d1", "Ross", "We were on a break!"), ("d2", "", "Hello there."), ("d1", "Rachel", "No, we were not.")]
    for d, spk, text in said:
        w = window(text, with_frames=False)
        w.dialogue_id, w.speaker_id = d, spk
        pipe.extract(w)  # extracting alone adds nothing
        pipe.predict(w)
    pipe.predict(UtteranceWindow(start=0.0, end=1.0, dialogue_id="d1"))  # no transcript: no turn
    k = max(1, pipe.context_turns, pipe.extractors["text"].context_turns)  # what the checkpoint and encoder read
    assert pipe.dialogue.max_turns == k  # kept bounded
    d1 = [("Ross", "We were on a break!"), ("Rachel", "No, we were not.")]
    assert [(t.speaker, t.text) for t in pipe.dialogue.turns("d1")] == d1[-k:]
    assert [t.text for t in pipe.dialogue.turns("d2")] == ["Hello there."]
    # the sentence embedding is kept only for a checkpoint that reads it (pooled context): else it is not computed
    pooled = pipe.context_turns > 0 or pipe.extractors["text"].context_turns == 0
    assert all((t.sentence is not None and t.sentence.shape == (384,)) == pooled for t in pipe.dialogue.turns("d1"))
    pipe.reset_dialogue()
    assert len(pipe.dialogue) == 0 and pipe.dialogue.turns("d1") == []


def _resaved(tiny_checkpoint, tmp_path, edit):
    """A copy of the tiny checkpoint, changed by ``edit(model, manifest)`` and saved with a valid record."""
    from synctva_ros.checkpoint import load_checkpoint, save_checkpoint

    model, man = load_checkpoint(tiny_checkpoint)
    edit(model, man)
    save_checkpoint(tmp_path / "ck", model, {k: v for k, v in man.items() if not k.startswith("_")})
    return load_config("demo", {"runtime.checkpoint": str(tmp_path / "ck")})


def test_probe_refuses_weights_whose_outputs_overflow(tiny_checkpoint, tmp_path):
    """Finite weights (they pass the load checks) whose logits are infinite: every window would give NaN."""
    import torch

    def blow_up(model, man):
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.startswith("fusion.classifier") and p.dim() > 1:
                    p.mul_(1e38)

    with pytest.raises(CheckpointError, match="probe inference .*non-finite"):
        EmotionPipeline(_resaved(tiny_checkpoint, tmp_path, blow_up))


def test_probe_refuses_classes_without_an_affect_entry(tiny_checkpoint, tmp_path):
    """A checkpoint whose class names were renamed and re-saved (so its record is valid) fails at start-up."""
    def rename(model, man):
        model.class_names = ["calm"] + list(model.class_names[1:])
        model.cfg.class_names = list(model.class_names)

    with pytest.raises(CheckpointError, match="probe inference .*calm"):
        EmotionPipeline(_resaved(tiny_checkpoint, tmp_path, rename))


def test_edited_manifest_of_a_checkpoint_is_refused_at_construction(tiny_checkpoint, tmp_path):
    import json
    import shutil

    shutil.copytree(tiny_checkpoint, tmp_path / "ck")
    man = json.loads((tmp_path / "ck" / "manifest.json").read_text())
    for names in (man["class_names"], man["architecture"]["class_names"]):
        names[0], names[1] = names[1], names[0]
    (tmp_path / "ck" / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(CheckpointError, match=r"differs .*'class_names'"):
        EmotionPipeline(load_config("demo", {"runtime.checkpoint": str(tmp_path / "ck")}))
