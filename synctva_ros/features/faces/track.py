"""Face track ids that persist across frames: greedy IoU association (the association step of SORT,
Bewley et al. 2016, without its Kalman motion model).

Each frame, the pairs (existing track, new box) are taken in decreasing IoU order; a pair with IoU >=
``iou_threshold`` continues that track (the track's box becomes the new box) when neither is taken yet.
Unmatched boxes start new tracks with the next id (ids count up from 1 and are never reused). A track not
matched for more than ``max_missed`` consecutive frames is dropped; until then it keeps its last box, so a
face missed by the detector for a frame or two keeps its id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["iou", "Track", "IouTracker"]


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two boxes ``(x1, y1, x2, y2)`` (pixels); 0 for empty boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


@dataclass
class Track:
    """One tracked face: id, last box ``(x1, y1, x2, y2)``, frames seen, consecutive frames missed."""

    track_id: int
    box: tuple[float, float, float, float]
    hits: int = 1
    missed: int = 0


class IouTracker:
    """Greedy IoU tracker.

    Args:
        iou_threshold: smallest IoU that continues a track (0 < t <= 1).
        max_missed: frames a track survives without a match.

    Raises:
        ValueError: a threshold out of range.
    """

    def __init__(self, iou_threshold: float = 0.3, max_missed: int = 5) -> None:
        if not 0.0 < iou_threshold <= 1.0 or max_missed < 0:
            raise ValueError(f"iou_threshold {iou_threshold} not in (0, 1] or max_missed {max_missed} < 0")
        self.iou_threshold, self.max_missed = iou_threshold, max_missed
        self.tracks: list[Track] = []
        self._next = 1

    def reset(self) -> None:
        """Forget every track (ids keep counting up)."""
        self.tracks = []

    def update(self, boxes: Sequence[Sequence[float]]) -> list[int]:
        """Associate this frame's boxes with the tracks.

        Args:
            boxes: ``(x1, y1, x2, y2)`` per detected face, pixels.

        Returns:
            The track id of each box, in the order given.
        """
        ids = [0] * len(boxes)
        pairs = sorted(((iou(t.box, b), ti, bi) for ti, t in enumerate(self.tracks) for bi, b in enumerate(boxes)),
                       reverse=True)
        used_t: set[int] = set()
        for v, ti, bi in pairs:
            if v < self.iou_threshold:
                break
            if ti in used_t or ids[bi]:
                continue
            t = self.tracks[ti]
            t.box, t.hits, t.missed = tuple(float(x) for x in boxes[bi][:4]), t.hits + 1, 0
            ids[bi] = t.track_id
            used_t.add(ti)
        for ti, t in enumerate(self.tracks):
            if ti not in used_t:
                t.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        for bi, b in enumerate(boxes):
            if not ids[bi]:
                self.tracks.append(Track(self._next, tuple(float(x) for x in b[:4])))
                ids[bi] = self._next
                self._next += 1
        return ids

    def boxes(self) -> np.ndarray:
        """``(T, 4)`` last boxes of the live tracks (those matched in the last frame first)."""
        live = sorted(self.tracks, key=lambda t: t.missed)
        return np.array([t.box for t in live], np.float32).reshape(-1, 4)
