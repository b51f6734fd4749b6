"""ROS4HRI / audio_common / whisper_ros messages -> audio chunks and transcripts (synctva_ros.core.hri_fields).

Uses the real generated message classes: the stand-ins of ``third_party_msgs/`` (``make third-party-msgs``)
or the real packages. The ros-drivers ``AudioData``/``AudioInfo`` (same package name as mgonzs13's, so the
two cannot be installed together) are built by rosbags from their published definition instead.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from std_msgs.msg import Header

from synctva_ros.core.hri_fields import (PORTAUDIO_FORMATS, ArrivalStamper, audio_data_to_samples,
                                         audio_stamped_to_samples, live_speech_to_fields, locale_to_bcp47,
                                         voice_id_from_topic, whisper_to_fields)
from synctva_ros.core.inputs import MAX_TRANSCRIPT_CHARS, InputError

hri = pytest.importorskip("hri_msgs.msg", reason="hri_msgs missing: `make third-party-msgs` builds the stand-in")
acm = pytest.importorskip("audio_common_msgs.msg", reason="audio_common_msgs missing: `make third-party-msgs`")
whisper = pytest.importorskip("whisper_msgs.msg", reason="whisper_msgs missing: `make third-party-msgs`")

RATE = 16000


def _stamped(t: float, fmt: int, data: np.ndarray, channels: int = 1, rate: int = RATE):
    field = PORTAUDIO_FORMATS[fmt][0]
    ad = acm.AudioData(**{field: data.tolist()})
    info = acm.AudioInfo(format=fmt, channels=channels, rate=rate, chunk=data.size // channels)
    sec = int(t)
    return acm.AudioStamped(header=Header(stamp=Time(sec=sec, nanosec=int(round((t - sec) * 1e9))), frame_id="mic"),
                            audio=acm.Audio(audio_data=ad, info=info))


# ------------------------------------------------------------------ AudioStamped
@pytest.mark.parametrize("fmt, raw, expected", [
    (8, np.array([0, 16384, -32768, 32767], np.int16), [0.0, 0.5, -1.0, 32767 / 32768]),
    (1, np.array([0.25, -0.5, 2.0, -3.0], np.float32), [0.25, -0.5, 1.0, -1.0]),
    (2, np.array([0, 2**30, -2**31, 0], np.int32), [0.0, 0.5, -1.0, 0.0]),
    (16, np.array([0, 64, -128, 127], np.int8), [0.0, 0.5, -1.0, 127 / 128]),
    (32, np.array([128, 192, 0, 255], np.uint8), [0.0, 0.5, -1.0, 127 / 128]),
])
def test_audio_stamped_formats_scale_to_unit_range(fmt, raw, expected):
    stamp, x, rate = audio_stamped_to_samples(_stamped(12.25, fmt, raw))
    assert stamp == pytest.approx(12.25) and rate == RATE
    assert x.dtype == np.float32 and x.shape == (4,)
    np.testing.assert_allclose(x, expected, atol=1e-6)


def test_audio_stamped_stereo_is_mixed_to_mono():
    inter = np.array([1000, 3000, -2000, 2000], np.int16)  # frames (1000, 3000), (-2000, 2000)
    _, x, _ = audio_stamped_to_samples(_stamped(1.0, 8, inter, channels=2, rate=48000))
    np.testing.assert_allclose(x, [2000 / 32768, 0.0], atol=1e-7)


@pytest.mark.parametrize("change, kind", [
    (lambda m: setattr(m.audio.info, "format", 4), "bad_audio"),      # paInt24: no AudioData array
    (lambda m: setattr(m.audio.info, "rate", 1000), "bad_audio"),
    (lambda m: setattr(m.audio.info, "channels", 0), "bad_audio"),
    (lambda m: setattr(m.audio.info, "channels", 3), "bad_audio"),    # 4 values, not whole 3-channel frames
    (lambda m: setattr(m.audio.info, "format", 1), "empty_audio"),    # data is in int16_data, float32 empty
])
def test_audio_stamped_rejections(change, kind):
    msg = _stamped(1.0, 8, np.array([1, 2, 3, 4], np.int16))
    change(msg)
    with pytest.raises(InputError) as err:
        audio_stamped_to_samples(msg)
    assert err.value.kind == kind


def test_audio_stamped_nan_is_rejected():
    with pytest.raises(InputError) as err:
        audio_stamped_to_samples(_stamped(1.0, 1, np.array([0.1, np.nan], np.float32)))
    assert err.value.kind == "bad_audio"


# ------------------------------------------------------- AudioData + info topic
def _ros_drivers_types():
    """ros-drivers/audio_common AudioData/AudioInfo (docs.ros.org, audio_common_msgs 0.3.18) via rosbags."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    types = get_types_from_msg("uint8[] data", "audio_common_msgs/msg/AudioData")
    types.update(get_types_from_msg("uint8 channels\nuint32 sample_rate\nstring sample_format\nuint32 bitrate\n"
                                    "string coding_format", "audio_common_msgs/msg/AudioInfo"))
    store.register(types)
    return store.types["audio_common_msgs/msg/AudioData"], store.types["audio_common_msgs/msg/AudioInfo"]


