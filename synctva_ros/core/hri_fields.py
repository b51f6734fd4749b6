"""Conversions of the common ROS 2 audio and speech messages into audio chunks and transcripts (ROS-free).

The node's own inputs (``synctva_ros/AudioChunk``, ``synctva_ros/Transcript``) are converted in
:mod:`synctva_ros.ros.conversions`; this module converts the de-facto standard ones a robot already
publishes, field by field from the packages' published definitions:

=========================================  ==========================================================
``audio_common_msgs/AudioStamped``         mgonzs13/audio_common 4.x: ``header`` + ``audio`` =
                                           ``Audio{audio_data: AudioData, info: AudioInfo}``
``audio_common_msgs/AudioData`` + info     on two topics; either mgonzs13's (``float32_data`` ...
                                           ``uint8_data`` + ``AudioInfo{format, channels, rate, chunk}``)
                                           or ros-drivers/audio_common's, the one released in rosdistro
                                           (``uint8[] data`` + ``AudioInfo{channels, sample_rate,
                                           sample_format, bitrate, coding_format}``); told apart by field
``hri_msgs/LiveSpeech``                    ROS4HRI (REP-155), hri_msgs >= 2.2.1: ``header``,
                                           ``incremental``, ``final``, ``confidence`` (float64, 0..1),
                                           ``locale`` (``en_GB``); topic ``/humans/voices/<voice_id>/speech``
``whisper_msgs/Transcription``             mgonzs13/whisper_ros 4.x: ``text``, ``audio_time`` and
                                           ``transcription_time`` (seconds), no header
=========================================  ==========================================================

The message packages themselves are never imported here (they may be missing: the node imports them,
:mod:`synctva_ros.ros.inputs`); every function reads only the fields named above, so the same code
serves the real packages, the stand-ins in ``third_party_msgs/`` (same names and type hashes) and the
messages ``rosbags`` decodes from a bag: the node (:mod:`synctva_ros.ros.inputs`) and the offline bag reader
(:mod:`synctva_ros.bags.reader`) convert them with these same functions.

Output: audio as ``(stamp_s of the first sample, (S,) float32 mono in [-1, 1], sample_rate Hz)``, exactly
what :func:`synctva_ros.ros.conversions.audio_msg_to_samples` returns; transcripts as
:class:`~synctva_ros.core.inputs.TranscriptFields`. Times are seconds (REP-103).

Errors: :class:`~synctva_ros.core.inputs.InputError` with ``kind`` ``bad_audio``, ``empty_audio``,
``no_audio_info`` (AudioData before any AudioInfo) or ``bad_transcript``.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from synctva_ros.core.codecs import MAX_CHANNELS, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, AudioDecodeError, \
    audio_chunk_to_float, stamp_to_seconds
from synctva_ros.core.inputs import InputError, TranscriptFields, clip_text

__all__ = [
    "MAX_VOICES",
    "PORTAUDIO_FORMATS",
    "ArrivalStamper",
    "voice_id_from_topic",
    "locale_to_bcp47",
    "audio_stamped_to_samples",
    "audio_data_to_samples",
    "live_speech_to_fields",
    "whisper_to_fields",
]

#: Most voices whose ``/humans/voices/<id>/speech`` is read (node subscriptions, bag reader); ids beyond are ignored.
MAX_VOICES = 64
#: PortAudio sample-format flags of mgonzs13's ``AudioInfo.format`` -> (``AudioData`` array field, dtype,
#: full scale, offset). paInt24 (4) has no array in ``AudioData`` and is refused.
PORTAUDIO_FORMATS: dict[int, tuple[str, str, float, float]] = {
    1: ("float32_data", "<f4", 1.0, 0.0),          # paFloat32
    2: ("int32_data", "<i4", 2147483648.0, 0.0),   # paInt32
    8: ("int16_data", "<i2", 32768.0, 0.0),        # paInt16
    16: ("int8_data", "i1", 128.0, 0.0),           # paInt8
    32: ("uint8_data", "u1", 128.0, 128.0),        # paUInt8 (offset binary, 128 = silence)
}
#: ros-drivers ``AudioInfo.sample_format`` (GStreamer names) -> ``AudioChunk`` encodings decoded by the codec.
_GST_FORMATS = {"S16LE": "S16LE", "S32LE": "S32LE", "F32LE": "F32LE"}
#: ros-drivers ``AudioInfo.coding_format`` values that carry raw PCM (``mp3`` needs a decoder: refused).
_RAW_CODINGS = {"", "wave", "wav", "pcm", "raw"}

_VOICE_TOPIC = re.compile(r"(?:^|/)humans/voices/([^/]+)/speech$")


def _seconds(stamp: Any) -> float:
    """``builtin_interfaces/Time`` (any object with ``sec``, ``nanosec``) -> float seconds."""
    return float(stamp_to_seconds(stamp))


def voice_id_from_topic(topic: str) -> str:
    """The voice id of a ROS4HRI speech topic: ``/robot/humans/voices/anna/speech`` -> ``"anna"``.

    REP-155 puts every voice's results on ``/humans/voices/<voice_id>/speech`` (a namespace may precede).

    Returns:
        The id, or ``""`` when ``topic`` is not of that form (e.g. a remapped ``speech`` topic).
    """
    m = _VOICE_TOPIC.search(str(topic).rstrip("/"))
    return m.group(1) if m else ""


def locale_to_bcp47(locale: str) -> str:
    """``LiveSpeech.locale`` (``en_GB``: ISO 639-1, underscore, ISO 3166-1) -> BCP-47 ``en-GB``.

    Already hyphenated tags pass unchanged; empty stays empty.
    """
    return str(locale).strip().replace("_", "-")


# ----------------------------------------------------------------------- audio
def _check_layout(rate: int, channels: int) -> None:
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise InputError("bad_audio", f"audio rejected: rate {rate} Hz outside [{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}]")
    if not 1 <= channels <= MAX_CHANNELS:
        raise InputError("bad_audio", f"audio rejected: channels {channels} outside [1, {MAX_CHANNELS}]")


def _finish(samples: np.ndarray) -> np.ndarray:
    if samples.size == 0:
        raise InputError("empty_audio", "audio rejected: empty chunk")
    if not np.isfinite(samples).all():
        raise InputError("bad_audio", f"audio rejected: {int((~np.isfinite(samples)).sum())} non-finite samples")
    return samples


def _portaudio_samples(audio_data: Any, info: Any) -> tuple[np.ndarray, int]:
    """mgonzs13 ``AudioData`` + ``AudioInfo`` -> ((S,) float32 mono in [-1, 1], rate Hz)."""
    fmt, rate, channels = int(info.format), int(info.rate), int(info.channels)
    if fmt not in PORTAUDIO_FORMATS:
        raise InputError("bad_audio", f"audio rejected: AudioInfo.format {fmt} is not a PortAudio format with an "
                                      f"AudioData array (1, 2, 8, 16, 32)")
    _check_layout(rate, channels)
    field, dtype, scale, offset = PORTAUDIO_FORMATS[fmt]
    x = np.asarray(getattr(audio_data, field), dtype=dtype).astype(np.float32)
    if x.size % channels:
        raise InputError("bad_audio", f"audio rejected: {x.size} {field} values is not a whole number of "
                                      f"{channels}-channel frames")
    if offset:
        x -= np.float32(offset)
    if scale != 1.0:
        x /= np.float32(scale)
    if channels > 1:
        x = x.reshape(-1, channels).mean(axis=1, dtype=np.float32)
    if fmt == 1:
        x = np.clip(x, -1.0, 1.0)  # NaN survives, rejected by _finish
    return np.ascontiguousarray(x, dtype=np.float32), rate


def audio_stamped_to_samples(msg: Any) -> tuple[float, np.ndarray, int]:
    """``audio_common_msgs/AudioStamped`` (mgonzs13/audio_common) -> ``(stamp_s, (S,) float32 mono, rate Hz)``.

    The samples are the ``audio.audio_data`` array that ``audio.info.format`` names (PortAudio flags,
    :data:`PORTAUDIO_FORMATS`), interleaved over ``audio.info.channels`` and mixed to mono by averaging;
    integers are scaled by their full scale (``2**15`` for int16), uint8 is offset binary. ``header.stamp``
    (taken by audio_capturer_node just before it reads the chunk) is used as the first sample's time.

    Raises:
        InputError(kind="bad_audio"): unknown format, rate outside 8000..192000 Hz, channels outside 1..32,
            values not a whole number of frames, or non-finite samples.
        InputError(kind="empty_audio"): no samples in the array ``format`` names.
    """
    samples, rate = _portaudio_samples(msg.audio.audio_data, msg.audio.info)
    return _seconds(msg.header.stamp), _finish(samples), rate


class ArrivalStamper:
    """Sensor times for header-less audio chunks (``AudioData``): contiguous while the stream is steady.

    A chunk's last sample is taken to have been captured on arrival (``now_s``), so its first sample at
    ``now_s - duration``. While that estimate stays within ``tolerance_s`` of the previous chunk's end, the
    chunk is placed right after it instead (no gaps or overlaps from delivery jitter); a larger gap (the
    microphone stopped, messages were lost) starts a new run at the estimate.

    Args:
        tolerance_s: largest jitter absorbed, seconds (default 0.2).
    """

    def __init__(self, tolerance_s: float = 0.2) -> None:
        self.tolerance_s = float(tolerance_s)
        self._end: float | None = None

    def stamp(self, now_s: float, duration_s: float) -> float:
        """Time of the first sample of a chunk of ``duration_s`` seconds that arrived at ``now_s`` (seconds)."""
        estimate = max(0.0, float(now_s) - float(duration_s))
        if self._end is not None and abs(estimate - self._end) <= self.tolerance_s:
            estimate = self._end
        self._end = estimate + float(duration_s)
        return estimate


def audio_data_to_samples(msg: Any, info: Any, now_s: float,
                          stamper: ArrivalStamper | None = None) -> tuple[float, np.ndarray, int]:
    """``audio_common_msgs/AudioData`` + the latest ``AudioInfo`` of its info topic -> audio chunk.

    Two packages of that name exist, told apart by their fields:

    * ros-drivers/audio_common (released in rosdistro for Humble..Kilted): ``AudioData{uint8[] data}``,
      ``AudioInfo{uint8 channels, uint32 sample_rate, string sample_format, uint32 bitrate,
      string coding_format}``; ``sample_format`` ``S16LE``/``S32LE``/``F32LE`` with raw ``coding_format``
      (``wave``; ``mp3`` is refused).
    * mgonzs13/audio_common: ``AudioData{float32_data, int32_data, int16_data, int8_data, uint8_data}``,
      ``AudioInfo{int32 format, channels, rate, chunk}`` (as in :func:`audio_stamped_to_samples`).

    ``AudioData`` has no header: the chunk is stamped on arrival by ``stamper`` (a fresh
    :class:`ArrivalStamper` per call if None, i.e. ``now_s - duration``).

    Raises:
        InputError(kind="no_audio_info"): ``info`` is None (no ``AudioInfo`` received yet).
        InputError(kind="bad_audio"): what the info declares cannot be decoded, or non-finite samples.
        InputError(kind="empty_audio"): no samples.
    """
    if info is None:
        raise InputError("no_audio_info", "audio rejected: no AudioInfo received yet on the info topic")
    if hasattr(msg, "data"):  # ros-drivers
        coding = str(getattr(info, "coding_format", "")).strip().lower()
        if coding not in _RAW_CODINGS:
            raise InputError("bad_audio", f"audio rejected: coding_format '{coding}' is not raw PCM (wave)")
        fmt = str(info.sample_format).strip().upper()
        if fmt not in _GST_FORMATS:
            raise InputError("bad_audio", f"audio rejected: sample_format '{info.sample_format}' not one of "
                                          f"{', '.join(_GST_FORMATS)}")
        rate, channels = int(info.sample_rate), int(info.channels)
        try:
            samples = audio_chunk_to_float(rate, channels, _GST_FORMATS[fmt], msg.data)
        except AudioDecodeError as exc:
            raise InputError("bad_audio", f"audio rejected: {exc}") from None
    else:  # mgonzs13
        samples, rate = _portaudio_samples(msg, info)
    samples = _finish(samples)
    stamp = (stamper or ArrivalStamper()).stamp(now_s, samples.size / rate)
    return stamp, samples, rate


# ------------------------------------------------------------------ transcripts
def live_speech_to_fields(msg: Any, voice_id: str = "") -> TranscriptFields:
    """``hri_msgs/LiveSpeech`` (REP-155) -> :class:`TranscriptFields`.

    A non-empty ``final`` is a final result (it closes an utterance window); otherwise ``incremental`` is
    a partial one (ignored for windowing). LiveSpeech has no utterance bounds: start and end are 0
    (unknown, resolved by the windower from ``header.stamp`` and voice activity). ``confidence`` is copied
    (NaN when outside [0, 1]); ``locale`` becomes a BCP-47 ``language``; ``voice_id`` (from the topic,
    :func:`voice_id_from_topic`) is the ``speaker_id``. Text longer than
    :data:`~synctva_ros.core.inputs.MAX_TRANSCRIPT_CHARS` is truncated. Raises nothing.
    """
    final = str(msg.final)
    is_final = bool(final.strip())
    text, truncated = clip_text(final if is_final else str(msg.incremental))
    conf = float(msg.confidence)
    conf = conf if math.isfinite(conf) and 0.0 <= conf <= 1.0 else float("nan")
    return TranscriptFields(text=text, start=0.0, end=0.0, is_final=is_final, stamp=_seconds(msg.header.stamp),
                            language=locale_to_bcp47(getattr(msg, "locale", "")), confidence=conf,
                            speaker_id=str(voice_id), truncated=truncated)


def whisper_to_fields(msg: Any, now_s: float) -> TranscriptFields:
    """``whisper_msgs/Transcription`` (whisper_ros) -> a final :class:`TranscriptFields`.

    whisper_node publishes one message per voice-activity segment, after transcribing it, with no header.
    Stamped on arrival (``now_s``, the node clock); the segment ended ``transcription_time`` seconds
    before that and lasted ``audio_time`` seconds, so ``end = now_s - transcription_time`` and
    ``start = end - audio_time`` (delivery delays not counted). Non-finite or negative times leave the
    bounds unknown (0.0). Raises nothing.
    """
    text, truncated = clip_text(str(msg.text))
    audio_s, busy_s, now = float(msg.audio_time), float(msg.transcription_time), float(now_s)
    start = end = 0.0
    if all(math.isfinite(v) and v >= 0.0 for v in (audio_s, busy_s)) and now - busy_s - audio_s > 0.0:
        end = now - busy_s
        start = end - audio_s
    return TranscriptFields(text=text, start=start, end=end, is_final=True, stamp=now, truncated=truncated)
