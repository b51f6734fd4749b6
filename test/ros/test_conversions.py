"""synctva_ros.ros.conversions: messages <-> core values (in-process; no DDS needed)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import Image
from std_msgs.msg import Header, String

from synctva_ros.emotion import EmotionResult
from synctva_ros.msg import AudioChunk, EmotionState, Transcript
from synctva_ros.ros.conversions import (MAX_TRANSCRIPT_CHARS, InputError, audio_msg_to_samples, image_msg_stamp,
                                         image_msg_to_rgb, result_to_msg, seconds_to_time, string_msg_to_fields,
                                         time_to_seconds, transcript_msg_to_fields)


@pytest.mark.parametrize("t", [0.0, 1e-9, 12.5, 1.999999999, 1_700_000_000.123456789])
def test_time_round_trip_to_the_nanosecond(t):
    msg = seconds_to_time(t)
    assert 0 <= msg.nanosec < 1_000_000_000
    assert abs(time_to_seconds(msg) - t) <= 1e-9 * max(1.0, abs(t)) * 4
    # to the nanosecond, up to float64's own spacing at t (238 ns near 1.7e9 s)
    assert msg.sec == int(t) and abs(time_to_seconds(msg) - t) <= max(1e-9, 2 * np.spacing(t))


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), 3e9])
def test_time_rejects_unrepresentable_seconds(bad):
    with pytest.raises(ValueError):
        seconds_to_time(bad)


def test_image_with_row_padding_decodes_to_rgb():
    h, w, step = 3, 4, 4 * 3 + 4
    rgb = np.arange(h * w * 3, dtype=np.uint8).reshape(h, w, 3)
    rows = np.zeros((h, step), np.uint8)
    rows[:, : w * 3] = rgb.reshape(h, -1)
    bgr = rows.copy()
    bgr[:, : w * 3] = rgb[:, :, ::-1].reshape(h, -1)
    msg = Image(header=Header(stamp=Time(sec=5, nanosec=250_000_000)), height=h, width=w, encoding="bgr8",
                step=step, data=bgr.tobytes())
    stamp, out = image_msg_to_rgb(msg)
    assert stamp == 5.25
    np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize("encoding, step, size", [("weird42", 12, 24), ("rgb8", 5, 24), ("rgb8", 12, 23)])
def test_bad_image_raises_input_error(encoding, step, size):
    msg = Image(height=2, width=4, encoding=encoding, step=step, data=bytes(size))
    for convert in (image_msg_to_rgb, image_msg_stamp):  # the header-only check rejects the same frames
        with pytest.raises(InputError) as e:
            convert(msg)
        assert e.value.kind == "bad_image"


def test_image_stamp_without_decoding():
    msg = Image(header=Header(stamp=Time(sec=7, nanosec=5)), height=480, width=640, encoding="rgb8", step=1920,
                data=bytes(480 * 1920))
    assert image_msg_stamp(msg) == 7.000000005


def _chunk(samples: np.ndarray, rate: int = 16000, channels: int = 1, encoding: str = "F32LE") -> AudioChunk:
    data = samples.astype("<f4").tobytes() if encoding == "F32LE" else (samples * 32767).astype("<i2").tobytes()
    return AudioChunk(header=Header(stamp=Time(sec=2)), sample_rate=rate, channels=channels, encoding=encoding,
                      data=data)


def test_stereo_audio_is_mixed_to_mono():
    left = np.linspace(-0.5, 0.5, 8, dtype=np.float32)
    inter = np.stack([left, np.zeros_like(left)], 1).reshape(-1)
    stamp, mono, rate = audio_msg_to_samples(_chunk(inter, rate=48000, channels=2))
    assert (stamp, rate) == (2.0, 48000)
    np.testing.assert_allclose(mono, left / 2, atol=1e-7)


@pytest.mark.parametrize("msg, kind", [
    (lambda: _chunk(np.zeros(0, np.float32)), "empty_audio"),
    (lambda: _chunk(np.array([0.1, np.nan], np.float32)), "bad_audio"),
    (lambda: _chunk(np.zeros(4, np.float32), rate=1_000_000), "bad_audio"),
    (lambda: _chunk(np.zeros(4, np.float32), rate=0), "bad_audio"),
    (lambda: _chunk(np.zeros(4, np.float32), channels=0), "bad_audio"),
    (lambda: _chunk(np.zeros(3, np.float32), channels=2), "bad_audio"),  # not whole frames
    (lambda: _chunk(np.zeros(4, np.float32), encoding="MP3"), "bad_audio"),
])
def test_bad_audio_raises_input_error(msg, kind):
    m = msg()
    if m.encoding == "MP3":
        m.data = bytes(8)
    with pytest.raises(InputError) as e:
        audio_msg_to_samples(m)
    assert e.value.kind == kind


def test_transcript_fields_pass_times_through_and_truncate():
    msg = Transcript(header=Header(stamp=Time(sec=10)), text="x" * (MAX_TRANSCRIPT_CHARS + 5), is_final=True,
                     start=Time(sec=7), end=Time(sec=9, nanosec=500_000_000), confidence=0.8, language="en",
                     dialogue_id="d", utterance_id="u", speaker_id="spk1")
    f = transcript_msg_to_fields(msg)
    assert (f.start, f.end, f.stamp, f.is_final) == (7.0, 9.5, 10.0, True)
    assert f.truncated and len(f.text) == MAX_TRANSCRIPT_CHARS
    kw = f.windower_kwargs()
    assert kw["utterance_id"] == "u" and kw["dialogue_id"] == "d" and kw["language"] == "en"
    assert kw["speaker_id"] == "spk1"
    assert kw["confidence"] == pytest.approx(0.8) and "truncated" not in kw
    # unknown bounds stay 0.0: the windower resolves them as for a bag read offline
    f2 = transcript_msg_to_fields(Transcript(header=Header(stamp=Time(sec=3)), text="hi", is_final=False))
    assert (f2.start, f2.end, f2.truncated) == (0.0, 0.0, False)


def test_string_fallback_is_final_and_stamped_on_arrival():
    f = string_msg_to_fields(String(data="hello there"), now_s=42.5)
    assert (f.text, f.is_final, f.stamp, f.start, f.end) == ("hello there", True, 42.5, 0.0, 0.0)


def _result(**kw) -> EmotionResult:
    base = dict(start=1.25, end=3.5, class_names=["neutral", "joy", "anger"], probabilities=[0.2, 0.7, 0.1],
                label="joy", index=1, confidence=0.7, valence=0.6, arousal=0.3,
                contributions={"text": 0.75, "audio": 0.25, "visual": 0.0},
                present={"text": True, "audio": True, "visual": True},
                active={"text": True, "audio": True, "visual": False},
                transcript="great", model="tiny", backend="torch", utterance_id="u7")
    base.update(kw)
    return EmotionResult(**base)


def test_result_to_msg_fills_every_field_in_modality_order():
    msg = result_to_msg(_result(), 0.042, frame_id="cam", dialogue_id="d3")
    assert isinstance(msg, EmotionState)
    assert time_to_seconds(msg.header.stamp) == 3.5 and msg.header.frame_id == "cam"
    assert time_to_seconds(msg.window_start) == 1.25 and time_to_seconds(msg.window_end) == 3.5
    assert (msg.label, msg.label_index) == ("joy", 1)
    assert list(msg.class_names) == ["neutral", "joy", "anger"]
    np.testing.assert_allclose(msg.probabilities, [0.2, 0.7, 0.1], rtol=1e-6)
    assert list(msg.modalities) == ["text", "audio", "visual"]
    assert list(msg.present) == [True, True, True] and list(msg.active) == [True, True, False]
    np.testing.assert_allclose(msg.contributions, [0.75, 0.25, 0.0])
    assert (msg.transcript, msg.utterance_id, msg.dialogue_id) == ("great", "u7", "d3")
    assert (msg.model, msg.backend) == ("tiny", "torch")
    assert math.isclose(msg.latency, 0.042, rel_tol=1e-6)
    assert math.isclose(msg.valence, 0.6, rel_tol=1e-6) and math.isclose(msg.arousal, 0.3, rel_tol=1e-6)


def test_result_to_msg_missing_modality_is_absent_and_negative_latency_clamped():
    msg = result_to_msg(_result(contributions={"text": 1.0}, present={"text": True}, active={"text": True}), -1.0)
    assert list(msg.present) == [True, False, False] and list(msg.active) == [True, False, False]
    assert list(msg.contributions) == [1.0, 0.0, 0.0]
    assert msg.latency == 0.0


def test_result_to_msg_rejects_inconsistent_results():
    with pytest.raises(ValueError):
        result_to_msg(_result(probabilities=[0.5, 0.5]), 0.0)
    with pytest.raises(ValueError):
        result_to_msg(_result(start=float("nan")), 0.0)


def test_result_to_msg_per_modality_distributions_and_faces_round_trip():
    res = _result(modality_probabilities={"text": [0.1, 0.6, 0.3], "visual": [0.05, 0.9, 0.05]},
                  faces_seen=2, face_track_id=7, active={"text": True, "audio": True, "visual": True},
                  contributions={"text": 0.5, "audio": 0.2, "visual": 0.3})
    msg = deserialize_message(serialize_message(result_to_msg(res, 0.01)), EmotionState)
    np.testing.assert_allclose(msg.text_probabilities, [0.1, 0.6, 0.3], rtol=1e-6)
    assert len(msg.audio_probabilities) == 0  # no distribution: empty
    np.testing.assert_allclose(msg.visual_probabilities, [0.05, 0.9, 0.05], rtol=1e-6)
    assert (msg.faces_seen, msg.face_track_id) == (2, 7)
    assert list(msg.active) == [True, True, True]
    np.testing.assert_allclose(msg.contributions, [0.5, 0.2, 0.3], rtol=1e-6)
    none = result_to_msg(_result(), 0.0)
    assert (none.faces_seen, none.face_track_id) == (0, -1)
    assert [len(none.text_probabilities), len(none.audio_probabilities), len(none.visual_probabilities)] == [0, 0, 0]
    assert result_to_msg(_result(faces_seen=70000), 0.0).faces_seen == 65535
    with pytest.raises(ValueError, match="modality probabilities"):
        result_to_msg(_result(modality_probabilities={"audio": [0.5, 0.5]}), 0.0)


def test_result_to_msg_carries_the_rep155_ids_through_serialisation():
    """voice_id, person_id, face_id and header.frame_id survive a CDR round trip; empty by default."""
    msg = result_to_msg(_result(face_track_id=3), 0.0, frame_id="head_front_camera_optical_frame",
                        voice_id="v_anna", person_id="p_anna", face_id="f_anna")
    back = deserialize_message(serialize_message(msg), EmotionState)
    assert (back.header.frame_id, back.voice_id, back.person_id, back.face_id, back.face_track_id) == \
        ("head_front_camera_optical_frame", "v_anna", "p_anna", "f_anna", 3)
    none = result_to_msg(_result(), 0.0)
    assert (none.header.frame_id, none.voice_id, none.person_id, none.face_id) == ("", "", "", "")