def test_audio_data_ros_drivers_variant_with_info_topic():
    data_t, info_t = _ros_drivers_types()
    pcm = (np.array([0.5, -0.5, 0.25, 0.25] * 400, np.float32) * 32768).astype("<i2")  # 800 stereo frames
    info = info_t(channels=2, sample_rate=16000, sample_format="S16LE", bitrate=0, coding_format="wave")
    stamp, x, rate = audio_data_to_samples(data_t(data=np.frombuffer(pcm.tobytes(), np.uint8)), info, now_s=10.0)
    assert rate == 16000 and x.shape == (800,)
    np.testing.assert_allclose(x[:2], [0.0, 0.25], atol=1e-4)
    assert stamp == pytest.approx(10.0 - 800 / 16000)
    with pytest.raises(InputError) as err:
        audio_data_to_samples(data_t(data=np.zeros(4, np.uint8)),
                              info_t(channels=1, sample_rate=16000, sample_format="S16LE", bitrate=0,
                                     coding_format="mp3"), now_s=1.0)
    assert err.value.kind == "bad_audio"


def test_audio_data_mgonzs13_variant_and_missing_info():
    ad = acm.AudioData(int16_data=[0, 16384] * 80)
    info = acm.AudioInfo(format=8, channels=1, rate=16000, chunk=160)
    stamp, x, rate = audio_data_to_samples(ad, info, now_s=5.0)
    assert rate == 16000 and x.shape == (160,) and stamp == pytest.approx(5.0 - 0.01)
    with pytest.raises(InputError) as err:
        audio_data_to_samples(ad, None, now_s=5.0)
    assert err.value.kind == "no_audio_info"


def test_arrival_stamper_keeps_steady_streams_contiguous():
    s = ArrivalStamper(tolerance_s=0.2)
    assert s.stamp(1.0, 0.1) == pytest.approx(0.9)
    assert s.stamp(1.13, 0.1) == pytest.approx(1.0)   # jitter absorbed: right after the previous chunk
    assert s.stamp(1.18, 0.1) == pytest.approx(1.1)
    assert s.stamp(5.0, 0.1) == pytest.approx(4.9)    # a gap: new run at the arrival estimate


# ------------------------------------------------------------------ LiveSpeech
def test_live_speech_final_result():
    msg = hri.LiveSpeech(header=Header(stamp=Time(sec=42, nanosec=500_000_000)), incremental="",
                         final="I missed you", confidence=0.87, locale="en_GB")
    f = live_speech_to_fields(msg, voice_id_from_topic("/humans/voices/anna/speech"))
    assert f.is_final and f.text == "I missed you" and f.stamp == pytest.approx(42.5)
    assert f.speaker_id == "anna" and f.language == "en-GB" and f.confidence == pytest.approx(0.87)
    assert f.start == 0.0 and f.end == 0.0 and not f.truncated
    assert f.windower_kwargs()["speaker_id"] == "anna"


def test_live_speech_incremental_and_bad_confidence():
    msg = hri.LiveSpeech(header=Header(stamp=Time(sec=1)), incremental="I mis", final="", confidence=7.0, locale="")
    f = live_speech_to_fields(msg, "v1")
    assert not f.is_final and f.text == "I mis" and math.isnan(f.confidence) and f.language == ""


def test_live_speech_huge_text_is_truncated():
    msg = hri.LiveSpeech(final="a" * (MAX_TRANSCRIPT_CHARS + 5), confidence=1.0)
    f = live_speech_to_fields(msg)
    assert f.truncated and len(f.text) == MAX_TRANSCRIPT_CHARS and f.speaker_id == ""


@pytest.mark.parametrize("topic, voice", [
    ("/humans/voices/anna/speech", "anna"), ("/robot1/humans/voices/v_3/speech", "v_3"),
    ("humans/voices/x/speech", "x"), ("/speech", ""), ("/humans/voices/speech", ""),
    ("/humans/voices/a/b/speech", ""),
])
def test_voice_id_from_topic(topic, voice):
    assert voice_id_from_topic(topic) == voice


def test_locale_to_bcp47():
    assert locale_to_bcp47("en_GB") == "en-GB" and locale_to_bcp47("fr") == "fr" and locale_to_bcp47("") == ""


# ------------------------------------------------------------------- whisper
def test_whisper_transcription_bounds_from_its_times():
    msg = whisper.Transcription(text="hello there", audio_time=2.0, transcription_time=0.5)
    f = whisper_to_fields(msg, now_s=100.0)
    assert f.is_final and f.text == "hello there" and f.stamp == 100.0
    assert f.end == pytest.approx(99.5) and f.start == pytest.approx(97.5)


@pytest.mark.parametrize("audio_time, busy", [(float("nan"), 0.1), (-1.0, 0.1), (2.0, float("inf")), (200.0, 0.0)])
def test_whisper_unusable_times_leave_bounds_unknown(audio_time, busy):
    f = whisper_to_fields(whisper.Transcription(text="x", audio_time=audio_time, transcription_time=busy), now_s=100.0)
    assert f.start == 0.0 and f.end == 0.0 and f.is_final
