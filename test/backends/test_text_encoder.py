"""The text extractor's encoder served by the selected backend (issue 12): onnxruntime states and class
probabilities equal torch's (1e-4 on probabilities, fp32), int8 as an option, torch as the fallback."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from synctva_ros.backends import text_encoder as te
from synctva_ros.backends.export import ExportError
from synctva_ros.bench.setups import dev_checkpoint
from synctva_ros.config import RuntimeConfig, load_config
from synctva_ros.core.window import UtteranceWindow
from synctva_ros.features.dialogue import Turn
from synctva_ros.features.text import TextEncoder
from synctva_ros.pipeline import EmotionPipeline

pytest.importorskip("onnxruntime")

TEXTS = ["Oh my God, you did not!", "Fine.", "Why would you tell her about the party, seriously?"]
TURNS = [Turn("Ross", "I told her everything."), Turn("Rachel", "You did what?")]


@pytest.fixture(scope="module")
def minilm() -> TextEncoder:
    """all-MiniLM-L6-v2 whole (six layers; a BERT tokenizer: token type ids in context pairs), two turns of context."""
    return TextEncoder("all-MiniLM-L6-v2", max_tokens=32, layer=-1, context_turns=2, context_max_tokens=48,
                       context_states=True)


def _rt(tmp_path, **kw) -> RuntimeConfig:
    return RuntimeConfig(**{"backend": "onnxruntime", "threads": 1, "cache_dir": str(tmp_path), **kw})


def test_onnxruntime_serves_the_encoder_with_torch_states(minilm, tmp_path) -> None:
    ref = minilm.encode_texts(TEXTS, [TURNS] * 3, ["Joey", "", "Monica"])
    assert te.serve_text_encoder(minilm, _rt(tmp_path)) == "onnxruntime"
    try:
        assert minilm.runner.input_names == ["input_ids", "attention_mask", "token_type_ids"]
        assert minilm.runner.path.name.startswith("text_encoder-")
        got = minilm.encode_texts(TEXTS, [TURNS] * 3, ["Joey", "", "Monica"])
        for a, b in zip(ref, got):
            assert a.tokens.shape == b.tokens.shape and a.prefix.shape == b.prefix.shape
            for x, y in ((a.tokens, b.tokens), (a.sentence, b.sentence), (a.prefix, b.prefix)):
                assert np.abs(x - y).max() < 1e-4
        # a second start finds the cached file (same key), torch again when asked
        path = minilm.runner.path
        assert te.serve_text_encoder(minilm, _rt(tmp_path)) == "onnxruntime" and minilm.runner.path == path
        assert te.serve_text_encoder(minilm, _rt(tmp_path, backend="torch")) == "torch" and minilm.runner is None
    finally:
        minilm.runner = None


def test_int8_is_an_option_of_the_onnxruntime_backend(minilm, tmp_path) -> None:
    ref = minilm.encode_texts(TEXTS)
    try:
        assert te.serve_text_encoder(minilm, _rt(tmp_path, quantize="int8")) == "onnxruntime-int8"
        assert minilm.runner.path.name.startswith("text_encoder_int8-")
        got = minilm.encode_texts(TEXTS)
    finally:
        minilm.runner = None
    cos = [float(a.sentence @ b.sentence) for a, b in zip(ref, got)]  # both L2-normalised
    diff = max(float(np.abs(a.tokens - b.tokens).max()) for a, b in zip(ref, got))
    assert diff > 1e-4 and min(cos) > 0.95  # quantised (not the fp32 graph), and still the same sentences


def test_torch_is_the_fallback(minilm, tmp_path, monkeypatch, caplog) -> None:
    def broken(*_a, **_k):
        raise ExportError("tracer says no")

    monkeypatch.setattr(te, "cached_text_onnx", broken)
    with caplog.at_level(logging.WARNING, logger="synctva_ros.backends.text_encoder"):
        assert te.serve_text_encoder(minilm, _rt(tmp_path)) == "torch"
    assert minilm.runner is None and "stays on torch: tracer says no" in caplog.text
    assert te.serve_text_encoder(None, _rt(tmp_path)) == ""


def test_an_encoder_cut_to_its_embeddings_stays_on_torch(tmp_path) -> None:
    emb = TextEncoder("all-MiniLM-L6-v2", max_tokens=16, layer=0)
    assert te.encoder_layers(emb.model) == 0
    assert te.serve_text_encoder(emb, _rt(tmp_path)) == "torch" and emb.runner is None
    assert not (tmp_path / "onnx").exists()


def _windows() -> list[UtteranceWindow]:
    return [UtteranceWindow(start=10.0 * i, end=10.0 * i + 2.0, transcript=t, audio=np.zeros(0, np.float32),
                            sample_rate=16000, audio_start=10.0 * i, utterance_id=f"u{i}", dialogue_id="d",
                            speaker_id=["Joey", "Monica"][i % 2]) for i, t in enumerate(TEXTS * 2)]


def test_pipeline_probabilities_on_onnxruntime_equal_torch(tmp_path) -> None:
    """A text checkpoint whose extractor runs the whole encoder with two turns of context: the pipeline on
    onnxruntime (network and encoder) gives torch's class probabilities within 1e-4, window after window."""
    over = {"features.text_layer": -1, "features.text_context_turns": 2, "features.text_context_max_tokens": 48,
            "features.text_context_states": False, "features.face_expert": False,
            "features.streaming": False, "runtime.threads": 1, "runtime.cache_dir": str(tmp_path)}
    cfg = load_config("demo", over)
    text = TextEncoder("all-MiniLM-L6-v2", max_tokens=cfg.features.text_max_tokens, layer=-1, context_turns=2,
                       context_max_tokens=48)
    ckpt = dev_checkpoint(tmp_path / "ckpt", cfg, {"text": text, "audio": None, "visual": None}, steps=2)
    pipes = {b: EmotionPipeline(load_config("demo", {**over, "runtime.backend": b, "runtime.checkpoint": str(ckpt)}))
             for b in ("torch", "onnxruntime")}
    try:
        assert pipes["torch"].text_runtime == "torch" and pipes["onnxruntime"].text_runtime == "onnxruntime"
        assert pipes["onnxruntime"].describe()["text_encoder"] == "onnxruntime"
        for w in _windows():
            a, b = pipes["torch"].predict(w), pipes["onnxruntime"].predict(w)
            assert a.backend == "torch" and b.backend == "onnxruntime"
            assert np.abs(np.array(a.probabilities) - np.array(b.probabilities)).max() < 1e-4
    finally:
        for p in pipes.values():
            p.close()


def test_the_network_falls_back_to_torch_when_onnxruntime_cannot_start(tmp_path, make_model, monkeypatch,
                                                                       caplog) -> None:
    from synctva_ros.backends import BackendUnavailable, create_backend
    from synctva_ros.backends.onnx_backend import OnnxRuntimeBackend

    def unavailable(*_a, **_k):
        raise BackendUnavailable("onnxruntime not installed: pip install onnxruntime, or use backend torch")

    monkeypatch.setattr(OnnxRuntimeBackend, "from_model", unavailable)
    with caplog.at_level(logging.WARNING, logger="synctva_ros.backends"):
        backend = create_backend(_rt(tmp_path), make_model(), {"name": "t"})
    assert backend.name == "torch" and backend.tolerance == 1e-6 and "serving torch fp32 instead" in caplog.text
