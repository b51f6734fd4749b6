"""Make a rosbag2 test bag from MELD rows: real speech, a real face, transcripts and labels.

MELD (Poria et al., ACL 2019) ships text, labels and timing; its audio and
video cannot be had here, so each utterance is rendered as speech with
espeak-ng (:mod:`synctva_ros.datasets.speech`, one voice per speaker) and the
camera shows a real photograph of a face (``skimage.data.astronaut()``,
NASA, public domain) shifted by one pixel per frame (-1, 0, +1, ...) so
consecutive frames differ. With ``faces=LABELS.csv`` the camera is staged
instead: each utterance shows a labelled face photograph with the utterance's
emotion (:mod:`synctva_ros.bags.staged_faces`, recorded in the bag directory's
``staged_faces.json``).

Topics (absolute names; the node's relative defaults resolve to them):

==========================  ===============================  ==========================================
``/audio``                  ``synctva_ros/msg/AudioChunk``   16 kHz S16LE mono, ``chunk_s`` per message,
                                                             continuous (silence between utterances)
``/camera/image_raw``       ``sensor_msgs/msg/Image``        rgb8 ``size`` at ``fps``, continuous
``/speech``                 ``synctva_ros/msg/Transcript``   one final result per utterance, stamped
                                                             ``stt_latency_s`` after the speech end
``/ground_truth/emotion``   ``synctva_ros/msg/EmotionState`` the MELD label (one-hot), stamped at the end
==========================  ===============================  ==========================================

With ``audio_type="audio_stamped"`` the microphone is ``audio_common_msgs/AudioStamped`` on ``/audio``;
with ``speech_type="live_speech"`` the transcripts are ROS4HRI ``hri_msgs/LiveSpeech`` on
``/humans/voices/<voice id>/speech`` with the voices on ``/humans/voices/tracked``, and with ``persons``
a ROS4HRI person per speaker on ``/humans/persons/...`` (:mod:`synctva_ros.bags.hri`). The ground truth then
carries the utterance's ``voice_id`` and ``person_id`` (else the speaker as ``voice_id``, as the Transcript's
``speaker_id``).

Every message's bag (log) time equals its header stamp. Time starts at
:data:`EPOCH_NS` plus ``lead_in_s``; utterances follow one another with
``gap_s`` of silence. An utterance lasts ``EndTime - StartTime`` when that is
plausible (``min_utt_s`` .. ``max_utt_s``) and the speech is slowed or sped up
to fit it; otherwise (or when the speech cannot be made short enough) it lasts
as long as the rendered speech. The transcript and ground truth bounds are the
speech bounds. The same input gives byte-identical messages. These rendering
rules (:mod:`synctva_ros.datasets.rendering`) are the training feature cache's too.

Storage: ``mcap`` or ``sqlite3`` via rosbags 0.11; metadata ``version`` 9 (what
Jazzy and newer write) by default; pass ``version=8`` for ROS 2 Humble.
"""

from __future__ import annotations

import heapq
import logging
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from skimage.data import astronaut
from skimage.transform import resize

from synctva_ros.bags.hri import (AUDIO_TYPES, LATCHED_QOS, SPEECH_TYPES, TRACKED_PERIOD_S, audio_stamped_msg, hri_id,
                                  ids_list_msg, live_speech_msg, voice_speech_topic)
from synctva_ros.bags.staged_faces import choose_faces, frame_owner, staged_frames, write_staged
from synctva_ros.bags.types import get_synctva_typestore
from synctva_ros.core.persons import person_topic
from synctva_ros.datasets.meld import MELD_CLASSES, parse_srt_time, read_meld
from synctva_ros.datasets.rendering import MAX_UTT_S, MIN_UTT_S, plausible_duration, to_s16le
from synctva_ros.datasets.speech import render_speech

__all__ = [
    "EPOCH_NS", "TOPIC_AUDIO", "TOPIC_IMAGE", "TOPIC_TRANSCRIPT", "TOPIC_GROUND_TRUTH", "TOPIC_VOICES_TRACKED",
    "TOPIC_PERSONS_TRACKED",
    "MELD_CLASS_NAMES", "MeldRow", "read_meld_csv", "parse_meld_time", "face_image", "make_bag",
]

log = logging.getLogger(__name__)

