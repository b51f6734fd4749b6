"""IEMOCAP release reader: the evaluation and transcription files, per-utterance wavs, per-dialogue avis.

IEMOCAP (Busso et al., 2008; ``IEMOCAP_full_release``) holds five sessions of dyadic dialogues::

    Session{n}/dialog/EmoEvaluation/{dialog}.txt     labels and times (one block per evaluated turn)
    Session{n}/dialog/transcriptions/{dialog}.txt    transcripts
    Session{n}/sentences/wav/{dialog}/{utt}.wav      one wav per utterance (16 kHz mono PCM)
    Session{n}/dialog/avi/DivX/{dialog}.avi          one video per dialogue, both actors in view

An evaluation block starts with ``[6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5, 2.5, 2.5]``
(start and end in seconds of the dialogue, utterance name, consensus label, valence/activation/dominance);
the other lines (``% ...`` headers, ``C-E2: ...`` / ``A-F1: ...`` annotator details, blank lines) are
ignored. A transcription line reads ``Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.``; lines of
another shape (``M: [BREATHING]`` noises, blanks) are ignored. The speaker is the first letter after the
utterance name's last underscore (``..._F000`` -> ``F``). A ``root`` that only holds
``IEMOCAP_full_release/`` is accepted; ``._`` macOS companions are never read.

Kept: the six classes of the literature (:data:`~synctva_ros.datasets.iemocap.IEMOCAP_CLASSES`); other
labels (``xxx``, ``oth``, ``sur``, ``fea``, ``dis``) are counted per label in
:attr:`IemocapReleaseSplit.skipped`. A dialogue's kept utterances are ordered by start time (then name)
and numbered 0.. over the kept ones, as the COSMIC export read by :mod:`synctva_ros.datasets.iemocap`
numbers them, so ``utterance_id`` is ``{dialogue}_{index}`` in both readers.

Splits (:data:`IEMOCAP_RELEASE_SPLITS`): ``train`` sessions 1-4, ``test`` session 5 (the standard
protocol), ``all``, ``session1`` .. ``session5``. Session folders absent from ``root`` are skipped (logged).

Decoding (:meth:`IemocapReleaseSplit.decode`): the audio is the utterance's own wav, mono float32 at
``sample_rate`` Hz (PyAV, libswresample); the frames are the dialogue avi's segment
``[start_s, end_s]`` (seek to the keyframe before ``start_s``, decode to ``end_s``), sampled at ``fps``
frames per second (targets ``(k + 0.5) / fps`` s after the utterance's start, each the nearest decoded
frame inside the segment, as :func:`~synctva_ros.datasets.meld_raw.decode_clip` samples a clip), with
times in seconds from the utterance's start. A missing or unreadable wav or avi leaves that modality
absent and is counted; an utterance with neither decodes to ``None``. Nothing raises for one bad file.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from synctva_ros.datasets.iemocap import IEMOCAP_CLASSES
from synctva_ros.datasets.meld_raw import (ClipMedia, ClipUnreadable, decode_clip, decoder_identity, picked_frames,
                                         sampled_times)
from synctva_ros.datasets.utterance import Utterance

__all__ = ["IEMOCAP_RELEASE_SPLITS", "IemocapReleaseSplit", "read_iemocap_release", "read_evaluation",
           "read_transcriptions", "decode_segment", "release_identity", "release_root"]

log = logging.getLogger(__name__)

#: Split name -> session numbers.
IEMOCAP_RELEASE_SPLITS: dict[str, tuple[int, ...]] = {
    "train": (1, 2, 3, 4), "test": (5,), "all": (1, 2, 3, 4, 5), **{f"session{n}": (n,) for n in range(1, 6)}}

_NUM = r"(\d+(?:\.\d*)?)"
_EVAL = re.compile(rf"^\[\s*{_NUM}\s*-\s*{_NUM}\s*\]\s+(\S+)\s+(\S+)")
_TRANS = re.compile(rf"^(\S+)\s+\[\s*{_NUM}\s*-\s*{_NUM}\s*\]:\s?(.*)$")
_EPS = 1e-6


def release_identity(sample_rate: int, fps: float, max_frames: int | None) -> dict[str, Any]:
    """What decides the decoded media (a cache key part): :func:`~synctva_ros.datasets.meld_raw.decoder_identity`
    with ``source: iemocap_release`` (Hz, frames per second, frame cap or ``None``)."""
    return {**decoder_identity(sample_rate, fps, max_frames), "source": "iemocap_release",
            "video": "dialogue avi segment [start_s, end_s]"}


def read_evaluation(path: str | os.PathLike[str]) -> list[tuple[float, float, str, str]]:
    """``(start_s, end_s, utterance name, label)`` of every block of an ``EmoEvaluation`` file, file order.

    Raises:
        FileNotFoundError: missing file.
    """
    out = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            m = _EVAL.match(line.strip())
            if m:
                out.append((float(m[1]), float(m[2]), m[3], m[4]))
    return out


def read_transcriptions(path: str | os.PathLike[str]) -> dict[str, str]:
    """``{utterance name: transcript}`` of a ``transcriptions`` file (lines of another shape skipped).

    Raises:
        FileNotFoundError: missing file.
    """
    out: dict[str, str] = {}
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            m = _TRANS.match(line.strip())
            if m:
                out.setdefault(m[1], m[4].strip())
    return out


def _pick_frames(path: Any, frames: Iterator[Any], origin: float, dur: float, targets: list[float],
                 must_start_before: bool) -> tuple[list[tuple[float, Any]], int, bool]:
    """``(picked (time from origin, frame) per target, frames decoded, overshot)`` of frames in ``[0, dur]``
    after ``origin`` (s); ``overshot``: ``must_start_before`` and the first frame is already after ``origin``."""
    picked: list[tuple[float, Any]] = []
    prev: tuple[float, Any] | None = None
    k = n = 0
    for frame in frames:
        n += 1
        if frame.time is None:
            raise ClipUnreadable(f"{path}: video frames without timestamps")
        t = float(frame.time) - origin
        if n == 1 and must_start_before and t > _EPS:
            return [], n, True
        if t < -_EPS:
            continue
        if t > dur + _EPS:
            break
        cur = (max(t, 0.0), frame)
        while k < len(targets) and targets[k] < cur[0]:  # target k lies before this frame: prev or this one
            picked.append(cur if prev is None or abs(cur[0] - targets[k]) < abs(prev[0] - targets[k]) else prev)
            k += 1
        prev = cur
    if prev is not None and k < len(targets):  # targets after the segment's last frame
        picked.append(prev)
    return picked, n, False


def decode_segment(path: str | os.PathLike[str], start_s: float, end_s: float, fps: float = 2.0,
                   max_frames: int | None = None) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Frames of a video's segment ``[start_s, end_s]`` (seconds of the video), sampled at ``fps``.

    Seeks to the keyframe at or before ``start_s`` (decoding from the start only when the seek lands
    past it) and stops after ``end_s``: a long dialogue is not decoded whole for each utterance.

    Returns:
        ``(frames (K, H, W, 3) uint8 RGB, times (K,) float64 s from start_s, the stream's frame rate
        (frames per second, nan when unknown), frames decoded from the seek point)``; ``K`` is 0
        (frames ``(0, 0, 0, 3)``) when no frame lies in the segment.

    Raises:
        ClipUnreadable: the file cannot be opened or decoded, has no video stream, or frames lack times.
        ValueError: ``fps`` <= 0, or ``end_s`` < ``start_s``.
    """
    import av  # deferred: PyAV is needed only by users of recordings

    if fps <= 0 or not end_s >= start_s:
        raise ValueError(f"fps ({fps}) must be > 0 and end_s ({end_s}) >= start_s ({start_s})")
    dur = end_s - start_s
    targets = list(sampled_times(dur, fps))
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise ClipUnreadable(f"{path}: no video stream")
            s = c.streams.video[0]
            rate = float(s.average_rate) if s.average_rate else float("nan")
            t0 = float(c.start_time) / av.time_base if c.start_time is not None else 0.0
            plan = ("seek", "start") if start_s > 0 and s.time_base else ("start",)
            n = 0
            for attempt in plan:
                if attempt == "seek":
                    c.seek(int((t0 + start_s) / float(s.time_base)), stream=s, backward=True, any_frame=False)
                elif n:  # the seek landed past start_s: decode from the start
                    c.seek(0, stream=s, backward=True, any_frame=False)
                picked, n_new, overshot = _pick_frames(path, c.decode(s), t0 + start_s, dur, targets,
                                                       attempt == "seek")
                n += n_new
                if not overshot:
                    break
            frames, times = picked_frames(picked, max_frames)
    except ClipUnreadable:
        raise
    except (av.error.FFmpegError, OSError, ValueError, EOFError, RuntimeError, IndexError) as exc:
        raise ClipUnreadable(f"{path}: {type(exc).__name__}: {exc}") from exc
    return frames, times, rate, n


