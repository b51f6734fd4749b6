"""Who is speaking: the voice, person and face an utterance window concerns (ROS4HRI, REP-155; ROS-free).

REP-155 gives every detected voice, face and person an id: ``/humans/voices/<id>/...``,
``/humans/faces/<id>/...``, ``/humans/persons/<id>/...``. A person manager (e.g. ROS4HRI's
hri_person_manager) says which voice and face belong to a person on the latched ``std_msgs/String``
topics ``/humans/persons/<id>/voice_id`` and ``/humans/persons/<id>/face_id`` (an empty string: none now),
and lists the persons on ``/humans/persons/tracked`` (``hri_msgs/IdsList``). The policy:

1. **voice**: the voice of the speech message: the ``<id>`` of the ``hri_msgs/LiveSpeech`` topic
   ``/humans/voices/<id>/speech``, or ``synctva_ros/Transcript.speaker_id`` (``UtteranceWindow.speaker_id``).
   whisper_ros transcriptions, ``std_msgs/String`` and voice-activity windows have none ('').
2. **person**: the person whose latest ``voice_id`` is that voice. When several claim it, a person on the
   latest ``/humans/persons/tracked`` list wins over one that is not, then the most recent association.
   No voice, or no person claims it: '' (unknown).
3. **face**: that person's latest ``face_id`` when non-empty; otherwise the face whose expression the
   node's visual expert used, as :func:`track_face_id` (``face_<track id>``: the node's own face tracker,
   not a ROS4HRI face detector; the node's per-face output publishes that face's ``hri_msgs/Expression`` on
   ``/humans/faces/face_<track id>/expression``, :mod:`synctva_ros.ros.expressions`); otherwise ''. The
   visual evidence always comes from the expert's own face choice (``features.face_policy``;
   ``EmotionState.face_track_id``, a geometric rule, not an active-speaker detector): the node does not read
   ROS4HRI face regions, so a person's face id says who the person is seen as, not which pixels were used.
4. **frame**: ``EmotionState.header.frame_id`` is the camera image's ``header.frame_id`` when the expert used
   a face, else ``output.frame_id`` (a parameter, default '').

Steps 2, the person part of 3, and the camera frame are resolved when the window is emitted
(:meth:`PersonRegistry.attribute`: the node's window feed, :func:`synctva_ros.bags.reader.iter_windows_from_bag`
offline), before the pipeline predicts it, because the person id tags the window's turn in the dialogue
context; the expert's face is known only after the prediction (:func:`emotion_ids`). Online the registry holds
what the person topics said up to the window's emission; offline, what the bag held up to that message: the
two agree unless an association changes within the discovery time (about 1 s) of a window's emission.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Iterable, NamedTuple

__all__ = ["MAX_PERSONS", "EmotionIds", "PersonRegistry", "track_face_id", "emotion_ids", "person_topic",
           "person_from_topic"]

#: Most persons remembered (the least recently updated is forgotten first); ids beyond are ignored.
MAX_PERSONS = 64
#: Longest id kept (REP-155 ids are short tokens); longer ones are cut.
_MAX_ID_CHARS = 256
_PERSON_TOPIC = re.compile(r"^/humans/persons/([^/]+)/(voice_id|face_id)$")


def person_topic(person_id: str, what: str) -> str:
    """``/humans/persons/<person_id>/<what>`` (REP-155), e.g. ``what`` = ``voice_id`` or ``face_id``."""
    return f"/humans/persons/{person_id}/{what}"


def person_from_topic(topic: str) -> tuple[str, str] | None:
    """``/humans/persons/anna/voice_id`` -> ``("anna", "voice_id")``; None for any other topic."""
    m = _PERSON_TOPIC.match(str(topic))
    return (m.group(1), m.group(2)) if m else None


def _clean(value: Any) -> str:
    return str(value or "").strip()[:_MAX_ID_CHARS]


def track_face_id(track_id: int) -> str:
    """The face id of the node's face track ``track_id``: ``"face_<track_id>"``, '' for a negative id.

    A valid ROS name token (REP-155 ids go into topic names; a token must not start with a digit).
    """
    return f"face_{int(track_id)}" if int(track_id) >= 0 else ""


class EmotionIds(NamedTuple):
    """The ids ``EmotionState`` carries: ``header.frame_id``, ``voice_id``, ``person_id``, ``face_id``."""

    frame_id: str
    voice_id: str
    person_id: str
    face_id: str


def emotion_ids(window: Any, face_track_id: int, default_frame_id: str = "") -> EmotionIds:
    """Steps 3 and 4 of the policy for a predicted window (see the module docstring).

    Args:
        window: an :class:`~synctva_ros.core.window.UtteranceWindow` (``speaker_id``, and ``person_id``,
            ``person_face_id``, ``camera_frame_id`` from :meth:`PersonRegistry.attribute`).
        face_track_id: the track id of the face whose expression was used (``EmotionResult.face_track_id``;
            negative = none).
        default_frame_id: ``output.frame_id``, used when no face was used or the camera frame is unknown.
    """
    face_used = int(face_track_id) >= 0
    camera = _clean(getattr(window, "camera_frame_id", ""))
    face = _clean(getattr(window, "person_face_id", "")) or track_face_id(face_track_id)
    return EmotionIds(frame_id=camera if face_used and camera else str(default_frame_id),
                      voice_id=_clean(getattr(window, "speaker_id", "")),
                      person_id=_clean(getattr(window, "person_id", "")), face_id=face)


@dataclass
class _Person:
    voice_id: str = ""
    face_id: str = ""
    voice_seq: int = 0  # order of the latest voice association (larger = more recent)


class PersonRegistry:
    """What the REP-155 person topics said last: each person's voice and face, and the tracked persons.

    Thread-safe (one lock): the node updates it from subscription callbacks and reads it in the window feed.

    Args:
        max_persons: persons remembered (``>= 1``); beyond it the least recently updated is forgotten.

    Raises:
        ValueError: ``max_persons < 1``.
    """

    def __init__(self, max_persons: int = MAX_PERSONS) -> None:
        if max_persons < 1:
            raise ValueError(f"max_persons must be >= 1, got {max_persons}")
        self.max_persons = int(max_persons)
        self._persons: OrderedDict[str, _Person] = OrderedDict()
        self._tracked: frozenset[str] = frozenset()
        self._camera_frame = ""
        self._seq = itertools.count(1)
        self._lock = threading.Lock()

    def _person(self, person_id: str) -> _Person | None:
        pid = _clean(person_id)
        if not pid:
            return None
        p = self._persons.get(pid)
        if p is None:
            p = self._persons[pid] = _Person()
            while len(self._persons) > self.max_persons:
                self._persons.popitem(last=False)
        self._persons.move_to_end(pid)
        return p

    def set_tracked(self, person_ids: Iterable[Any]) -> None:
        """The latest ``/humans/persons/tracked`` list (``hri_msgs/IdsList.ids``); replaces the previous one."""
        ids = frozenset(itertools.islice((i for i in map(_clean, person_ids) if i), 4 * self.max_persons))
        with self._lock:
            self._tracked = ids

    def set_voice(self, person_id: Any, voice_id: Any) -> None:
        """``/humans/persons/<person_id>/voice_id`` said ``voice_id`` ('' = the person has no voice now)."""
        with self._lock:
            p = self._person(person_id)
            if p is not None:
                p.voice_id, p.voice_seq = _clean(voice_id), next(self._seq)

    def set_face(self, person_id: Any, face_id: Any) -> None:
        """``/humans/persons/<person_id>/face_id`` said ``face_id`` ('' = the person's face is not seen now)."""
        with self._lock:
            p = self._person(person_id)
            if p is not None:
                p.face_id = _clean(face_id)

    def set_camera_frame(self, frame_id: Any) -> None:
        """``header.frame_id`` of the newest camera image (for ``EmotionState.header.frame_id``)."""
        with self._lock:
            self._camera_frame = _clean(frame_id)

    @property
    def camera_frame(self) -> str:
        """``header.frame_id`` of the newest camera image ('' none yet): the frame of the per-face expressions."""
        with self._lock:
            return self._camera_frame

    def person_of_voice(self, voice_id: Any) -> str:
        """The person whose voice is ``voice_id`` (policy step 2): tracked first, then the most recent; '' none."""
        vid = _clean(voice_id)
        if not vid:
            return ""
        with self._lock:
            claims = [(pid in self._tracked, p.voice_seq, pid) for pid, p in self._persons.items()
                      if p.voice_id == vid]
        return max(claims)[2] if claims else ""

    def face_of_person(self, person_id: Any) -> str:
        """The person's latest face id ('' unknown)."""
        with self._lock:
            p = self._persons.get(_clean(person_id))
            return p.face_id if p is not None else ""

    @property
    def tracked(self) -> frozenset[str]:
        """The person ids of the latest tracked list."""
        return self._tracked

    def attribute(self, window: Any) -> Any:
        """Set ``window.person_id``, ``person_face_id`` and ``camera_frame_id`` from what is known now.

        Call it when the window is emitted, before it is predicted. Returns ``window`` (changed in place).
        """
        window.person_id = pid = self.person_of_voice(getattr(window, "speaker_id", ""))
        window.person_face_id = self.face_of_person(pid) if pid else ""
        with self._lock:
            window.camera_frame_id = self._camera_frame
        return window

    def clear(self) -> None:
        """Forget every person, the tracked list and the camera frame."""
        with self._lock:
            self._persons.clear()
            self._tracked = frozenset()
            self._camera_frame = ""