#: Bag time of t = 0: 2024-01-01T00:00:00Z in nanoseconds (fixed, so output is deterministic).
EPOCH_NS = 1_704_067_200 * 1_000_000_000
TOPIC_AUDIO = "/audio"
TOPIC_IMAGE = "/camera/image_raw"
TOPIC_TRANSCRIPT = "/speech"
TOPIC_GROUND_TRUTH = "/ground_truth/emotion"
TOPIC_VOICES_TRACKED = "/humans/voices/tracked"
TOPIC_PERSONS_TRACKED = "/humans/persons/tracked"
#: MELD's seven emotions in the project's class order.
MELD_CLASS_NAMES: tuple[str, ...] = MELD_CLASSES


@dataclass(frozen=True)
class MeldRow:
    """One MELD utterance (CSV row)."""

    text: str
    speaker: str
    emotion: str
    dialogue_id: int
    utterance_id: int
    start_s: float | None
    end_s: float | None

    @property
    def uid(self) -> str:
        """Utterance id as used on topics: ``dia{D}_utt{U}``."""
        return f"dia{self.dialogue_id}_utt{self.utterance_id}"


def parse_meld_time(text: str) -> float | None:
    """``"HH:MM:SS,mmm"`` -> seconds; ``None`` when malformed (MELD has a few).

    Lenient form of :func:`synctva_ros.datasets.meld.parse_srt_time`.
    """
    try:
        return parse_srt_time(text)
    except (ValueError, TypeError):
        return None


def read_meld_csv(csv_path: str | Path, dialogues: Sequence[int] | None = None,
                  max_utterances: int | None = None) -> list[MeldRow]:
    """Rows of a MELD CSV (``Sr No., Utterance, Speaker, Emotion, ..., StartTime, EndTime``), file order.

    Read by :func:`synctva_ros.datasets.meld.read_meld` (malformed times become ``None``).

    Args:
        csv_path: the CSV file (UTF-8).
        dialogues: keep only these ``Dialogue_ID`` values (``None`` = all).
        max_utterances: keep at most this many rows (after the dialogue filter).

    Raises:
        FileNotFoundError: no such file. ValueError: a required column is missing or
            an emotion is not one of :data:`MELD_CLASS_NAMES`.
    """
    keep = None if dialogues is None else {int(d) for d in dialogues}
    rows: list[MeldRow] = []
    for u in read_meld(csv_path, strict_times=False):
        d = int(u.dialogue_id)
        if keep is not None and d not in keep:
            continue
        rows.append(MeldRow(u.text, u.speaker, u.label, d, u.utterance_index,
                            None if math.isnan(u.start_s) else u.start_s, None if math.isnan(u.end_s) else u.end_s))
        if max_utterances is not None and len(rows) >= max_utterances:
            break
    return rows


def face_image(size: tuple[int, int] = (640, 480)) -> np.ndarray:
    """``skimage.data.astronaut()`` fitted into ``size = (width, height)``, padded with black.

    Returns:
        ``(height, width, 3)`` uint8 RGB.
    """
    w, h = int(size[0]), int(size[1])
    img = astronaut()
    scale = min(w / img.shape[1], h / img.shape[0])
    nh, nw = max(1, int(round(img.shape[0] * scale))), max(1, int(round(img.shape[1] * scale)))
    small = (resize(img, (nh, nw), anti_aliasing=True, preserve_range=True) + 0.5).clip(0, 255).astype(np.uint8)
    out = np.zeros((h, w, 3), np.uint8)
    y0, x0 = (h - nh) // 2, (w - nw) // 2
    out[y0:y0 + nh, x0:x0 + nw] = small
    return out


