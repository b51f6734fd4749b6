"""Labelled bags as training recordings (issue 10): what a robot recorded, windowed as the node windows it.

Users record their robot's camera, microphone and speech-to-text topics with the labels of each utterance on
the ground-truth topic (``/ground_truth/emotion``, ``EmotionState``: what ``synctva make-bag`` writes and what
``synctva evaluate BAG`` scores against). A folder of such bags per split is a source of recordings for the
feature cache and for ``synctva train``, like MELD.Raw's clips:

* layout: ``ROOT/{split}/`` holding rosbag2 recordings (directories with ``metadata.yaml``, ``.mcap`` or
  ``.db3`` files), e.g. ``robot_bags/train/``, ``robot_bags/dev/``;
* each bag is windowed exactly as the node windows the replayed bag
  (:func:`~synctva_ros.bags.reader.iter_windows_from_bag`, the configured windowing and topics), and each
  window takes the ground-truth label that matches it (:func:`~synctva_ros.bags.reader.match_label`: by
  utterance id, else the utterance overlapping it most); windows without a label, or with a class the model
  does not have, are skipped and counted;
* a window becomes an :class:`~synctva_ros.datasets.utterance.Utterance` (dialogue = the bag's stem and the
  window's dialogue id or windower session, in emission order; speaker = the ROS4HRI person, else the voice)
  and its media a :class:`~synctva_ros.datasets.meld_raw.ClipMedia`: the window's audio at
  ``features.audio_sample_rate`` and its frames sampled as the visual extractor samples a window
  (``features.visual_fps``, at most ``features.max_frames``).

Media are produced lazily in the order the cache asks for them (one pass over each bag), so an hour of camera
never sits in memory. The identity (bags' names and sizes, windowing, topics, rates) is part of the cache key.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from synctva_ros.bags.reader import ground_truth_from_bag, is_bag, iter_windows_from_bag, match_label
from synctva_ros.config import SyncTVAConfig
from synctva_ros.core.window import UtteranceWindow
from synctva_ros.datasets.meld_raw import ClipMedia
from synctva_ros.datasets.utterance import Utterance
from synctva_ros.features.dialogue import window_speaker
from synctva_ros.features.visual import window_frames

__all__ = ["BAG_SOURCE", "BagRecordings", "bag_split_dir", "read_bag_recordings"]

log = logging.getLogger(__name__)

#: ``source`` of caches built from labelled bags (their header's ``speech``).
BAG_SOURCE = "bags"


def bag_split_dir(root: str | os.PathLike[str], split: str) -> Path | None:
    """``ROOT/split`` when it holds at least one rosbag2 recording, else ``None``."""
    d = Path(root).expanduser() / split
    if d.is_dir() and any(is_bag(p) for p in d.iterdir()):
        return d
    return None


def _media(w: UtteranceWindow, fps: float, max_frames: int) -> ClipMedia:
    chosen = window_frames(w, fps, max_frames)
    frames = np.stack([f.image for f in chosen]) if chosen else np.zeros((0, 0, 0, 3), np.uint8)
    return ClipMedia(np.asarray(w.audio, np.float32), int(w.sample_rate), frames,
                     np.asarray([f.stamp - w.start for f in chosen], np.float64), float(w.end - w.start))


@dataclasses.dataclass
class BagRecordings:
    """The labelled windows of a split's bags: a clip source for :func:`~synctva_ros.datasets.cache.build_cache`.

    Attributes:
        split: the split name (the folder's name).
        bags: the recordings, sorted by name.
        utterances: one per labelled window, in bag then emission order; ``meta`` has ``bag`` and ``window``
            (its index among the bag's windows).
        unlabelled: windows without a matching label or with a class outside ``class_names``.
        cfg: windowing, topics and rates the bags are read with.
    """

    split: str
    bags: list[Path]
    utterances: list[Utterance]
    unlabelled: int
    cfg: SyncTVAConfig
    _iter: Iterator[tuple[int, UtteranceWindow]] | None = dataclasses.field(default=None, repr=False)
    _bag: str = dataclasses.field(default="", repr=False)

    def identity(self) -> dict[str, Any]:
        """What decides the media (part of the cache key): bag names and sizes, windowing, topics, rates."""
        f = self.cfg.features
        return {"source": BAG_SOURCE, "bags": [{"name": b.name, "bytes": _size(b)} for b in self.bags],
                "windowing": dataclasses.asdict(self.cfg.windowing), "topics": dataclasses.asdict(self.cfg.topics),
                "sample_rate": int(f.audio_sample_rate), "fps": float(f.visual_fps), "max_frames": int(f.max_frames)}

    def _windows(self, bag: str) -> Iterator[tuple[int, UtteranceWindow]]:
        f = self.cfg.features
        return enumerate(iter_windows_from_bag(bag, self.cfg.windowing, f.audio_sample_rate, self.cfg.topics))

    def __call__(self, u: Utterance) -> ClipMedia | None:
        """The media of ``u``'s window (one forward pass over its bag when asked in order; a restart otherwise)."""
        bag, index = str(u.meta["bag"]), int(u.meta["window"])
        for _ in range(2):
            if self._iter is None or self._bag != bag:
                self._iter, self._bag = self._windows(bag), bag
            for i, w in self._iter:
                if i == index:
                    f = self.cfg.features
                    return _media(w, f.visual_fps, f.max_frames)
                if i > index:
                    break
            self._iter = None  # asked out of order: read the bag again from its start
        return None

    def counts(self) -> dict[str, int]:
        """``{"bags", "windows", "labelled", "unlabelled"}``."""
        n = len(self.utterances)
        return {"bags": len(self.bags), "windows": n + self.unlabelled, "labelled": n, "unlabelled": self.unlabelled}

    def summary(self) -> str:
        """One line: bags, labelled windows, skipped windows."""
        c = self.counts()
        return (f"bags {self.split}: {c['bags']} recordings, {c['windows']} windows, {c['labelled']} labelled, "
                f"{c['unlabelled']} without a usable label")


def _size(p: Path) -> int:
    return sum(q.stat().st_size for q in p.rglob("*") if q.is_file()) if p.is_dir() else p.stat().st_size


def read_bag_recordings(root: str | os.PathLike[str], split: str, dataset: str, cfg: SyncTVAConfig,
                        class_names: Sequence[str] | None = None) -> BagRecordings:
    """Window and label every bag in ``ROOT/split`` (one pass; the media are decoded again, lazily, for the cache).

    Args:
        root: the folder of splits; split: its subfolder holding the bags.
        dataset: ``meld`` or ``iemocap`` (the class set the labels must belong to, and the utterances' dataset).
        cfg: windowing, topics and feature rates (``features.audio_sample_rate``, ``visual_fps``, ``max_frames``).
        class_names: the model's classes (default ``cfg.model.class_names``).

    Returns:
        :class:`BagRecordings`.

    Raises:
        FileNotFoundError: ``ROOT/split`` holds no bag.
    """
    d = bag_split_dir(root, split)
    if d is None:
        raise FileNotFoundError(f"no rosbag2 recordings in {Path(root) / split} (expected ROOT/{split}/<bag>)")
    names = set(class_names or cfg.model.class_names)
    bags = sorted(p for p in d.iterdir() if is_bag(p))
    out = BagRecordings(split, bags, [], 0, cfg)
    for bag in bags:
        truth = ground_truth_from_bag(bag)
        by_id = {g.utterance_id: g for g in truth if g.utterance_id}
        counters: dict[str, int] = {}
        for i, w in out._windows(str(bag)):
            label = match_label(w, truth, by_id)
            if label is None or label not in names:
                out.unlabelled += 1
                continue
            dialogue = f"{bag.stem}/{w.dialogue_id or f'session{w.session}'}"
            k = counters.get(dialogue, 0)
            counters[dialogue] = k + 1
            out.utterances.append(Utterance(dataset, split, dialogue, k, f"{dialogue}_{k}", window_speaker(w),
                                            (w.transcript or "").strip(), label, float(w.start), float(w.end),
                                            meta={"bag": str(bag), "window": i}))
    log.info("%s", out.summary())
    return out
