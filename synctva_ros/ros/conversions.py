"""Message <-> core conversions for the node (the only place that knows both sides).

Decoding of pixels and samples is done by the ROS-free, pure functions of
:mod:`synctva_ros.core.codecs` (which honour ``step``, ``encoding`` and
``is_bigendian``); this module only takes the fields out of the messages, checks
what the message definitions promise (``msg/*.msg``), and builds the outgoing
``synctva_ros/EmotionState`` from an :class:`~synctva_ros.emotion.EmotionResult`.

Times: ROS ``builtin_interfaces/Time`` <-> float seconds (REP-103, sensor time).

Errors: :class:`~synctva_ros.core.inputs.InputError` (a ``ValueError``; re-exported here with
:class:`~synctva_ros.core.inputs.TranscriptFields`) for every message the node must
reject before the windower; it carries a short ``kind`` used as the diagnostics
counter name. Everything else (order, time resets, empty transcripts, unknown
bounds) is left to the windower, which the offline bag reader drives the same way.
"""

from __future__ import annotations

import math

import numpy as np
from builtin_interfaces.msg import Time
from std_msgs.msg import Header

from synctva_ros.emotion import EmotionResult
from synctva_ros.msg import EmotionState
from synctva_ros.core.codecs import (
    MAX_CHANNELS,
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    AudioDecodeError,
    ImageDecodeError,
    audio_chunk_to_float,
    check_image_layout,
    image_to_rgb,
    seconds_to_stamp,
    stamp_to_seconds,
)
from synctva_ros.core.inputs import MAX_TRANSCRIPT_CHARS, InputError, TranscriptFields, clip_text
from synctva_ros.core.modalities import MODALITIES

__all__ = [
    "InputError",
    "MAX_TRANSCRIPT_CHARS",
    "MIN_SAMPLE_RATE",
    "MAX_SAMPLE_RATE",
    "MAX_CHANNELS",
    "TranscriptFields",
    "seconds_to_time",
    "time_to_seconds",
    "image_msg_to_rgb",
    "image_msg_stamp",
    "audio_msg_to_samples",
    "transcript_msg_to_fields",
    "string_msg_to_fields",
    "result_to_msg",
]


# ------------------------------------------------------------------ time
def time_to_seconds(stamp: Time) -> float:
    """``builtin_interfaces/Time`` -> float seconds (REP-103).

    Delegates to :func:`synctva_ros.core.codecs.stamp_to_seconds` so the node
    and the offline bag reader turn stamps into the same floats.
    """
    return float(stamp_to_seconds(stamp))


def seconds_to_time(seconds: float) -> Time:
    """Float seconds -> ``builtin_interfaces/Time`` (nanoseconds rounded to nearest).

    Raises:
        ValueError: ``seconds`` is negative, NaN or infinite (ROS time is unsigned
            seconds since the epoch / since the start of sim time).
    """
    if not math.isfinite(seconds) or seconds < 0.0:
        raise ValueError(f"cannot express {seconds!r} s as builtin_interfaces/Time")
    sec, nanosec = seconds_to_stamp(seconds)
    if sec > 2**31 - 1:
        raise ValueError(f"{seconds!r} s overflows builtin_interfaces/Time.sec (int32)")
    return Time(sec=int(sec), nanosec=int(nanosec))


# ----------------------------------------------------------------- input
def image_msg_stamp(msg) -> float:
    """Stamp (seconds) of a ``sensor_msgs/Image`` whose layout fields are valid, without decoding pixels.

    For frames the node will not decode (thinned to ``windowing.frame_keep_hz``): a malformed
    frame is still rejected and counted like one that is decoded.

    Raises:
        InputError(kind="bad_image"): what :func:`~synctva_ros.core.codecs.check_image_layout` rejects.
    """
    try:
        check_image_layout(int(msg.height), int(msg.width), str(msg.encoding), int(msg.step), msg.data)
    except ImageDecodeError as exc:
        raise InputError("bad_image", f"image rejected: {exc}") from None
    return time_to_seconds(msg.header.stamp)


def image_msg_to_rgb(msg) -> tuple[float, np.ndarray]:
    """``sensor_msgs/Image`` -> ``(stamp_s, (H, W, 3) uint8 RGB)``.

    Raises:
        InputError(kind="bad_image"): unknown encoding, wrong ``step``, size mismatch
            (anything :func:`~synctva_ros.core.codecs.image_to_rgb` rejects).
    """
    try:
        rgb = image_to_rgb(int(msg.height), int(msg.width), str(msg.encoding), bool(msg.is_bigendian),
                           int(msg.step), msg.data)
    except ImageDecodeError as exc:
        raise InputError("bad_image", f"image rejected: {exc}") from None
    return time_to_seconds(msg.header.stamp), rgb


def audio_msg_to_samples(msg) -> tuple[float, np.ndarray, int]:
    """``synctva_ros/AudioChunk`` -> ``(stamp_s of the first sample, (S,) float32 mono, sample_rate Hz)``.

    Raises:
        InputError(kind="bad_audio"): sample rate outside 8000..192000 Hz, channels
            outside 1..32, undecodable bytes (unknown encoding, length not a whole number
            of frames), or NaN samples (F32LE infinities are clipped to ±1 by the decoder).
        InputError(kind="empty_audio"): a chunk without samples.
    """
    rate = int(msg.sample_rate)
    try:  # the offline bag reader's check and decoder: both accept and reject the same chunks
        samples = audio_chunk_to_float(rate, int(msg.channels), str(msg.encoding), msg.data)
    except AudioDecodeError as exc:
        raise InputError("bad_audio", f"audio rejected: {exc}") from None
    if samples.size == 0:
        raise InputError("empty_audio", "audio rejected: empty chunk")
    if not np.isfinite(samples).all():
        raise InputError("bad_audio", f"audio rejected: {int((~np.isfinite(samples)).sum())} non-finite samples")
    return time_to_seconds(msg.header.stamp), samples, rate