def _time(ts: Any, ns: int) -> Any:
    return ts.types["builtin_interfaces/msg/Time"](sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def _header(ts: Any, ns: int, frame_id: str) -> Any:
    return ts.types["std_msgs/msg/Header"](stamp=_time(ts, ns), frame_id=frame_id)


def make_bag(csv_path: str | Path, out_path: str | Path, storage: str = "mcap",
             dialogues: Sequence[int] | None = None, max_utterances: int | None = None,
             fps: float = 30.0, size: tuple[int, int] = (640, 480), chunk_s: float = 0.02,
             gap_s: float = 0.8, lead_in_s: float = 0.5, tail_s: float = 1.0,
             stt_latency_s: float = 0.1, sample_rate: int = 16000, min_utt_s: float = MIN_UTT_S,
             max_utt_s: float = MAX_UTT_S, version: int = 9, overwrite: bool = False,
             faces: str | Path | None = None, faces_seed: int = 0, audio_type: str = "synctva",
             speech_type: str = "synctva", persons: bool = False) -> dict[str, Any]:
    """Write a rosbag2 bag of MELD utterances (see the module docstring for the topics).

    Args:
        csv_path: MELD CSV.
        out_path: bag directory to create.
        storage: ``"mcap"`` or ``"sqlite3"``.
        dialogues, max_utterances: row selection (:func:`read_meld_csv`).
        fps: camera frame rate (Hz). size: image ``(width, height)`` in pixels.
        chunk_s: audio chunk length (seconds). sample_rate: audio rate (Hz).
        gap_s: silence between utterances; lead_in_s / tail_s: before the first and after the last (seconds).
        stt_latency_s: transcript stamp minus speech end (seconds).
        min_utt_s, max_utt_s: MELD durations outside this range are not plausible (seconds; default
            :data:`~synctva_ros.datasets.rendering.MIN_UTT_S`, ``MAX_UTT_S``: 0.3, 30).
        version: rosbag2 metadata version, 9 (Jazzy+) or 8 (Humble).
        overwrite: replace an existing ``out_path``.
        faces: a labelled face set's CSV (``image,emotion``): stage the camera with a photograph of each
            utterance's emotion (:mod:`~synctva_ros.bags.staged_faces`); None: the astronaut throughout.
        faces_seed: seed of the photographs' choice.
        audio_type: ``"synctva"`` (``AudioChunk``) or ``"audio_stamped"`` (``audio_common_msgs/AudioStamped``).
        speech_type: ``"synctva"`` (``Transcript`` on ``/speech``) or ``"live_speech"`` (ROS4HRI, per voice).
        persons: with ``"live_speech"``: a ROS4HRI person per speaker (tracked list, latched ``voice_id``).

    Returns:
        Summary dict: ``path, storage, version, utterances, duration_s, start_ns,
        messages`` (per topic), ``utterance_ids``, ``bounds`` (per utterance
        ``(start_s, end_s)`` relative to the bag start), ``staged_faces`` (``{utterance id:
        {"image", "label"}}``, empty without ``faces``), ``voices`` and ``persons`` (speaker -> REP-155 id;
        empty unless written).

    Raises:
        ValueError: bad arguments or CSV, or no rows selected.
        FileExistsError: ``out_path`` exists and not ``overwrite``.
        EspeakNotFoundError: espeak-ng missing.
    """
    plugins = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
    if storage not in plugins:
        raise ValueError(f"storage must be 'mcap' or 'sqlite3', got {storage!r}")
    if audio_type not in AUDIO_TYPES or speech_type not in SPEECH_TYPES:
        raise ValueError(f"audio_type must be one of {list(AUDIO_TYPES)} and speech_type one of {list(SPEECH_TYPES)}, "
                         f"got {audio_type!r}, {speech_type!r}")
    if persons and speech_type != "live_speech":
        raise ValueError("persons needs speech_type 'live_speech' (ROS4HRI voices)")
    if version not in (8, 9):
        raise ValueError(f"version must be 8 (Humble) or 9 (Jazzy+), got {version}")
    if not fps > 0 or not chunk_s > 0 or sample_rate <= 0 or min(gap_s, lead_in_s, tail_s, stt_latency_s) < 0:
        raise ValueError("fps, chunk_s and sample_rate must be positive and the gaps non-negative")
    rows = read_meld_csv(csv_path, dialogues, max_utterances)
    if not rows:
        raise ValueError(f"no MELD rows selected from {csv_path} (dialogues={dialogues})")
    out = Path(out_path)
    if out.exists():
        if not overwrite:
            raise FileExistsError(f"{out} exists (pass overwrite=True to replace it)")
        shutil.rmtree(out)

    # ---- timeline: place each utterance's speech
    placements: list[tuple[MeldRow, int, np.ndarray]] = []  # (row, first sample, speech)
    cursor = int(round(lead_in_s * sample_rate))
    for row in rows:
        dur = None
        if row.start_s is not None and row.end_s is not None:
            dur = plausible_duration(row.end_s - row.start_s, min_utt_s, max_utt_s)
        speech = render_speech(row.text, row.speaker, dur, sample_rate)
        if speech.size == 0:
            speech = np.zeros(int(min_utt_s * sample_rate), np.float32)
            log.warning("utterance %s renders as silence", row.uid)
        placements.append((row, cursor, speech))
        span = max(speech.size, int(round((dur or 0.0) * sample_rate)))
        cursor += span + int(round(gap_s * sample_rate))
    total = cursor - int(round(gap_s * sample_rate)) + int(round(tail_s * sample_rate))
    pcm = np.zeros(total, np.int16)
    for _, first, speech in placements:
        pcm[first:first + speech.size] = to_s16le(speech)

    ts = get_synctva_typestore()
    T = ts.types
    face = face_image(size)
    staged = {} if faces is None else choose_faces([(r.uid, r.emotion) for r, _, _ in placements], faces, faces_seed)
    shown = staged_frames(staged, [r.uid for r, _, _ in placements], size, face) if staged else [face]
    starts_s = [first / sample_rate for _, first, _ in placements]
    width, height = int(size[0]), int(size[1])
    chunk = max(1, int(round(chunk_s * sample_rate)))
    ns_per_sample = 1e9 / sample_rate
    classes = list(MELD_CLASS_NAMES)

    def audio_msgs() -> Iterator[tuple[int, int, str, Any]]:
        for k, i in enumerate(range(0, total, chunk)):
            ns = EPOCH_NS + int(round(i * ns_per_sample))
            if audio_type == "audio_stamped":
                yield ns, 1, TOPIC_AUDIO, lambda ns=ns, i=i: audio_stamped_msg(
                    T, _header(ts, ns, "microphone"), pcm[i:i + chunk], sample_rate)
                continue
            yield ns, 1, TOPIC_AUDIO, lambda ns=ns, i=i: T["synctva_ros/msg/AudioChunk"](
                header=_header(ts, ns, "microphone"), sample_rate=sample_rate, channels=1, encoding="S16LE",
                data=pcm[i:i + chunk].view(np.uint8).copy())

    def image_msgs() -> Iterator[tuple[int, int, str, Any]]:
        n = int(math.floor(total / sample_rate * fps))
        for i in range(n + 1):
            ns = EPOCH_NS + int(round(i * 1e9 / fps))
            if ns >= EPOCH_NS + int(round(total * ns_per_sample)):
                break
            dx = i % 3 - 1  # -1, 0, +1 px: consecutive frames differ
            img = shown[frame_owner(i / fps, starts_s, gap_s)] if staged else face
            yield ns, 0, TOPIC_IMAGE, lambda ns=ns, dx=dx, img=img: T["sensor_msgs/msg/Image"](
                header=_header(ts, ns, "camera"), height=height, width=width, encoding="rgb8",
                is_bigendian=0, step=width * 3, data=np.roll(img, dx, axis=1).reshape(-1))

    bounds: list[tuple[float, float]] = []
    live = speech_type == "live_speech"
    voices = {r.speaker: hri_id("voice", r.speaker) for r, _, _ in placements} if live else {}
    people = {spk: hri_id("person", spk) for spk in voices} if persons else {}
    types = {TOPIC_AUDIO: AUDIO_TYPES[audio_type], TOPIC_IMAGE: "sensor_msgs/msg/Image",
             TOPIC_GROUND_TRUTH: "synctva_ros/msg/EmotionState"}
    types.update({voice_speech_topic(v): "hri_msgs/msg/LiveSpeech" for v in voices.values()} if live else
                 {TOPIC_TRANSCRIPT: "synctva_ros/msg/Transcript"})
    latched = {person_topic(p, "voice_id") for p in people.values()}
    types.update({TOPIC_VOICES_TRACKED: "hri_msgs/msg/IdsList"} if live else {})
    types.update({TOPIC_PERSONS_TRACKED: "hri_msgs/msg/IdsList"} if people else {})
    types.update(dict.fromkeys(latched, "std_msgs/msg/String"))

    def hri_msgs() -> Iterator[tuple[int, int, str, Any]]:
        """Tracked lists every TRACKED_PERIOD_S from the start; each person's voice id once, at the start."""
        for spk, pid in people.items():
            yield EPOCH_NS, 4, person_topic(pid, "voice_id"), lambda v=voices[spk]: T["std_msgs/msg/String"](data=v)
        end_ns = EPOCH_NS + int(round(total * ns_per_sample))
        for ns in range(EPOCH_NS, end_ns, int(TRACKED_PERIOD_S * 1e9)) if live else ():
            yield ns, 5, TOPIC_VOICES_TRACKED, lambda ns=ns: ids_list_msg(T, _header(ts, ns, ""), list(voices.values()))
            if people:
                yield ns, 5, TOPIC_PERSONS_TRACKED, lambda ns=ns: ids_list_msg(T, _header(ts, ns, ""),
                                                                              list(people.values()))

    def label_msgs() -> Iterator[tuple[int, int, str, Any]]:
        items = []
        for row, first, speech in placements:
            s_ns = EPOCH_NS + int(round(first * ns_per_sample))
            e_ns = EPOCH_NS + int(round((first + speech.size) * ns_per_sample))
            bounds.append(((s_ns - EPOCH_NS) * 1e-9, (e_ns - EPOCH_NS) * 1e-9))
            idx = classes.index(row.emotion)
            onehot = np.zeros(len(classes), np.float32)
            onehot[idx] = 1.0
            items.append((e_ns, 2, TOPIC_GROUND_TRUTH, lambda row=row, s=s_ns, e=e_ns, idx=idx, oh=onehot: T[
                "synctva_ros/msg/EmotionState"](
                header=_header(ts, e, "camera"), window_start=_time(ts, s), window_end=_time(ts, e),
                label=row.emotion, label_index=idx, class_names=classes, probabilities=oh, confidence=1.0,
                valence=0.0, arousal=0.0, modalities=["text", "audio", "visual"],
                present=np.ones(3, bool), active=np.zeros(3, bool), contributions=np.zeros(3, np.float32),
                text_probabilities=np.zeros(0, np.float32), audio_probabilities=np.zeros(0, np.float32),
                visual_probabilities=np.zeros(0, np.float32), faces_seen=0, face_track_id=-1,
                voice_id=voices.get(row.speaker, row.speaker), person_id=people.get(row.speaker, ""), face_id="",
                transcript=row.text, utterance_id=row.uid, dialogue_id=str(row.dialogue_id),
                model="ground_truth", backend="", latency=0.0)))
            t_ns = e_ns + int(round(stt_latency_s * 1e9))
            if live:  # a partial result half-way through the speech, then the final one (no bounds, no ids)
                words, topic = row.text.split(), voice_speech_topic(voices[row.speaker])
                items.append(((s_ns + e_ns) // 2, 3, topic, lambda m=(s_ns + e_ns) // 2, w=words: live_speech_msg(
                    T, _header(ts, m, "microphone"), incremental=" ".join(w[:max(1, len(w) // 2)]))))
                items.append((t_ns, 3, topic, lambda row=row, t=t_ns: live_speech_msg(
                    T, _header(ts, t, "microphone"), final=row.text)))
                continue
            items.append((t_ns, 3, TOPIC_TRANSCRIPT, lambda row=row, s=s_ns, e=e_ns, t=t_ns: T[
                "synctva_ros/msg/Transcript"](
                header=_header(ts, t, "microphone"), text=row.text, is_final=True, start=_time(ts, s),
                end=_time(ts, e), confidence=1.0, language="en", speaker_id=row.speaker,
                dialogue_id=str(row.dialogue_id), utterance_id=row.uid)))
        items.sort(key=lambda e: (e[0], e[1]))
        yield from items

    counts = dict.fromkeys(types, 0)
    writer = Writer(out, version=version, storage_plugin=plugins[storage])
    with writer:
        conns = {topic: writer.add_connection(topic, msgtype, typestore=ts,
                                              offered_qos_profiles=LATCHED_QOS if topic in latched else ())
                 for topic, msgtype in types.items()}
        for ns, _, topic, build in heapq.merge(image_msgs(), audio_msgs(), label_msgs(), hri_msgs(),
                                               key=lambda e: (e[0], e[1])):
            writer.write(conns[topic], ns, ts.serialize_cdr(build(), types[topic]))
            counts[topic] += 1
    if staged:
        write_staged(out, staged, faces, faces_seed)
    summary = {
        "path": str(out), "storage": storage, "version": version, "utterances": len(rows),
        "duration_s": total / sample_rate, "start_ns": EPOCH_NS, "messages": counts,
        "utterance_ids": [r.uid for r in rows], "bounds": bounds, "staged_faces": staged, "voices": voices,
        "persons": people,
    }
    log.info("wrote %s: %d utterances, %.1f s, %s", out, len(rows), total / sample_rate, counts)
    return summary
