"""The bag writer's speech rules shared with the feature cache (synctva_ros/datasets/rendering.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from synctva_ros.datasets import speech
from synctva_ros.datasets.rendering import (MAX_UTT_S, MIN_UTT_S, _code_hash, plausible_duration, render_utterance,
                                            speech_identity, to_s16le)
from synctva_ros.datasets.utterance import Utterance

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")


def _utt(text: str, start_s: float, end_s: float) -> Utterance:
    return Utterance("meld", "dev", "1", 0, "1_0", "Monica", text, "neutral", start_s=start_s, end_s=end_s)


def test_plausible_duration_bounds():
    assert plausible_duration(MIN_UTT_S) == MIN_UTT_S and plausible_duration(MAX_UTT_S) == MAX_UTT_S
    assert plausible_duration(2.5) == 2.5
    for bad in (None, float("nan"), float("inf"), MIN_UTT_S - 1e-3, MAX_UTT_S + 1e-3, -1.0):
        assert plausible_duration(bad) is None
    assert plausible_duration(5.0, 0.5, 4.0) is None and plausible_duration(3.0, 0.5, 4.0) == 3.0


def test_to_s16le_clips_and_rounds():
    x = np.array([-2.0, -1.0, -0.5, 0.0, 1e-5, 0.5, 1.0, 3.0], np.float32)
    y = to_s16le(x)
    assert y.dtype == np.int16
    np.testing.assert_array_equal(y, np.round(np.clip(x, -1, 1) * 32767).astype(np.int16))
    assert y[0] == y[1] == -32767 and y[-1] == y[-2] == 32767 and y[3] == 0


def test_code_hash_ignores_docstrings_and_comments_only():
    src = 'def f(x):\n    """Doc."""\n    return x + 1  # one\n'
    same = 'def f(x):\n    """Another doc."""\n    # a comment\n    return x + 1\n'
    other = 'def f(x):\n    """Doc."""\n    return x + 2\n'
    assert _code_hash(src) == _code_hash(same) != _code_hash(other)


def test_speech_identity_follows_the_renderer_source_and_rules():
    ident = speech_identity(22050)
    assert ident["source_sha256"] == _code_hash(Path(speech.__file__).read_text(encoding="utf-8"))
    assert ident["sample_rate"] == 22050
    assert ident["bag_rules"]["min_max_utt_s"] == [MIN_UTT_S, MAX_UTT_S] and ident["bag_rules"]["pcm"] == "S16LE"
    if shutil.which("espeak-ng"):
        assert "eSpeak" in ident["espeak"]


@needs_espeak
def test_render_utterance_fits_plausible_durations_only():
    text = "We could go to the bank and close our accounts."
    wav, sr = render_utterance(_utt(text, 10.0, 14.0), 16000)
    assert sr == 16000 and wav.dtype == np.float32
    assert abs(wav.size / sr - 4.0) < 0.8  # slowed to about the dataset duration
    free = speech.render_speech(text, "Monica", None, 16000)
    implausible, _ = render_utterance(_utt(text, 0.0, MAX_UTT_S + 5), 16000)
    assert implausible.size == free.size != wav.size  # no target duration: espeak-ng's own rate
    # S16LE round trip: every sample is an integer number of 1/32768 steps
    np.testing.assert_array_equal(wav * 32768, np.round(wav * 32768))
    np.testing.assert_array_equal(implausible, to_s16le(free).astype(np.float32) / 32768)


@needs_espeak
def test_silent_text_becomes_min_utt_s_of_zeros():
    assert speech.render_speech("...", "Monica").size == 0  # espeak-ng renders only silence for it
    wav, sr = render_utterance(_utt("...", 0.0, 1.0), 16000)
    assert wav.size == int(MIN_UTT_S * sr) and not wav.any()