def release_root(root: str | os.PathLike[str]) -> Path:
    """``root``, or ``root/IEMOCAP_full_release`` when only that holds the ``Session*`` folders."""
    r = Path(root)
    inner = r / "IEMOCAP_full_release"
    return inner if not any(r.glob("Session[1-5]")) and inner.is_dir() else r


@dataclass
class IemocapReleaseSplit:
    """Sessions of the IEMOCAP release: the kept utterances and what was skipped.

    Attributes:
        split: a name of :data:`IEMOCAP_RELEASE_SPLITS`.
        root: the release folder (holding ``Session{n}/``).
        sessions: session numbers read (those of the split that exist under ``root``).
        utterances: kept utterances, dialogues in file-name order, each by start time; ``meta`` holds
            ``name`` (IEMOCAP's utterance name), ``wav`` / ``avi`` (paths, ``None`` when the file is
            missing) and ``session``.
        skipped: label -> evaluated utterances left out (not one of the six classes).
        missing_wav, missing_avi, untranscribed: ``utterance_id`` of kept utterances without a wav,
            without their dialogue's avi, without a transcription line (text ``""``).
        unreadable_wav, unreadable_avi: ``utterance_id`` whose wav / avi segment failed to decode so far.
        sample_rate, fps, max_frames: how :meth:`decode` decodes (Hz, frames per second, cap or None).
    """

    split: str
    root: Path
    sessions: tuple[int, ...]
    utterances: list[Utterance]
    skipped: dict[str, int] = field(default_factory=dict)
    missing_wav: list[str] = field(default_factory=list)
    missing_avi: list[str] = field(default_factory=list)
    untranscribed: list[str] = field(default_factory=list)
    unreadable_wav: list[str] = field(default_factory=list)
    unreadable_avi: list[str] = field(default_factory=list)
    sample_rate: int = 16000
    fps: float = 2.0
    max_frames: int | None = None

    def identity(self) -> dict[str, Any]:
        """:func:`release_identity` of this split's decoding settings (a cache key part)."""
        return release_identity(self.sample_rate, self.fps, self.max_frames)

    def _failed(self, bucket: list[str], u: Utterance, what: str, exc: Exception) -> None:
        if u.utterance_id not in bucket:
            bucket.append(u.utterance_id)
        log.warning("IEMOCAP %s: no %s for %s (%s)", self.split, what, u.utterance_id, exc)

    def decode(self, u: Utterance) -> ClipMedia | None:
        """The wav and the avi segment of ``u`` as a :class:`~synctva_ros.datasets.meld_raw.ClipMedia`.

        A missing or unreadable file leaves its modality empty (audio size 0 / frames ``(0, 0, 0, 3)``;
        counted); ``None`` when neither gives anything. ``duration_s`` is the longer of the wav and
        ``end_s - start_s`` seconds.
        """
        audio = np.zeros(0, np.float32)
        frames, times, rate, n = np.zeros((0, 0, 0, 3), np.uint8), np.zeros(0), float("nan"), 0
        if u.meta.get("wav"):
            try:
                audio = decode_clip(u.meta["wav"], self.sample_rate, self.fps).audio
            except ClipUnreadable as exc:
                self._failed(self.unreadable_wav, u, "audio", exc)
        if u.meta.get("avi"):
            try:
                frames, times, rate, n = decode_segment(u.meta["avi"], u.start_s, u.end_s, self.fps, self.max_frames)
            except (ClipUnreadable, ValueError) as exc:
                self._failed(self.unreadable_avi, u, "video", exc)
        if audio.size == 0 and len(frames) == 0:
            return None
        dur = max(audio.size / self.sample_rate, u.end_s - u.start_s)
        return ClipMedia(audio, self.sample_rate, frames, times, float(dur), rate, n)

    __call__ = decode

    def iter_clips(self) -> Iterator[tuple[Utterance, ClipMedia]]:
        """``(utterance, decoded media)`` for every utterance with audio or frames; logs :meth:`summary` at the end."""
        for u in self.utterances:
            clip = self.decode(u)
            if clip is not None:
                yield u, clip
        log.info("%s", self.summary())

    def counts(self) -> dict[str, Any]:
        """``{"evaluated", "utterances", "skipped" (total), "skipped_labels" ({label: n}), "missing_wav",
        "missing_avi", "untranscribed", "unreadable_wav", "unreadable_avi"}``."""
        n_skip = sum(self.skipped.values())
        return {"evaluated": len(self.utterances) + n_skip, "utterances": len(self.utterances), "skipped": n_skip,
                "skipped_labels": dict(sorted(self.skipped.items())),
                **{k: len(getattr(self, k)) for k in ("missing_wav", "missing_avi", "untranscribed",
                                                      "unreadable_wav", "unreadable_avi")}}

    def summary(self) -> str:
        """One line: sessions, utterances kept and skipped, files missing and unreadable (first few ids)."""
        c = self.counts()
        return (f"IEMOCAP release {self.split} (sessions {list(self.sessions)}, {self.root}): {c['evaluated']} "
                f"evaluated, {c['utterances']} kept, skipped {c['skipped_labels']}, {c['missing_wav']} without wav "
                f"{self.missing_wav[:5]}, {c['missing_avi']} without avi {self.missing_avi[:5]}, "
                f"{c['unreadable_wav']} unreadable wav, {c['unreadable_avi']} unreadable avi")


