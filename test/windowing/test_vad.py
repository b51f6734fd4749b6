"""Voice-activity segmentation on real espeak-ng speech, alone and inside the windower."""

from __future__ import annotations

import shutil
import subprocess
import wave

import numpy as np
import pytest

from synctva_ros.config import WindowingConfig
from synctva_ros.windowing.vad import VoiceActivitySegmenter
from synctva_ros.windowing.windower import UtteranceWindower

SR = 16000
pytestmark = pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")),
                                reason="needs espeak-ng and sox")


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> np.ndarray:
    """'The robot listens to you carefully' by espeak-ng, resampled to 16 kHz by sox, float32."""
    d = tmp_path_factory.mktemp("vad")
    raw, wav = d / "raw.wav", d / "16k.wav"
    subprocess.run(["espeak-ng", "-w", str(raw), "The robot listens to you carefully."], check=True)
    subprocess.run(["sox", str(raw), "-r", str(SR), "-c", "1", "-b", "16", str(wav)], check=True)
    with wave.open(str(wav)) as w:
        assert w.getframerate() == SR
        x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768.0
    return x


def _speech_bounds(x: np.ndarray, t0: float) -> tuple[float, float]:
    idx = np.flatnonzero(np.abs(x) > 0.02)
    return t0 + idx[0] / SR, t0 + idx[-1] / SR


def _stream(v: VoiceActivitySegmenter, sig: np.ndarray, t0: float, chunk: int = 320):
    segs = []
    for i in range(0, sig.size, chunk):
        segs += v.feed(t0 + i / SR, sig[i:i + chunk])
    return segs


@pytest.mark.parametrize("frame_ms", [10, 20, 30])
def test_segment_covers_padded_speech(speech, frame_ms):
    t0 = 50.0
    sig = np.concatenate([np.zeros(SR), speech, np.zeros(2 * SR)]).astype(np.float32)
    v = VoiceActivitySegmenter(SR, aggressiveness=2, frame_ms=frame_ms, min_speech_s=0.3, hangover_s=0.5)
    segs = _stream(v, sig, t0) + v.flush()
    s, e = _speech_bounds(speech, t0 + 1.0)
    assert len(segs) == 1
    start, end = segs[0]
    assert start <= s + 0.05 and end >= e - 0.05  # covers the speech
    assert start >= t0 + 1.0 - 0.1 and end <= e + 0.6  # and not much of the silence


def test_silence_and_too_short_speech_give_nothing(speech):
    v = VoiceActivitySegmenter(SR, min_speech_s=5.0)
    sig = np.concatenate([np.zeros(SR), speech, np.zeros(SR)]).astype(np.float32)
    assert _stream(v, sig, 0.0) + v.flush() == []
    v = VoiceActivitySegmenter(SR)
    assert _stream(v, np.zeros(3 * SR, np.float32), 0.0) + v.flush() == []


def test_other_rate_and_long_gap_restart(speech):
    x48 = np.repeat(speech, 3)  # crude 48 kHz version of the same speech
    v = VoiceActivitySegmenter(48000, frame_ms=30)
    segs = []
    for i in range(0, x48.size, 960):
        segs += v.feed(10.0 + i / 48000, x48[i:i + 960])
    # a gap longer than the hangover closes the open segment
    segs += v.feed(100.0, np.zeros(4800, np.float32))
    assert len(segs) == 1 and segs[0][0] < segs[0][1] <= 10.0 + x48.size / 48000 + 0.01
    assert v.last_onset(50.0) == pytest.approx(segs[0][0])
    assert v.last_onset(50.0, within=1.0) is None


def test_invalid_parameters_raise():
    with pytest.raises(ValueError):
        VoiceActivitySegmenter(44100)
    with pytest.raises(ValueError):
        VoiceActivitySegmenter(SR, frame_ms=25)
    with pytest.raises(ValueError):
        VoiceActivitySegmenter(SR, aggressiveness=4)


def _feed_audio(w: UtteranceWindower, sig: np.ndarray, t0: float, chunk: int = 320):
    out = []
    for i in range(0, sig.size, chunk):
        w.add_audio(t0 + i / SR, sig[i:i + chunk], SR)
        out += w.poll(t0 + i / SR)
    return out


def test_windower_closes_windows_by_voice_when_no_stt(speech):
    w = UtteranceWindower(WindowingConfig(vad_enabled=True, late_s=0.3), SR)
    sig = np.concatenate([np.zeros(SR), speech, np.zeros(SR), speech, np.zeros(2 * SR)]).astype(np.float32)
    wins = _feed_audio(w, sig, 0.0) + w.flush()
    assert [x.closed_by for x in wins] == ["vad", "vad"]
    assert [x.utterance_id for x in wins] == ["vad1", "vad2"]
    assert all(x.transcript is None and not x.present["text"] and x.present["audio"] for x in wins)
    s, e = _speech_bounds(speech, 1.0)
    assert wins[0].start <= s + 0.05 and wins[0].end >= e - 0.05
    # the window audio is the speech
    assert np.abs(wins[0].audio).max() > 0.1
    assert w.stats["vad_windows"] == 2


def test_windower_no_vad_windows_while_stt_alive_and_onset_for_unknown_start(speech):
    c = WindowingConfig(vad_enabled=True, stt_timeout_s=10.0, default_window_s=0.2)
    w = UtteranceWindower(c, SR)
    t0 = 100.0  # sensor epoch well above max_window_s, so start = 0 reads as "unset"
    w.add_transcript("earlier", t0 + 0.1, t0 + 0.5, True, stamp=t0 + 0.5)
    sig = np.concatenate([np.zeros(SR), speech, np.zeros(SR)]).astype(np.float32)
    wins = _feed_audio(w, sig, t0)
    assert [x.closed_by for x in wins] == ["transcript"]
    # a final transcript without start: start comes from the voice onset
    end = t0 + 1.0 + speech.size / SR
    w.add_transcript("the robot listens", 0.0, end, True, stamp=end + 0.2)
    (win,) = w.flush()
    s, _ = _speech_bounds(speech, t0 + 1.0)
    assert abs(win.start - s) < 0.1 and win.end == end
    assert w.stats["vad_windows"] == 0 and w.stats["unknown_start"] == 1
