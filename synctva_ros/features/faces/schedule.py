"""Faces of consecutive camera frames: the full detector on a schedule, tracked faces carried in between.

The MTCNN pyramid is most of the face stage's cost. A conversation partner moves little between two processed
frames (0.2 s apart at ``features.face_fps`` 5 Hz), so :class:`ScheduledFaces` runs the full detector only

* on the first processed frame of every detection slot: slots are ``every / fps`` seconds long on the
  sensor-time axis (``floor(stamp * fps / every)``), i.e. every ``every``-th processed frame
  (``features.face_detect_every``); slots of absolute time, not a frame count, so the streaming face cache
  and the batch extractor that re-runs a window's frames agree on which frames are detected;
* when no face is being tracked (a new face therefore waits at most one slot to be found);
* when time does not move forward (a repeated or earlier stamp: a restarted bag, a frame processed at
  window close out of order) or more than :data:`MAX_GAP_PERIODS` processing periods passed since the last
  frame (faces may have moved far);
* when a tracked face is lost: on the other frames each face seen in the previous frame is carried by
  MTCNN's O-net alone (:meth:`~.detect.MtcnnDetector.refine` on its last box); when O-net no longer sees a
  face there, or its box moved so far that it overlaps the last one by less than the tracker's IoU threshold,
  the full detector runs on this same frame instead.

Track ids come from the :class:`~.track.IouTracker` either way, so ids persist across carried and detected
frames, and a face the full detector no longer finds is dropped after the tracker's ``max_missed`` frames.
Faces that were missed in the previous frame are not carried; the next full detection may find them again.
A face that appears while others are being carried is found at the next slot (at most ``every / fps`` s).
With ``every`` 1 (or a detector without ``refine``) every frame is detected, as before.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Sequence

import numpy as np

from .detect import FaceBox, FaceDetector, find_faces
from .track import IouTracker, iou

__all__ = ["MAX_GAP_PERIODS", "ScheduledFaces"]

#: A gap between processed frames longer than this many periods (``1 / fps``) forces a full detection.
MAX_GAP_PERIODS = 2.0


class ScheduledFaces:
    """Detected-or-carried faces of a frame sequence, with track ids.

    Args:
        detector: the face detector; carrying needs its ``refine(image, boxes)`` (MTCNN has one).
        tracker: the IoU tracker that gives ids (shared with the owner, e.g. :class:`~.experts.VisualExpert`).
        every: full detection on every ``every``-th processed frame (>= 1; 1 = every frame).
        fps: processed frames per second (``features.face_fps``): the slot length is ``every / fps`` s.
        accept_crops: the crop rule of :func:`~.detect.find_faces` for detected frames.

    Attributes:
        counts: ``detected`` (full detector, scheduled or forced), ``carried`` (O-net only), ``lost``
            (a carried face lost, full detector run instead) frames so far.

    Raises:
        ValueError: ``every < 1`` or ``fps <= 0``.
    """

    def __init__(self, detector: FaceDetector, tracker: IouTracker, every: int = 1, fps: float = 5.0,
                 accept_crops: bool = False) -> None:
        if int(every) != every or every < 1 or not fps > 0:
            raise ValueError(f"every must be an integer >= 1 and fps > 0, got {every}, {fps}")
        self.detector, self.tracker, self.every, self.fps = detector, tracker, int(every), float(fps)
        self.accept_crops = accept_crops
        self.counts: Counter[str] = Counter()
        self._last: float | None = None  # stamp of the last processed frame, seconds
        self._slot: int | None = None  # slot of the last full detection
        self._frames = 0  # frames processed, for calls without a stamp

    def reset(self) -> None:
        """Forget the schedule (the next frame is detected); the tracker is reset by its owner."""
        self._last = self._slot = None

    def _slot_of(self, stamp: float) -> int:
        return math.floor(stamp * self.fps / self.every + 1e-9)

    def _due(self, stamp: float) -> bool:
        if self.every == 1 or not hasattr(self.detector, "refine") or self._last is None or self._slot is None:
            return True
        if not stamp > self._last or stamp - self._last > MAX_GAP_PERIODS / self.fps:
            return True
        return self._slot_of(stamp) != self._slot

    def __call__(self, image: np.ndarray, stamp: float | None = None) -> tuple[list[FaceBox], list[int]]:
        """The faces of the next frame and their track ids (the tracker advances by one frame).

        Args:
            image: ``(H, W, 3|4)`` uint8 RGB(A).
            stamp: sensor time, seconds; None: the frame count divided by ``fps`` (evenly spaced frames).

        Returns:
            ``(faces best first, track id per face)``.

        Raises:
            ValueError: not an RGB uint8 image (from :func:`~.detect.find_faces`).
        """
        t = float(self._frames / self.fps if stamp is None else stamp)
        self._frames += 1
        carried = self._carry(image, t)
        if carried is None:
            faces = find_faces(image, self.detector, self.accept_crops)
            self._slot = self._slot_of(t)
            self.counts["detected"] += 1
        else:
            faces = carried
            self.counts["carried"] += 1
        self._last = t
        return faces, self.tracker.update([f.as_list() for f in faces])

    def _carry(self, image: np.ndarray, t: float) -> list[FaceBox] | None:
        """The live tracks' faces refined in this frame; None when the full detector must run."""
        live = [tr for tr in self.tracker.tracks if tr.missed == 0]
        if not live or self._due(t):
            return None
        if image.ndim != 3 or image.shape[2] not in (3, 4) or image.dtype != np.uint8:
            return None  # find_faces raises the ValueError
        refine = getattr(self.detector, "refine")
        refined: Sequence[FaceBox | None] = refine(image, [tr.box for tr in live])
        if any(f is None or iou(f.as_list(), tr.box) < self.tracker.iou_threshold for f, tr in zip(refined, live)):
            self.counts["lost"] += 1
            return None
        return sorted((f for f in refined if f is not None), key=lambda f: -f.score)
