"""Face observations computed while the utterance goes on, aggregated into the window's evidence at close.

The structure of :mod:`~synctva_ros.streaming.visual_cache`, on the same
:class:`~synctva_ros.streaming.stamp_store.StampStore`: frames offered by the windower are processed
(:meth:`~synctva_ros.features.faces.evidence.FaceEvidenceExtractor.observe`: detection, tracking, expression)
on a fixed grid of ``fps`` ticks per second (``features.face_fps``); each processed frame's observations are
cached by stamp (an empty list for a frame without a face), older than ``buffer_s`` dropped; a stamp more than
1 s before the grid (a restarted bag) clears the cache. At close the window's frames are thinned with the batch
rule (:func:`~synctva_ros.features.faces.evidence.thin_stamps`); each kept frame takes the cached observations
of that very frame (``face_hit``), else of the nearest cached frame within half the grid period
(``face_near``), else it is processed now (``face_miss``): only frames not yet processed run at close.
Bad frames (wrong shape or type, empty) are logged (the first, then every 100th) and counted
(``face_bad_frame``), never raised. Windows without a face count ``face_absent``.

Every face of every frame processed as it arrives also goes to :attr:`FaceEvidenceCache.on_observed` when set
(the node's per-face ``hri_msgs/Expression`` output, :mod:`synctva_ros.streaming.face_expressions`), so the
expressions of all tracked faces come from the same computation as the window's evidence, at no extra network
cost; frames processed only at window close (``face_miss``) are not reported there.

The expert (its tracker above all) is not thread-safe: one lock serialises the background thread's and the
closing thread's calls.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from typing import Callable

import numpy as np

from synctva_ros.core.window import UtteranceWindow
from synctva_ros.features.faces.evidence import (FaceEvidence, FaceEvidenceExtractor, FaceObservation, aggregate,
                                                 thin_stamps)
from synctva_ros.streaming.stamp_store import StampStore

__all__ = ["FaceEvidenceCache"]

log = logging.getLogger(__name__)


class FaceEvidenceCache:
    """Per-frame face observations by stamp, processed on a grid of ``ext.fps`` ticks per second.

    Args:
        ext: the batch face stage (its ``fps``, ``policy`` and ``observe`` are used).
        stats: the streaming cache's counters, incremented in place (``face_hit``, ``face_near``,
            ``face_miss``, ``face_bad_frame``, ``face_absent``, ``face_windows``).
        buffer_s: seconds of observations kept (before the newest processed frame).
        gap_tolerance_s: slack, in seconds, before a stamp earlier than the grid counts as time going back.

    Shapes:
        :meth:`add` ``image (H, W, 3)`` uint8 RGB; :meth:`evidence` -> ``probs (7,)`` over MELD's classes.
    """

    def __init__(self, ext: FaceEvidenceExtractor, stats: Counter[str], *, buffer_s: float,
                 gap_tolerance_s: float) -> None:
        self.ext = ext
        self.stats = stats
        self.buffer_s = float(buffer_s)
        self.gap_tolerance_s = float(gap_tolerance_s)
        self._run_lock = threading.Lock()  # the expert (detector, tracker, networks)
        #: Each processed frame's observations by stamp, on the grid of ``ext.fps`` ticks per second
        self.store: StampStore[list[FaceObservation]] = StampStore(1.0 / ext.fps, self.buffer_s,
                                                                  self.gap_tolerance_s, tick_slack_s=1e-9)
        #: Called as ``on_observed(stamp, observations)`` after each frame :meth:`add` processed (an empty list:
        #: no face), in the thread that processed it (the streaming thread in the node); must be quick. None: off.
        self.on_observed: Callable[[float, list[FaceObservation]], None] | None = None

    def __len__(self) -> int:
        """Processed frames cached now."""
        return len(self.store)

    def reset(self, gen: int) -> None:
        """Forget every observation, the tracks and the detection schedule; frames of a generation other than
        ``gen`` are ignored."""
        self.store.reset(gen)
        with self._run_lock:
            self.ext.expert.reset()

    def due(self, stamp: float) -> bool:
        """Whether a frame at ``stamp`` s is due for processing (advances the grid when it is)."""
        return self.store.due(stamp)

    def _observe(self, stamp: float, image: np.ndarray) -> list[FaceObservation] | None:
        """The frame's observations, None for a bad frame (logged and counted)."""
        try:
            with self._run_lock:
                return self.ext.observe(stamp, image)
        except ValueError as exc:
            self.stats["face_bad_frame"] += 1
            n = self.stats["face_bad_frame"]
            if n == 1 or n % 100 == 0:
                log.warning("face evidence: frame at %.3f s skipped (%d bad frames so far): %s", stamp, n, exc)
            return None

    def add(self, stamp: float, image: np.ndarray, gen: int) -> None:
        """Process the frame at ``stamp`` s and cache its observations, unless the cache was reset meanwhile
        (``gen`` no longer current); drops observations older than ``buffer_s``; then hands them to
        :attr:`on_observed`. Raises nothing for bad frames (an error of ``on_observed`` propagates)."""
        obs = self._observe(stamp, image)
        if obs is not None:
            self.store.put(stamp, obs, gen)
            listener = self.on_observed
            if listener is not None:
                listener(stamp, obs)

    def evidence(self, window: UtteranceWindow) -> FaceEvidence:
        """The evidence of a closed window: cached observations where there are, the rest processed now.

        Returns:
            :class:`~synctva_ros.features.faces.evidence.FaceEvidence` (``probs`` None: no face, or no frame).
        """
        frames = list(window.frames)
        chosen = [frames[i] for i in thin_stamps([f.stamp for f in frames], self.ext.fps)] if frames else []
        found = self.store.lookup([f.stamp for f in chosen], 0.5 / self.ext.fps)
        per_frame: list[list[FaceObservation] | None] = [o for o, _ in found]
        for _, how in found:
            if how != "miss":
                self.stats[f"face_{how}"] += 1
        bad = 0
        for k, f in enumerate(chosen):
            if per_frame[k] is None:
                self.stats["face_miss"] += 1
                per_frame[k] = self._observe(f.stamp, f.image)
                bad += per_frame[k] is None
        obs = [o for p in per_frame if p is not None for o in p]
        ev = aggregate(obs, self.ext.policy, frames=len(chosen) - bad, bad_frames=bad)
        self.stats["face_windows"] += 1
        if ev.probs is None:
            self.stats["face_absent"] += 1
        return ev
