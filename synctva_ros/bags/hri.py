"""ROS4HRI (REP-155) and audio_common topics in bags: what ``synctva make-bag`` writes and the reader reads back.

Writing (:func:`synctva_ros.bags.make_bag.make_bag` with ``audio_type="audio_stamped"``,
``speech_type="live_speech"``, ``persons=True``), in the published definitions (``third_party_msgs/``):

=================================  =================================  =========================================
``/audio``                         ``audio_common_msgs/AudioStamped`` mgonzs13/audio_common: int16 samples
                                                                      (PortAudio format 8), mono, with AudioInfo
``/humans/voices/tracked``         ``hri_msgs/IdsList``               every :data:`TRACKED_PERIOD_S`: all voices
``/humans/voices/<vid>/speech``    ``hri_msgs/LiveSpeech``            per utterance one incremental result at
                                                                      mid-speech, then the final one; ``vid`` =
                                                                      :func:`hri_id` ``("voice", speaker)``
``/humans/persons/tracked``        ``hri_msgs/IdsList``               with ``persons``: every
                                                                      :data:`TRACKED_PERIOD_S`: all persons
``/humans/persons/<pid>/voice_id`` ``std_msgs/String``                with ``persons``: once at the start,
                                                                      latched (transient-local offered QoS)
=================================  =================================  =========================================

LiveSpeech carries no utterance or dialogue id: the windows of such a bag have none, and their labels are
matched by time overlap (:func:`synctva_ros.bags.reader.match_label`).

Reading (:class:`HriBagTopics`, used by :func:`synctva_ros.bags.reader.iter_windows_from_bag`) emulates the
node's subscriptions on the bag's messages: a voice's ``/humans/voices/<id>/speech`` is read once the id
has appeared on ``topics.voices_tracked`` (the node subscribes then); ``topics.persons_tracked`` lists the
persons, and a person's latched ``voice_id`` / ``face_id`` counts from the moment the person is listed (the
latest value recorded before that, as a transient-local subscription receives it), later ones as they come.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

from synctva_ros.config import TopicsConfig
from synctva_ros.core.hri_fields import MAX_VOICES, voice_id_from_topic
from synctva_ros.core.persons import MAX_PERSONS, PersonRegistry, person_from_topic

__all__ = ["AUDIO_TYPES", "SPEECH_TYPES", "TRACKED_PERIOD_S", "LATCHED_QOS", "hri_id", "voice_speech_topic",
           "audio_stamped_msg", "live_speech_msg", "ids_list_msg", "HriBagTopics"]

#: ``make_bag(audio_type=...)`` -> message type on ``/audio``.
AUDIO_TYPES = {"synctva": "synctva_ros/msg/AudioChunk", "audio_stamped": "audio_common_msgs/msg/AudioStamped"}
#: ``make_bag(speech_type=...)`` values: ``synctva/Transcript`` on ``/speech`` or ROS4HRI LiveSpeech per voice.
SPEECH_TYPES = ("synctva", "live_speech")
#: Period of the tracked lists written (seconds).
TRACKED_PERIOD_S = 1.0
_INF = QosTime(sec=0, nsec=0)  # rosbag2's "default" duration
#: Offered QoS of REP-155's latched topics, as ``ros2 bag record`` stores it (the replay publishes them so).
LATCHED_QOS = [Qos(history=QosHistory.KEEP_LAST, depth=1, reliability=QosReliability.RELIABLE,
                   durability=QosDurability.TRANSIENT_LOCAL, deadline=_INF, lifespan=_INF,
                   liveliness=QosLiveliness.AUTOMATIC, liveliness_lease_duration=_INF,
                   avoid_ros_namespace_conventions=False)]


def hri_id(kind: str, name: str) -> str:
    """A REP-155 id for a dataset speaker: ``hri_id("voice", "Mrs. Geller")`` -> ``"voice_mrs_geller"``.

    Lower-case letters, digits and underscores after ``<kind>_``, so it is a valid ROS name token.
    """
    slug = re.sub(r"[^a-z0-9]+", "_", str(name).lower()).strip("_") or "unknown"
    return f"{kind}_{slug}"


def voice_speech_topic(voice_id: str) -> str:
    """``/humans/voices/<voice_id>/speech`` (REP-155)."""
    return f"/humans/voices/{voice_id}/speech"


def audio_stamped_msg(types: Any, header: Any, samples: np.ndarray, rate: int) -> Any:
    """``audio_common_msgs/AudioStamped`` of mono int16 ``samples`` at ``rate`` Hz (rosbags classes ``types``)."""
    x = np.asarray(samples, dtype=np.int16)
    info = types["audio_common_msgs/msg/AudioInfo"](format=8, channels=1, rate=int(rate), chunk=int(x.size))
    data = types["audio_common_msgs/msg/AudioData"](
        float32_data=np.zeros(0, np.float32), int32_data=np.zeros(0, np.int32), int16_data=x,
        int8_data=np.zeros(0, np.int8), uint8_data=np.zeros(0, np.uint8))
    return types["audio_common_msgs/msg/AudioStamped"](
        header=header, audio=types["audio_common_msgs/msg/Audio"](audio_data=data, info=info))


def live_speech_msg(types: Any, header: Any, final: str = "", incremental: str = "", confidence: float = 1.0,
                    locale: str = "en_US") -> Any:
    """``hri_msgs/LiveSpeech``: a final result (``final``) or an incremental one (``incremental``)."""
    return types["hri_msgs/msg/LiveSpeech"](header=header, incremental=incremental, final=final,
                                            confidence=float(confidence), locale=locale)


def ids_list_msg(types: Any, header: Any, ids: list[str]) -> Any:
    """``hri_msgs/IdsList``."""
    return types["hri_msgs/msg/IdsList"](header=header, ids=list(ids))


def _absolute(name: str) -> str:
    return "" if not name else name if name.startswith("/") else "/" + name.lstrip("~/")


class HriBagTopics:
    """The node's tracked-voice and person subscriptions, emulated on a bag's messages (module docstring).

    Args:
        topics: ``voices_tracked`` and ``persons_tracked`` ('' = that list is not read).
        registry: receives the tracked persons and their voice and face ids.
    """

    def __init__(self, topics: TopicsConfig, registry: PersonRegistry) -> None:
        self.voices_tracked = _absolute(topics.voices_tracked)
        self.persons_tracked = _absolute(topics.persons_tracked)
        self.registry = registry
        self.voices: set[str] = set()
        self.persons: set[str] = set()
        self._latched: dict[tuple[str, str], str] = {}  # (person, what) -> latest value before it was listed

    def wants(self, topic: str) -> bool:
        """Whether the reader must read ``topic``: a tracked list, a voice's speech or a person's ids."""
        return (topic in (self.voices_tracked, self.persons_tracked) and bool(topic)) \
            or bool(voice_id_from_topic(topic)) or person_from_topic(topic) is not None

    def voice_listed(self, topic: str) -> bool:
        """Whether the node would be subscribed to this ``/humans/voices/<id>/speech`` by now."""
        vid = voice_id_from_topic(topic)
        return bool(vid) and bool(self.voices_tracked) and vid in self.voices

    def on_message(self, topic: str, msgtype: str, msg: Any) -> bool:
        """Take a tracked list or a person's id; returns whether the message was one of those."""
        name = msgtype.rsplit("/", 1)[-1]
        if name == "IdsList" and topic == self.voices_tracked:
            for vid in (str(i) for i in msg.ids if str(i)):
                if len(self.voices) < MAX_VOICES:
                    self.voices.add(vid)
            return True
        if name == "IdsList" and topic == self.persons_tracked:
            ids = [str(i) for i in msg.ids if str(i)]
            self.registry.set_tracked(ids)
            for pid in ids:
                if pid not in self.persons and len(self.persons) < MAX_PERSONS:
                    self.persons.add(pid)
                    self._apply(pid, "voice_id", self._latched.pop((pid, "voice_id"), None))
                    self._apply(pid, "face_id", self._latched.pop((pid, "face_id"), None))
            return True
        person = person_from_topic(topic)
        if person is not None and name == "String" and self.persons_tracked:
            pid, what = person
            if pid in self.persons:
                self._apply(pid, what, str(msg.data))
            else:
                self._latched[(pid, what)] = str(msg.data)
            return True
        return False

    def _apply(self, pid: str, what: str, value: str | None) -> None:
        if value is None:
            return
        (self.registry.set_voice if what == "voice_id" else self.registry.set_face)(pid, value)