def _visible(folder: Path, suffix: str) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix == suffix and not p.name.startswith("._") and p.is_file())


def read_iemocap_release(root: str | os.PathLike[str], split: str, sample_rate: int = 16000, fps: float = 2.0,
                         max_frames: int | None = None) -> IemocapReleaseSplit:
    """Read the sessions of ``split`` from an IEMOCAP release folder (files are not decoded here).

    Args:
        root: ``IEMOCAP_full_release`` (or the folder holding it).
        split: ``train`` (sessions 1-4), ``test`` (5), ``all``, or ``session1`` .. ``session5``.
        sample_rate, fps, max_frames: decoding settings kept for :meth:`IemocapReleaseSplit.decode`
            (Hz, frames per second, frame cap or ``None``).

    Returns:
        :class:`IemocapReleaseSplit` (a one-line log when files are missing or sessions absent).

    Raises:
        ValueError: unknown split. FileNotFoundError: none of the split's ``Session{n}/dialog/EmoEvaluation``
        folders exists under ``root``.
    """
    if split not in IEMOCAP_RELEASE_SPLITS:
        raise ValueError(f"unknown IEMOCAP release split '{split}' (known: {list(IEMOCAP_RELEASE_SPLITS)})")
    base = release_root(root)
    wanted = IEMOCAP_RELEASE_SPLITS[split]
    sessions = tuple(n for n in wanted if (base / f"Session{n}" / "dialog" / "EmoEvaluation").is_dir())
    if not sessions:
        raise FileNotFoundError(f"{root}: no Session{{n}}/dialog/EmoEvaluation folder of IEMOCAP split '{split}' "
                                f"(sessions {list(wanted)})")
    if len(sessions) < len(wanted):
        log.warning("IEMOCAP release %s: sessions %s absent from %s", split,
                    [n for n in wanted if n not in sessions], base)
    out = IemocapReleaseSplit(split, base, sessions, [], sample_rate=int(sample_rate), fps=float(fps),
                              max_frames=max_frames)
    for n in sessions:
        sdir = base / f"Session{n}"
        for ev in _visible(sdir / "dialog" / "EmoEvaluation", ".txt"):
            dialogue = ev.stem
            tfile = sdir / "dialog" / "transcriptions" / f"{dialogue}.txt"
            texts = read_transcriptions(tfile) if tfile.is_file() else {}
            avi = sdir / "dialog" / "avi" / "DivX" / f"{dialogue}.avi"
            kept = []
            for start, end, name, label in read_evaluation(ev):
                if label in IEMOCAP_CLASSES:
                    kept.append((start, name, end, label))
                else:
                    out.skipped[label] = out.skipped.get(label, 0) + 1
            for i, (start, name, end, label) in enumerate(sorted(kept)):
                uid = f"{dialogue}_{i}"
                wav = sdir / "sentences" / "wav" / dialogue / f"{name}.wav"
                for ok, bucket in ((wav.is_file(), out.missing_wav), (avi.is_file(), out.missing_avi),
                                   (name in texts, out.untranscribed)):
                    if not ok:
                        bucket.append(uid)
                out.utterances.append(Utterance(
                    dataset="iemocap", split=split, dialogue_id=dialogue, utterance_index=i, utterance_id=uid,
                    speaker=name.rsplit("_", 1)[-1][:1], text=texts.get(name, ""), label=label, start_s=start,
                    end_s=end, meta={"name": name, "session": n, "wav": str(wav) if wav.is_file() else None,
                                     "avi": str(avi) if avi.is_file() else None}))
    if out.missing_wav or out.missing_avi or out.untranscribed:
        log.warning("%s", out.summary())
    return out
