"""Every tracked face's expression, frame by frame, as the fields of ROS4HRI's ``hri_msgs/Expression``.

REP-155 ("Faces") gives every detected face a namespace ``/humans/faces/<face_id>/``, in which an expression
recogniser publishes ``hri_msgs/Expression`` on ``expression``; ROS4HRI's own ``hri_emotion_recognizer``
publishes one per tracked face on a timer. Here the face stage of the streaming cache
(:class:`~synctva_ros.streaming.face_cache.FaceEvidenceCache`) already classifies every face of every processed
frame (``features.face_fps``) for the window's evidence; :class:`ExpressionFeed` turns those per-frame
observations into one record per face, at most ``output.expression_hz`` frames per second of sensor time.
The ROS side (:mod:`synctva_ros.ros.expressions`) only copies the fields into messages.

``hri_msgs/Expression`` (hri_msgs 2.x), field by field (:func:`expression_fields`):

* ``header.stamp``: the processed camera frame's sensor time (:attr:`FaceExpressionFields.stamp`, seconds);
  ``header.frame_id``: the camera image's ``frame_id`` (filled in by the node);
* ``expression``: one of the message's string constants, the one of the face's most probable class
  (:data:`EXPRESSION_OF_CLASS`: the face expert's seven classes, in MELD's spelling, onto the message's names;
  ``fear`` is ``SCARED``: face-api's ``fearful``); the other eighteen names of the message are never used;
* ``valence``, ``arousal``: in [-1, 1], expected under the face's class distribution with the NRC-VAD values
  of :mod:`synctva_ros.model.affect` (the table ``EmotionState.valence``/``arousal`` use);
* ``confidence``: in [0, 1], the probability of that class after temperature scaling with the checkpoint's
  visual temperature (``expert_fusion.experts.visual.temperature``, 3.32 by default: the face network is
  strongly over-confident, ``docs/results.md``), so a confidence of 0.6 is right about 60 % of the time on the
  labelled photographs; the class itself does not depend on the temperature.

The distribution is that of the one frame (no smoothing across frames: a consumer that wants a steadier
signal averages a few messages). The face id is :func:`~synctva_ros.core.persons.track_face_id` of the
node's own IoU track (``face_<track id>``), the string ``EmotionState.face_id`` carries when a window used
that face; ids are never reused while the node runs (the tracker counts up, also across resets).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from synctva_ros.core.persons import track_face_id
from synctva_ros.features.faces.evidence import FaceObservation
from synctva_ros.features.faces.experts import MELD_ORDER
from synctva_ros.model.affect import expected_affect

__all__ = ["EXPRESSION_OF_CLASS", "FORGET_S", "FaceExpressionFields", "FrameExpressions", "expression_fields",
           "frame_expressions", "ExpressionFeed"]

#: The face expert's classes (:data:`~synctva_ros.features.faces.experts.MELD_ORDER`) -> the value of the
#: ``hri_msgs/Expression`` constant of that name (NEUTRAL, HAPPY, SURPRISED, ANGRY, SAD, DISGUSTED, SCARED).
EXPRESSION_OF_CLASS: dict[str, str] = {"neutral": "neutral", "joy": "happy", "surprise": "surprised",
                                       "anger": "angry", "sadness": "sad", "disgust": "disgusted", "fear": "scared"}
#: A face not seen for this many seconds of sensor time is reported gone (its publisher can be destroyed).
FORGET_S = 5.0


@dataclass(frozen=True)
class FaceExpressionFields:
    """One face's expression in one frame (see the module for each field's meaning).

    Attributes:
        face_id: ``face_<track id>`` (REP-155 face id, a valid ROS name token).
        track_id: the face stage's IoU track id (>= 1).
        stamp: the frame's sensor time, seconds.
        expression: an ``hri_msgs/Expression`` constant's value (:data:`EXPRESSION_OF_CLASS`).
        valence, arousal: in [-1, 1].
        confidence: in [0, 1].
        probs: ``(7,)`` temperature-scaled probabilities over :data:`~.experts.MELD_ORDER`.
        box: ``(x1, y1, x2, y2)`` image pixels.
    """

    face_id: str
    track_id: int
    stamp: float
    expression: str
    valence: float
    arousal: float
    confidence: float
    probs: np.ndarray = field(repr=False, compare=False)
    box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)


@dataclass
class FrameExpressions:
    """The expressions of one processed frame that is due at the output rate.

    Attributes:
        stamp: the frame's sensor time, seconds.
        faces: one record per face seen in the frame, ascending track id (empty: no face in view).
        gone: face ids not seen for :data:`FORGET_S` s of sensor time (or forgotten at a time reset) since the
            previous record; each is reported once.
    """

    stamp: float
    faces: list[FaceExpressionFields]
    gone: list[str] = field(default_factory=list)

    @property
    def face_ids(self) -> list[str]:
        """The ids of :attr:`faces`, in order (what ``/humans/faces/tracked`` lists)."""
        return [f.face_id for f in self.faces]


def expression_fields(obs: FaceObservation, temperature: float = 1.0) -> FaceExpressionFields:
    """The ``hri_msgs/Expression`` fields of one face observation.

    Args:
        obs: one face of one frame (its ``log_probs`` over :data:`~.experts.MELD_ORDER`).
        temperature: the face expert's temperature (> 0; 1 = the network's own probabilities).

    Raises:
        ValueError: ``temperature`` not finite and > 0, or ``log_probs`` not 7 finite values.

    Shapes:
        ``obs.log_probs`` ``(7,)`` -> ``probs`` ``(7,)``.
    """
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be finite and > 0, got {temperature}")
    lp = np.asarray(obs.log_probs, np.float64).reshape(-1)
    if lp.shape != (len(MELD_ORDER),) or not np.all(np.isfinite(lp)):
        raise ValueError(f"log_probs must be {len(MELD_ORDER)} finite values, got {lp.tolist()}")
    z = lp / temperature
    p = np.exp(z - z.max())
    p /= p.sum()
    k = int(np.argmax(p))
    valence, arousal = expected_affect(p, MELD_ORDER)
    return FaceExpressionFields(track_face_id(obs.track_id), int(obs.track_id), float(obs.stamp),
                                EXPRESSION_OF_CLASS[MELD_ORDER[k]], valence, arousal, float(p[k]), p,
                                tuple(float(x) for x in obs.box))


def frame_expressions(observations: Sequence[FaceObservation], temperature: float = 1.0
                      ) -> list[FaceExpressionFields]:
    """:func:`expression_fields` of every face of one frame, ascending track id (one record per track)."""
    by_track = {o.track_id: o for o in observations}
    return [expression_fields(by_track[t], temperature) for t in sorted(by_track)]


class ExpressionFeed:
    """The face stage's per-frame observations -> :class:`FrameExpressions` at ``hz`` frames per second.

    A frame is due when its stamp reaches the next tick of a sensor-time grid of period ``1 / hz`` (ticks
    advance one period at a time, and jump to ``stamp + period`` after a gap, as the face stage's own grid:
    with ``hz`` equal to ``features.face_fps`` every processed frame is due; the face stage's rate bounds the
    output's). A stamp more than one period and 1 s before the grid (a restarted bag) restarts it, and every
    face seen so far is reported gone. Thread-safe (one lock).

    Args:
        hz: frames per second of output, > 0.
        temperature: the face expert's temperature (see :func:`expression_fields`).
        forget_s: seconds after which an unseen face is reported gone.

    Raises:
        ValueError: ``hz`` or ``forget_s`` not > 0, or a bad temperature.
    """

    def __init__(self, hz: float, temperature: float = 1.0, forget_s: float = FORGET_S) -> None:
        if not (hz > 0 and forget_s > 0 and math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"hz, forget_s and temperature must be > 0, got {hz}, {forget_s}, {temperature}")
        self.period_s, self.temperature, self.forget_s = 1.0 / float(hz), float(temperature), float(forget_s)
        self._lock = threading.Lock()
        self._next_tick = -math.inf
        self._last_seen: dict[str, float] = {}  # face id -> stamp of the last due frame that showed it

    def _due(self, stamp: float, gone: list[str]) -> bool:
        if stamp < self._next_tick - self.period_s - 1.0:  # time went back: a new timeline
            gone.extend(sorted(self._last_seen))
            self._last_seen.clear()
            self._next_tick = -math.inf
        if stamp < self._next_tick - 1e-6:
            return False
        tick = self._next_tick + self.period_s if math.isfinite(self._next_tick) else stamp + self.period_s
        self._next_tick = tick if tick > stamp else stamp + self.period_s
        return True

    def offer(self, stamp: float, observations: Sequence[FaceObservation]) -> FrameExpressions | None:
        """The frame's expressions when it is due at the output rate, else None.

        Args:
            stamp: the processed frame's sensor time, seconds.
            observations: every face the face stage saw in it (empty: none).
        """
        gone: list[str] = []
        with self._lock:
            if not self._due(float(stamp), gone):
                return None
            faces = frame_expressions(observations, self.temperature)
            for f in faces:
                self._last_seen[f.face_id] = float(stamp)
            old = sorted(i for i, t in self._last_seen.items() if t < stamp - self.forget_s)
            for i in old:
                del self._last_seen[i]
        return FrameExpressions(float(stamp), faces, gone + old)