def transcript_msg_to_fields(msg) -> TranscriptFields:
    """``synctva_ros/Transcript`` -> :class:`TranscriptFields`, times passed through unchanged.

    Unknown bounds (zero ``start``/``end``, msg/Transcript.msg) are resolved by the
    windower exactly as for a bag read offline (:func:`synctva_ros.bags.reader.windows_from_bag`),
    so the node adds the same values the bag reader does. Text longer than
    :data:`MAX_TRANSCRIPT_CHARS` is truncated (``truncated=True``). Raises nothing.
    """
    text, truncated = clip_text(str(msg.text))
    return TranscriptFields(text=text, start=time_to_seconds(msg.start), end=time_to_seconds(msg.end),
                            is_final=bool(msg.is_final), stamp=time_to_seconds(msg.header.stamp),
                            utterance_id=str(msg.utterance_id), dialogue_id=str(msg.dialogue_id),
                            language=str(msg.language), confidence=float(msg.confidence),
                            speaker_id=str(msg.speaker_id), truncated=truncated)


def string_msg_to_fields(msg, now_s: float) -> TranscriptFields:
    """``std_msgs/String`` (fallback speech-to-text) -> a final :class:`TranscriptFields`.

    The message has no header: it is stamped on arrival with ``now_s`` (the node
    clock, so ``use_sim_time`` applies); start and end are 0.0 (unknown), as the bag
    reader adds them with the bag's receive time. Raises nothing.
    """
    text, truncated = clip_text(str(msg.data))
    return TranscriptFields(text=text, start=0.0, end=0.0, is_final=True, stamp=float(now_s), truncated=truncated)


# ---------------------------------------------------------------- output
def result_to_msg(result: EmotionResult, latency_s: float, *, frame_id: str = "", dialogue_id: str = "",
                  voice_id: str = "", person_id: str = "", face_id: str = "") -> EmotionState:
    """:class:`~synctva_ros.emotion.EmotionResult` -> ``synctva_ros/EmotionState``.

    ``header.stamp`` = window end (sensor time); the modality arrays follow
    :data:`~synctva_ros.core.modalities.MODALITIES` (text, audio, visual); a modality
    missing from a result's dicts counts as absent/inactive with contribution 0.
    ``text_probabilities``, ``audio_probabilities``, ``visual_probabilities`` carry
    ``result.modality_probabilities`` (empty where the modality gave none);
    ``faces_seen`` is clipped to the ``uint16`` range. ``frame_id``, ``voice_id``, ``person_id`` and
    ``face_id`` (REP-155 ids, '' unknown) are copied as given: :func:`synctva_ros.core.persons.emotion_ids`
    makes them by the node's policy.

    Raises:
        ValueError: window bounds not expressible as ROS time (negative / NaN), or
            ``class_names`` and ``probabilities`` (or a modality's probabilities) of different lengths.
    """
    if len(result.class_names) != len(result.probabilities):
        raise ValueError(f"{len(result.class_names)} class names but {len(result.probabilities)} probabilities")
    per_modality = {m: [float(p) for p in result.modality_probabilities.get(m, ())] for m in MODALITIES}
    bad = {m: len(v) for m, v in per_modality.items() if v and len(v) != len(result.class_names)}
    if bad:
        raise ValueError(f"{len(result.class_names)} class names but modality probabilities of lengths {bad}")
    msg = EmotionState()
    msg.header = Header(stamp=seconds_to_time(result.end), frame_id=frame_id)
    msg.window_start = seconds_to_time(result.start)
    msg.window_end = seconds_to_time(result.end)
    msg.label = str(result.label)
    msg.label_index = int(result.index)
    msg.class_names = [str(c) for c in result.class_names]
    msg.probabilities = [float(p) for p in result.probabilities]
    msg.confidence = float(result.confidence)
    msg.valence = float(result.valence)
    msg.arousal = float(result.arousal)
    msg.modalities = list(MODALITIES)
    msg.present = [bool(result.present.get(m, False)) for m in MODALITIES]
    msg.active = [bool(result.active.get(m, False)) for m in MODALITIES]
    msg.contributions = [float(result.contributions.get(m, 0.0)) for m in MODALITIES]
    msg.text_probabilities = per_modality["text"]
    msg.audio_probabilities = per_modality["audio"]
    msg.visual_probabilities = per_modality["visual"]
    msg.faces_seen = int(min(max(int(result.faces_seen), 0), 65535))
    msg.face_track_id = int(result.face_track_id) if result.face_track_id >= 0 else -1
    msg.voice_id, msg.person_id, msg.face_id = str(voice_id), str(person_id), str(face_id)
    msg.transcript = str(result.transcript)
    msg.utterance_id = str(result.utterance_id)
    msg.dialogue_id = str(dialogue_id)
    msg.model = str(result.model)
    msg.backend = str(result.backend)
    msg.latency = float(max(0.0, latency_s))
    return msg
