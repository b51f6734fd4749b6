"""MELD.Raw reader: the MELD CSVs next to the per-utterance mp4 clips, decoded with PyAV (FFmpeg).

MELD's raw release (affective-meld.github.io, ``MELD.Raw.tar.gz``; Poria et al., ACL 2019) holds
``{split}_sent_emo.csv`` and one clip per utterance, ``dia{Dialogue_ID}_utt{Utterance_ID}.mp4``
(H.264 video, AAC audio), in one folder per split. The folder names are not the split names:

=====  ===============================  ==========================================================
split  folder in the release             also accepted (as unpacked by other tools / by hand)
=====  ===============================  ==========================================================
train  ``train_splits``                 ``train/train_splits``, ``train_splits_complete``, ``train``
dev    ``dev_splits_complete``          ``dev/dev_splits_complete``, ``dev_splits``, ``dev``
test   ``output_repeated_splits_test``  ``test/output_repeated_splits_test``, ``test_splits``, ``test``
=====  ===============================  ==========================================================

The test folder also holds clips named ``final_videos_testdia{D}_utt{U}.mp4``; that name is used when
the plain one is absent. macOS ``._dia*`` companions are never read (they are not clips).

Utterances whose clip is missing are left out of :attr:`MeldRawSplit.utterances` and counted in
:attr:`MeldRawSplit.missing` (MELD.Raw itself lacks a few, e.g. train ``dia125_utt3``); a clip that
does not decode is counted in :attr:`MeldRawSplit.unreadable` when it is decoded
(:meth:`MeldRawSplit.decode` returns ``None``). Nothing here raises for one bad clip.

Decoding (:func:`decode_clip`): the audio track to mono float32 at ``sample_rate`` Hz (libswresample
downmix and resampling); video frames sampled at ``fps`` frames per second of clip (target times
``(k + 0.5) / fps`` s, each taking the nearest decoded frame, as
:func:`synctva_ros.features.visual.sample_frames` does for windows), converted to RGB uint8.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from synctva_ros.datasets.meld import MELD_SPLIT_FILES, read_meld
from synctva_ros.datasets.utterance import Utterance

__all__ = ["MELD_RAW_DIRS", "ClipMedia", "ClipUnreadable", "MeldRawSplit", "clip_dir", "clip_name",
           "decode_clip", "read_meld_raw", "decoder_identity", "sampled_times"]

log = logging.getLogger(__name__)

#: Split -> clip folders tried in order (the release's own name first).
MELD_RAW_DIRS: dict[str, tuple[str, ...]] = {
    "train": ("train_splits", "train/train_splits", "train_splits_complete", "train"),
    "dev": ("dev_splits_complete", "dev/dev_splits_complete", "dev_splits", "dev"),
    "test": ("output_repeated_splits_test", "test/output_repeated_splits_test", "test_splits", "test"),
}
#: Alternative clip-name prefixes (the test folder's ``final_videos_test`` copies).
_ALT_PREFIXES = ("final_videos_test",)


class ClipUnreadable(RuntimeError):
    """A clip that PyAV cannot open or decode (corrupt, truncated, no audio or video stream)."""


@dataclass
class ClipMedia:
    """One decoded clip.

    Attributes:
        audio: ``(S,)`` float32 mono samples in [-1, 1] at ``sample_rate`` Hz (``S = 0`` without audio).
        sample_rate: Hz.
        frames: ``(K, H, W, 3)`` uint8 RGB frames sampled at the requested rate.
        frame_times: ``(K,)`` float64, each frame's time in seconds from the clip's start.
        duration_s: clip length in seconds (the longer of the audio and the video streams).
        video_fps: the video stream's average frame rate (frames per second; ``nan`` when unknown).
        n_video_frames: video frames decoded (all of them, not only the sampled ones).
    """

    audio: np.ndarray
    sample_rate: int
    frames: np.ndarray
    frame_times: np.ndarray
    duration_s: float
    video_fps: float = float("nan")
    n_video_frames: int = 0

    @property
    def audio_s(self) -> float:
        """Audio length in seconds."""
        return self.audio.size / self.sample_rate if self.sample_rate else 0.0


def decoder_identity(sample_rate: int, fps: float, max_frames: int | None) -> dict[str, Any]:
    """What decides the decoded media (part of a feature cache's key): PyAV/FFmpeg versions and the rates."""
    import av  # deferred: PyAV is needed only by MELD.Raw users

    return {"source": "meld_raw", "decoder": "pyav", "pyav": av.__version__,
            "ffmpeg": {k: ".".join(map(str, v)) for k, v in sorted(av.library_versions.items())},
            "sample_rate": int(sample_rate), "fps": float(fps), "max_frames": max_frames, "downmix": "swr mono"}


def picked_frames(picked: Sequence[tuple[float, Any]], max_frames: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The decoded frames picked for the sampling targets, as arrays.

    Args:
        picked: ``(time in seconds, av.VideoFrame)`` per target, ascending; a frame nearest to several targets
            appears once per target and is kept once.
        max_frames: at most this many, spread evenly (``None``: no limit).

    Returns:
        ``(frames (K, H, W, 3) uint8 RGB, times (K,) float64 seconds)``; ``(0, 0, 0, 3)`` and ``(0,)`` when empty.
    """
    chosen: list[tuple[float, Any]] = []
    for p in picked:
        if not chosen or chosen[-1][1] is not p[1]:
            chosen.append(p)
    if max_frames is not None and len(chosen) > max_frames:
        chosen = [chosen[i] for i in np.linspace(0, len(chosen) - 1, max_frames).round().astype(int)]
    frames = (np.stack([f.to_ndarray(format="rgb24") for _, f in chosen]) if chosen
              else np.zeros((0, 0, 0, 3), np.uint8))
    return frames, np.asarray([t for t, _ in chosen], np.float64)


def _nearest(prev: tuple[float, Any] | None, cur: tuple[float, Any], target: float) -> tuple[float, Any]:
    if prev is None:
        return cur
    return prev if abs(prev[0] - target) <= abs(cur[0] - target) else cur


def decode_clip(path: str | os.PathLike[str], sample_rate: int = 16000, fps: float = 2.0,
                max_frames: int | None = None) -> ClipMedia:
    """Decode one clip's audio and sampled frames.

    Args:
        path: an mp4 (any container/codecs FFmpeg reads).
        sample_rate: output audio rate in Hz.
        fps: frames sampled per second of clip (> 0): target times ``(k + 0.5) / fps`` s for
            ``k = 0 .. ceil(duration * fps) - 1``, each the nearest decoded frame, duplicates dropped.
        max_frames: at most this many frames, spread evenly over the sampled ones (``None``: no limit).

    Returns:
        :class:`ClipMedia` (a clip without an audio stream has ``audio`` of size 0; without a video
        stream, ``frames`` of shape ``(0, 0, 0, 3)``).

    Raises:
        ClipUnreadable: the file cannot be opened or decoded, or has neither audio nor video.
        ValueError: ``fps`` <= 0 or ``sample_rate`` <= 0.
    """
    import av  # deferred: PyAV is needed only by MELD.Raw users

    if fps <= 0 or sample_rate <= 0:
        raise ValueError(f"fps ({fps}) and sample_rate ({sample_rate}) must be > 0")
    chunks: list[np.ndarray] = []
    picked: list[tuple[float, Any]] = []
    prev: tuple[float, Any] | None = None
    k, n_video, last_t, rate = 0, 0, 0.0, float("nan")
    try:
        with av.open(str(path)) as c:
            astreams, vstreams = list(c.streams.audio[:1]), list(c.streams.video[:1])
            if not astreams and not vstreams:
                raise ClipUnreadable(f"{path}: no audio or video stream")
            t0 = float(c.start_time) / av.time_base if c.start_time is not None else 0.0
            if vstreams and vstreams[0].average_rate:
                rate = float(vstreams[0].average_rate)
            res = av.AudioResampler(format="flt", layout="mono", rate=int(sample_rate))
            for packet in c.demux(*astreams, *vstreams):
                for frame in packet.decode():
                    if isinstance(frame, av.AudioFrame):
                        chunks += [f.to_ndarray().reshape(-1) for f in res.resample(frame)]
                        continue
                    t = (float(frame.time) - t0 if frame.time is not None
                         else n_video / (rate if rate > 0 else 25.0))  # no timestamps: the nominal rate
                    n_video += 1
                    cur = (t, frame)
                    while (k + 0.5) / fps < t:  # target k lies before this frame: prev or this one
                        picked.append(_nearest(prev, cur, (k + 0.5) / fps))
                        k += 1
                    prev, last_t = cur, t
            if astreams:
                chunks += [f.to_ndarray().reshape(-1) for f in res.resample(None)]
            audio = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
            video_s = last_t + (1.0 / rate if rate > 0 else 0.0) if n_video else 0.0  # nan > 0 is False
            duration = max(audio.size / sample_rate, video_s)
            if prev is not None and k / fps < duration:  # targets in the last frame's interval
                picked.append(prev)
            frames, times = picked_frames(picked, max_frames)
    except ClipUnreadable:
        raise
    except (av.error.FFmpegError, OSError, ValueError, EOFError, RuntimeError, IndexError) as exc:
        raise ClipUnreadable(f"{path}: {type(exc).__name__}: {exc}") from exc
    if n_video == 0 and audio.size == 0:
        raise ClipUnreadable(f"{path}: no audio samples or video frames decoded")
    return ClipMedia(audio, int(sample_rate), frames, times,
                     float(duration), rate, n_video)


def clip_dir(root: str | os.PathLike[str], split: str) -> Path:
    """The clip folder of ``split`` under ``root`` (first of :data:`MELD_RAW_DIRS` that exists).

    Raises:
        ValueError: unknown split; FileNotFoundError: none of the folders exists (the message lists them).
    """
    if split not in MELD_RAW_DIRS:
        raise ValueError(f"unknown MELD split '{split}' (known: {list(MELD_RAW_DIRS)})")
    for d in MELD_RAW_DIRS[split]:
        if (Path(root) / d).is_dir():
            return Path(root) / d
    raise FileNotFoundError(f"{root}: no clip folder for MELD split '{split}' (looked for {MELD_RAW_DIRS[split]})")


def clip_name(u: Utterance) -> str:
    """``dia{dialogue_id}_utt{utterance_index}.mp4``, MELD.Raw's clip name of an utterance."""
    return f"dia{u.dialogue_id}_utt{u.utterance_index}.mp4"


@dataclass
class MeldRawSplit:
    """A MELD.Raw split: utterances that have a clip, and what was skipped.

    Attributes:
        split: ``train``, ``dev`` or ``test``.
        clip_dir: the split's clip folder.
        utterances: the CSV's utterances (file order) whose clip exists; ``meta["clip"]`` is its path.
        missing: ``utterance_id`` of the CSV rows without a clip file.
        unreadable: ``utterance_id`` of clips that failed to decode so far (:meth:`decode`).
        sample_rate, fps, max_frames: how :meth:`decode` decodes (Hz, frames per second, cap or None).
    """

    split: str
    clip_dir: Path
    utterances: list[Utterance]
    missing: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    sample_rate: int = 16000
    fps: float = 2.0
    max_frames: int | None = None

    def identity(self) -> dict[str, Any]:
        """:func:`decoder_identity` of this split's decoding settings (a cache key part)."""
        return decoder_identity(self.sample_rate, self.fps, self.max_frames)

    def decode(self, u: Utterance) -> ClipMedia | None:
        """The clip of ``u`` decoded, or ``None`` (logged, counted in :attr:`unreadable`) when it fails."""
        path = u.meta.get("clip")
        if not path:
            return None
        try:
            return decode_clip(path, self.sample_rate, self.fps, self.max_frames)
        except ClipUnreadable as exc:
            if u.utterance_id not in self.unreadable:
                self.unreadable.append(u.utterance_id)
            log.warning("MELD.Raw %s: skipping unreadable clip of %s (%s)", self.split, u.utterance_id, exc)
            return None

    __call__ = decode

    def iter_clips(self) -> Iterator[tuple[Utterance, ClipMedia]]:
        """``(utterance, decoded clip)`` for every readable clip, in file order; logs :meth:`summary` at the end."""
        for u in self.utterances:
            clip = self.decode(u)
            if clip is not None:
                yield u, clip
        log.info("%s", self.summary())

    def counts(self) -> dict[str, int]:
        """``{"rows", "clips", "missing", "unreadable"}`` (rows = CSV rows read)."""
        return {"rows": len(self.utterances) + len(self.missing), "clips": len(self.utterances),
                "missing": len(self.missing), "unreadable": len(self.unreadable)}

    def summary(self) -> str:
        """One line: clips found, missing and unreadable (with the first few ids of each)."""
        c = self.counts()
        return (f"MELD.Raw {self.split} ({self.clip_dir}): {c['rows']} rows, {c['clips']} clips, "
                f"{c['missing']} missing {self.missing[:5]}, {c['unreadable']} unreadable {self.unreadable[:5]}")


def read_meld_raw(root: str | os.PathLike[str], split: str, csv: str | os.PathLike[str] | None = None,
                  sample_rate: int = 16000, fps: float = 2.0, max_frames: int | None = None,
                  strict_times: bool = False) -> MeldRawSplit:
    """Read a MELD.Raw split: its CSV (:func:`~synctva_ros.datasets.meld.read_meld`) and where its clips are.

    Args:
        root: the unpacked release (``{split}_sent_emo.csv`` and the clip folders).
        split: ``train``, ``dev`` or ``test``.
        csv: the split's CSV when it is not ``root/{split}_sent_emo.csv``.
        sample_rate, fps, max_frames: decoding settings kept for :meth:`MeldRawSplit.decode`.
        strict_times: a malformed ``StartTime``/``EndTime`` is an error (default: ``nan``; the
            published CSVs have a few).

    Returns:
        :class:`MeldRawSplit` (clips are not opened here; a missing one is counted, one-line log).

    Raises:
        ValueError: unknown split or a malformed CSV; FileNotFoundError: no CSV or no clip folder.
    """
    if split not in MELD_SPLIT_FILES:
        raise ValueError(f"unknown MELD split '{split}' (known: {list(MELD_SPLIT_FILES)})")
    d = clip_dir(root, split)
    rows = read_meld(Path(csv) if csv else Path(root) / MELD_SPLIT_FILES[split], split=split,
                     strict_times=strict_times)
    present = {p.name for p in d.iterdir() if p.suffix == ".mp4" and not p.name.startswith("._")}
    utts: list[Utterance] = []
    missing: list[str] = []
    for u in rows:
        name = clip_name(u)
        found = next((n for n in (name, *(p + name for p in _ALT_PREFIXES)) if n in present), None)
        if found is None:
            missing.append(u.utterance_id)
            continue
        utts.append(dataclasses.replace(u, meta={**u.meta, "clip": str(d / found)}))
    out = MeldRawSplit(split, d, utts, missing, sample_rate=int(sample_rate), fps=float(fps), max_frames=max_frames)
    if missing:
        log.warning("%s", out.summary())
    return out


def sampled_times(duration_s: float, fps: float) -> Sequence[float]:
    """The target times ``(k + 0.5) / fps`` (s) :func:`decode_clip` samples for a clip of ``duration_s`` s."""
    n = max(1, int(math.ceil(duration_s * fps)))
    return [min((k + 0.5) / fps, duration_s) for k in range(n)]
