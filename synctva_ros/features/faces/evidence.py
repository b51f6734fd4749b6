"""The visual evidence of one utterance window: the expression of the speaker's face over the window's frames.

Per window (:class:`FaceEvidenceExtractor`, the batch path; :mod:`synctva_ros.streaming.face_cache` computes
the same while the utterance goes on):

1. **Thinning**: the window's camera frames are thinned to ``fps`` (``features.face_fps``, default 5 Hz) by
   :func:`thin_stamps`: a frame is kept when its stamp reaches the next tick of a grid with period
   ``1 / fps`` started at the first kept frame.
2. **Faces**: every kept frame goes through the :class:`~.experts.VisualExpert` (MTCNN, IoU track ids that
   persist across frames and windows, face-api's expression network): one :class:`FaceObservation` per face,
   with its MELD-ordered log-probabilities. Cost settings for camera frames (:func:`build_face_evidence`):
   the full detector on every ``features.face_detect_every``-th processed frame, the tracked faces carried by
   MTCNN's O-net in between (:mod:`.schedule`); faces smaller than ``features.face_min_size`` of the frame's
   shorter side are not searched; networks in ``features.face_runtime``.
3. **The speaker's face** (``features.face_policy``, :func:`choose_track`): ``largest`` (default) takes the
   track with the largest mean box area over the window's frames (the person nearest the camera, usually
   the one the robot talks with); ``central`` takes the track whose mean box centre is nearest the image
   centre (a robot that turns its head towards the speaker), ties broken by area. Neither is an active-speaker
   detector: with two people in view and the listener larger or more central, the listener's face is used.
4. **Evidence** (:func:`aggregate`): the mean of the chosen track's per-frame log-probabilities, renormalised
   (a geometric mean of the frames' distributions: frames are treated as equally reliable views of one
   expression, and the mean rather than the sum keeps the evidence of a long window from growing with its
   frame count, since consecutive frames are far from independent). ``(7,)`` over MELD's classes
   (:data:`~.experts.MELD_ORDER`); ``None`` when no frame showed a face (the visual expert is then absent
   for the window, which is counted, not an error).

Bad frames (not ``(H, W, 3|4)`` uint8, or empty) raise ``ValueError`` from :func:`check_frame`; callers log,
count and skip them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from synctva_ros.core.window import UtteranceWindow
from .experts import VisualExpert
from .runtime import DEFAULT_RUNTIME
from .weights import FaceWeightsMissing

__all__ = ["FACE_POLICIES", "LOG_FLOOR", "DEFAULT_DETECT_EVERY", "DEFAULT_MIN_FACE_FRAC", "FaceObservation",
           "FaceEvidence", "check_frame", "thin_stamps", "choose_track", "aggregate", "FaceEvidenceExtractor",
           "build_face_evidence"]

log = logging.getLogger(__name__)

#: Speaker-face policies (``features.face_policy``).
FACE_POLICIES = ("largest", "central")
#: Probabilities are floored at this before the log (a face-api output of exactly 0 would make a class
#: impossible for the whole window).
LOG_FLOOR = 1e-12
#: Defaults of ``features.face_detect_every`` and ``features.face_min_size`` (chosen by measurement,
#: ``docs/results.md``).
DEFAULT_DETECT_EVERY = 3
DEFAULT_MIN_FACE_FRAC = 0.1


@dataclass(frozen=True)
class FaceObservation:
    """One face in one processed frame.

    Attributes:
        stamp: the frame's sensor time, seconds.
        track_id: IoU track id (>= 1).
        box: ``(x1, y1, x2, y2)`` image pixels.
        frame_hw: the frame's ``(height, width)`` in pixels.
        log_probs: ``(7,)`` float64 log-probabilities over :data:`~.experts.MELD_ORDER`.
    """

    stamp: float
    track_id: int
    box: tuple[float, float, float, float]
    frame_hw: tuple[int, int]
    log_probs: np.ndarray

    @property
    def area(self) -> float:
        """Box area, square pixels."""
        return max(self.box[2] - self.box[0], 0.0) * max(self.box[3] - self.box[1], 0.0)

    @property
    def off_centre(self) -> float:
        """Distance of the box centre from the image centre, as a fraction of the image diagonal (0..~0.5)."""
        h, w = self.frame_hw
        cx, cy = (self.box[0] + self.box[2]) / 2.0, (self.box[1] + self.box[3]) / 2.0
        return float(np.hypot(cx - w / 2.0, cy - h / 2.0) / max(np.hypot(w, h), 1e-9))


@dataclass
class FaceEvidence:
    """The visual evidence of one window.

    Attributes:
        probs: ``(7,)`` float64 over :data:`~.experts.MELD_ORDER` summing to 1, or ``None`` (no face).
        faces_seen: distinct track ids among the window's processed frames (>= 0).
        face_track_id: the chosen track's id, -1 when none.
        frames: frames processed for the window (bad ones excluded).
        frames_used: of those, frames in which the chosen track was seen.
        bad_frames: frames skipped as bad (wrong shape or type, empty).
        per_track: ``{track id: frames seen}``.
    """

    probs: np.ndarray | None
    faces_seen: int = 0
    face_track_id: int = -1
    frames: int = 0
    frames_used: int = 0
    bad_frames: int = 0
    per_track: dict[int, int] = field(default_factory=dict)


def check_frame(image: object) -> np.ndarray:
    """The frame as an array when it is a usable RGB(A) image.

    Raises:
        ValueError: not a numpy ``(H, W, 3|4)`` uint8 array with ``H, W > 0``.
    """
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] not in (3, 4) \
            or image.dtype != np.uint8 or image.shape[0] == 0 or image.shape[1] == 0:
        shape = getattr(image, "shape", None)
        raise ValueError(f"bad camera frame: expected (H, W, 3) uint8 RGB, got {shape} "
                         f"{getattr(image, 'dtype', type(image).__name__)}")
    return image


def thin_stamps(stamps: Sequence[float], fps: float) -> list[int]:
    """Indices of the frames kept at ``fps``: a frame is kept when its stamp reaches the next grid tick.

    Args:
        stamps: ascending sensor times, seconds.
        fps: kept frames per second (> 0).

    Returns:
        Ascending indices into ``stamps`` (the first frame is always kept).

    Raises:
        ValueError: ``fps <= 0``.
    """
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    period, tick, out = 1.0 / fps, -np.inf, []
    for i, s in enumerate(stamps):
        if s >= tick - 1e-9:
            out.append(i)
            tick = tick + period if np.isfinite(tick) and tick + period > s else s + period
    return out


def choose_track(observations: Sequence[FaceObservation], policy: str = "largest") -> int:
    """The speaker's track among a window's observations (see the module for the policies).

    Returns:
        The track id, -1 when there is no observation.

    Raises:
        ValueError: unknown policy.
    """
    if policy not in FACE_POLICIES:
        raise ValueError(f"unknown face policy {policy!r} (known: {FACE_POLICIES})")
    by_track: dict[int, list[FaceObservation]] = {}
    for o in observations:
        by_track.setdefault(o.track_id, []).append(o)
    if not by_track:
        return -1
    area = {t: float(np.mean([o.area for o in obs])) for t, obs in by_track.items()}
    if policy == "largest":
        return max(by_track, key=lambda t: (area[t], -t))
    off = {t: float(np.mean([o.off_centre for o in obs])) for t, obs in by_track.items()}
    return min(by_track, key=lambda t: (round(off[t], 6), -area[t], t))


def aggregate(observations: Sequence[FaceObservation], policy: str = "largest", frames: int = 0,
              bad_frames: int = 0) -> FaceEvidence:
    """A window's evidence from its observations (see the module).

    Args:
        observations: every face of every processed frame of the window.
        policy: one of :data:`FACE_POLICIES`.
        frames, bad_frames: processed and skipped frame counts, reported as given.

    Returns:
        :class:`FaceEvidence` (``probs`` None without observations).

    Shapes:
        each ``log_probs`` ``(7,)`` -> ``probs`` ``(7,)``.
    """
    tid = choose_track(observations, policy)
    per_track: dict[int, int] = {}
    for o in observations:
        per_track[o.track_id] = per_track.get(o.track_id, 0) + 1
    if tid < 0:
        return FaceEvidence(None, 0, -1, frames, 0, bad_frames, per_track)
    lp = np.mean([o.log_probs for o in observations if o.track_id == tid], axis=0)
    p = np.exp(lp - lp.max())
    return FaceEvidence(p / p.sum(), len(per_track), tid, frames, per_track[tid], bad_frames, per_track)


class FaceEvidenceExtractor:
    """Faces and their expressions per frame, and the evidence of a window (the batch path).

    Args:
        expert: the facial-expression expert (owns the detector and the IoU tracker).
        fps: frames processed per second of window (``features.face_fps``).
        policy: speaker-face policy (``features.face_policy``).

    Raises:
        ValueError: ``fps <= 0`` or an unknown policy.
    """

    def __init__(self, expert: VisualExpert, fps: float = 5.0, policy: str = "largest") -> None:
        if not fps > 0 or policy not in FACE_POLICIES:
            raise ValueError(f"fps must be > 0 and policy one of {FACE_POLICIES}, got {fps}, {policy!r}")
        self.expert, self.fps, self.policy = expert, float(fps), policy

    def identity(self) -> dict:
        """The detector and expert weights' identities (file hashes) and the cost settings, for logs and manifests."""
        det = self.expert.detector
        return {"detector": getattr(det, "name", ""), "experts": dict(self.expert.identities),
                "fps": self.fps, "policy": self.policy, "detect_every": self.expert.schedule.every,
                "min_face_frac": getattr(det, "min_face_frac", 0.0), "runtime": self.expert.runtime}

    def observe(self, stamp: float, image: np.ndarray) -> list[FaceObservation]:
        """The faces of one frame (the tracker advances by one frame).

        Args:
            stamp: sensor time, seconds. image: ``(H, W, 3)`` uint8 RGB.

        Raises:
            ValueError: a bad frame (:func:`check_frame`).
        """
        img = check_frame(image)
        hw = (int(img.shape[0]), int(img.shape[1]))
        return [FaceObservation(float(stamp), int(f.track_id), tuple(float(x) for x in f.box), hw,
                                np.log(np.maximum(np.asarray(f.probs, np.float64), LOG_FLOOR)))
                for f in self.expert(img, stamp=float(stamp))]

    def __call__(self, window: UtteranceWindow) -> FaceEvidence:
        """The evidence of a window from its frames thinned to :attr:`fps` (bad frames logged and skipped)."""
        frames = list(window.frames)
        obs: list[FaceObservation] = []
        done = bad = 0
        for i in thin_stamps([f.stamp for f in frames], self.fps):
            try:
                obs += self.observe(frames[i].stamp, frames[i].image)
                done += 1
            except ValueError as exc:
                bad += 1
                log.warning("face evidence: frame at %.3f s skipped: %s", frames[i].stamp, exc)
        return aggregate(obs, self.policy, done, bad)


