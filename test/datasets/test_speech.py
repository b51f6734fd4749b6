"""espeak-ng speech rendering."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from synctva_ros.datasets import speech
from synctva_ros.datasets.speech import EspeakNotFoundError, render_speech, voice_for

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")


def test_render_is_real_speech_at_16k():
    x = render_speech("Hello, how are you today?", "Joey")
    assert x.dtype == np.float32 and x.ndim == 1
    assert 0.8 < x.size / 16000 < 4.0
    assert 0.05 < np.abs(x).max() <= 1.0
    # speech has most energy below 4 kHz
    spec = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(x.size, 1 / 16000)
    assert spec[freqs < 4000].sum() > 0.8 * spec.sum()


def test_duration_fitting_and_speakers_differ():
    text = "We could go to the bank and close our accounts."
    slow = render_speech(text, "Ross", duration_s=5.0)
    fast = render_speech(text, "Ross", duration_s=1.8)
    assert slow.size > 1.5 * fast.size
    assert abs(fast.size / 16000 - 1.8) < 0.6
    speakers = ["Ross", "Rachel", "Monica", "Chandler", "Joey", "Phoebe"]
    assert len({voice_for(s) for s in speakers}) > 1
    a, b = (s for s in speakers if voice_for(s) != voice_for(speakers[0])).__next__(), speakers[0]
    xa, xb = render_speech(text, a), render_speech(text, b)
    assert xa.size != xb.size or not np.allclose(xa, xb)
    np.testing.assert_array_equal(render_speech(text, a), xa)  # deterministic


def test_missing_espeak_gives_clear_error(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(EspeakNotFoundError, match="apt-get install espeak-ng"):
        speech.espeak_binary()