def build_face_evidence(enabled: bool, fps: float, policy: str, *, detect_every: int = DEFAULT_DETECT_EVERY,
                        min_face_frac: float = DEFAULT_MIN_FACE_FRAC,
                        runtime: str = DEFAULT_RUNTIME) -> FaceEvidenceExtractor | None:
    """The face stage of the pipeline, or None (off, or weights not installed: logged here, once per call).

    Args:
        enabled: ``features.face_expert``. fps: ``features.face_fps``. policy: ``features.face_policy``.
        detect_every: ``features.face_detect_every`` (full detection on every Nth processed frame, >= 1).
        min_face_frac: ``features.face_min_size`` (smallest face searched, fraction of the frame's shorter side).
        runtime: ``features.face_runtime`` (``onnxruntime`` or ``torch``).

    Raises:
        ValueError: ``fps <= 0``, an unknown policy or runtime, or a cost setting out of range.
    """
    if not enabled:
        return None
    try:
        # camera frames: a small frame without a detection is no face
        expert = VisualExpert(accept_crops=False, detect_every=detect_every, fps=fps, runtime=runtime,
                              detector_settings={"min_face_frac": min_face_frac})
    except FaceWeightsMissing as exc:
        log.warning("face expert off (visual evidence reported absent): its weights are not installed: %s", exc)
        return None
    return FaceEvidenceExtractor(expert, fps, policy)
