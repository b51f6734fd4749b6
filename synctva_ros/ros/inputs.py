"""The node's microphone and speech-to-text subscriptions, in the message types chosen by parameters.

``topics.audio_msg_type`` and ``topics.transcript_msg_type`` choose what the ``topics.audio`` and
``topics.transcript`` topics carry (the camera ``sensor_msgs/Image`` and the ``std_msgs/String`` fallback
on ``topics.text`` are always subscribed by the node itself):

=====================  =============================================  ========================================
parameter value        subscribed                                     package
=====================  =============================================  ========================================
audio ``synctva``      ``topics.audio``: ``synctva_ros/AudioChunk``   this package
audio ``audio_stamped`` ``topics.audio``: ``AudioStamped``            audio_common_msgs (mgonzs13)
audio ``audio_data``   ``topics.audio``: ``AudioData`` and            audio_common_msgs (either variant)
                       ``topics.audio_info``: ``AudioInfo``
speech ``synctva``     ``topics.transcript``: ``synctva_ros/Transcript``  this package
speech ``live_speech`` ``topics.transcript`` and, for every id on     hri_msgs (ROS4HRI, REP-155)
                       ``topics.voices_tracked`` (``IdsList``),
                       ``/humans/voices/<id>/speech``: ``LiveSpeech``
speech ``whisper``     ``topics.transcript``: ``whisper_msgs/Transcription``  whisper_msgs (whisper_ros)
=====================  =============================================  ========================================

The third-party packages are imported when present (:func:`import_optional_messages`); the node logs one
line per missing one saying what is off (:func:`missing_package_lines`; without ``hri_msgs`` also the per-face
``hri_msgs/Expression`` output of :mod:`~synctva_ros.ros.expressions`), and refuses to configure when a
parameter asks for a type whose package is missing (:func:`input_type_problem`). Conversions:
:mod:`synctva_ros.core.hri_fields`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from synctva_ros.core.hri_fields import (MAX_VOICES, ArrivalStamper, audio_data_to_samples,
                                         audio_stamped_to_samples, live_speech_to_fields, voice_id_from_topic,
                                         whisper_to_fields)
from synctva_ros.msg import AudioChunk, Transcript
from synctva_ros.ros.conversions import audio_msg_to_samples, transcript_msg_to_fields
from synctva_ros.ros.qos import audio_qos

__all__ = ["AUDIO_MSG_TYPES", "TRANSCRIPT_MSG_TYPES", "MAX_VOICES", "OptionalMessages", "import_optional_messages",
           "missing_package_lines", "input_type_problem", "InputSubscriptions"]

#: ``topics.audio_msg_type`` values -> (package needed, message class name) (None: this package).
AUDIO_MSG_TYPES = {"synctva": None, "audio_stamped": ("audio_common_msgs", "AudioStamped"),
                   "audio_data": ("audio_common_msgs", "AudioData")}
#: ``topics.transcript_msg_type`` values -> (package needed, message class name) (None: this package).
TRANSCRIPT_MSG_TYPES = {"synctva": None, "live_speech": ("hri_msgs", "LiveSpeech"),
                        "whisper": ("whisper_msgs", "Transcription")}

#: What each optional package enables (for the start-up lines).
_USES = {
    "hri_msgs": "topics.transcript_msg_type 'live_speech' (ROS4HRI LiveSpeech on /humans/voices/<id>/speech), "
                "the persons of topics.persons_tracked (EmotionState.person_id stays empty, face_id is the "
                "expert's face), and the per-face hri_msgs/Expression output on /humans/faces/<id>/expression "
                "(output.expression_hz)",
    "audio_common_msgs": "topics.audio_msg_type 'audio_stamped' and 'audio_data' (audio_common microphones)",
    "whisper_msgs": "topics.transcript_msg_type 'whisper' (whisper_ros Transcription)",
}


@dataclass
class OptionalMessages:
    """The ``msg`` modules of the optional packages that imported (None where missing)."""

    modules: dict[str, Any] = field(default_factory=dict)

    def get(self, package: str, name: str) -> Any:
        """The message class ``package/msg/name``, or None when the package or the type is missing."""
        return getattr(self.modules.get(package), name, None)


def import_optional_messages(packages: tuple[str, ...] = tuple(_USES)) -> OptionalMessages:
    """Import ``<package>.msg`` for each optional package; a missing one maps to None. Raises nothing."""
    found: dict[str, Any] = {}
    for pkg in packages:
        try:
            found[pkg] = importlib.import_module(f"{pkg}.msg")
        except ImportError:
            found[pkg] = None
    return OptionalMessages(found)


def missing_package_lines(opt: OptionalMessages) -> list[str]:
    """One line per optional package that is missing (or lacks the types used), saying what is off."""
    lines = [f"{pkg} is not installed: {uses} unavailable" for pkg, uses in _USES.items()
             if opt.modules.get(pkg) is None]
    if opt.modules.get("audio_common_msgs") is not None and opt.get("audio_common_msgs", "AudioStamped") is None:
        lines.append("audio_common_msgs has no AudioStamped (the ros-drivers variant): topics.audio_msg_type "
                     "'audio_stamped' unavailable, 'audio_data' works")
    return lines


def input_type_problem(topics: Any, opt: OptionalMessages) -> str:
    """Why the chosen ``topics.audio_msg_type`` / ``topics.transcript_msg_type`` cannot be used ('' if they can)."""
    for key, table, value in (("audio_msg_type", AUDIO_MSG_TYPES, topics.audio_msg_type),
                              ("transcript_msg_type", TRANSCRIPT_MSG_TYPES, topics.transcript_msg_type)):
        need = table.get(value, ())
        if need == ():
            return f"topics.{key} '{value}' is not one of {', '.join(table)}"
        if need is not None and opt.get(*need) is None:
            return f"topics.{key} '{value}' needs {need[0]}/msg/{need[1]}, which is not installed"
    return ""


class InputSubscriptions:
    """Creates the audio and transcript subscriptions of the chosen types and routes them to the node.

    Args:
        node: the rclpy node (``create_subscription``, ``get_logger``).
        topics: the ``topics`` configuration section.
        opt: the optional message modules.
        sensor_qos, reliable_qos: QoS of microphone and speech subscriptions (the microphone's depth is raised to
            :data:`~synctva_ros.ros.qos.AUDIO_MIN_DEPTH` at least: :func:`~synctva_ros.ros.qos.audio_qos`).
        audio: ``audio(msg, convert)``: the node's audio path; ``convert(msg) -> (stamp_s, samples, rate)``.
        transcript: ``transcript(msg, convert)``: the node's transcript path; ``convert(msg) -> TranscriptFields``.
        now: the node clock, seconds (stamps header-less messages on arrival).
        subs: the node's subscription list; every subscription made here is appended (destroyed by the node).
    """

    def __init__(self, node: Any, topics: Any, opt: OptionalMessages, sensor_qos: Any, reliable_qos: Any,
                 audio: Callable[[Any, Callable], None], transcript: Callable[[Any, Callable], None],
                 now: Callable[[], float], subs: list) -> None:
        self._node, self._t, self._opt = node, topics, opt
        self._sensor, self._reliable = audio_qos(sensor_qos), reliable_qos  # the microphone's depth: ros/qos.py
        self._audio, self._transcript, self._now, self._subs = audio, transcript, now, subs
        self._audio_info: Any = None
        self._stamper = ArrivalStamper()
        self.voices: dict[str, Any] = {}  # voice id -> its LiveSpeech subscription

    def subscribe(self) -> None:
        """Create the subscriptions (call :func:`input_type_problem` first; a missing type raises AttributeError)."""
        t, n = self._t, self._node
        kind = t.audio_msg_type
        if kind == "synctva":
            self._sub(AudioChunk, t.audio, lambda m: self._audio(m, audio_msg_to_samples), self._sensor)
        elif kind == "audio_stamped":
            self._sub(self._opt.get("audio_common_msgs", "AudioStamped"), t.audio,
                      lambda m: self._audio(m, audio_stamped_to_samples), self._sensor)
        else:
            self._sub(self._opt.get("audio_common_msgs", "AudioInfo"), t.audio_info, self._on_audio_info,
                      self._reliable)
            self._sub(self._opt.get("audio_common_msgs", "AudioData"), t.audio,
                      lambda m: self._audio(m, lambda x: audio_data_to_samples(x, self._audio_info, self._now(),
                                                                                self._stamper)), self._sensor)
        kind = t.transcript_msg_type
        if kind == "synctva":
            self._sub(Transcript, t.transcript, lambda m: self._transcript(m, transcript_msg_to_fields))
        elif kind == "whisper":
            self._sub(self._opt.get("whisper_msgs", "Transcription"), t.transcript,
                      lambda m: self._transcript(m, lambda x: whisper_to_fields(x, self._now())))
        else:
            self._live_speech(t.transcript)
            if t.voices_tracked:
                self._sub(self._opt.get("hri_msgs", "IdsList"), t.voices_tracked, self._on_voices_tracked)
        n.get_logger().info(f"inputs: audio {t.audio_msg_type} on '{t.audio}', speech {t.transcript_msg_type} on "
                            f"'{t.transcript}'" + (f" and per voice from '{t.voices_tracked}'"
                                                   if kind == "live_speech" and t.voices_tracked else ""))

    def _sub(self, msg_type: Any, topic: str, callback: Callable[[Any], None], qos: Any = None) -> Any:
        sub = self._node.create_subscription(msg_type, topic, callback, qos or self._reliable)
        self._subs.append(sub)
        return sub

    def _live_speech(self, topic: str) -> Any:
        voice = voice_id_from_topic(self._node.resolve_topic_name(topic))  # namespace and remapping applied
        return self._sub(self._opt.get("hri_msgs", "LiveSpeech"), topic,
                         lambda m: self._transcript(m, lambda x: live_speech_to_fields(x, voice)))

    def _on_audio_info(self, msg: Any) -> None:
        self._audio_info = msg

    def _on_voices_tracked(self, msg: Any) -> None:
        """``hri_msgs/IdsList`` of tracked voices: subscribe to each new voice's ``/humans/voices/<id>/speech``.

        Subscriptions of voices no longer tracked are kept (a final result may still come), at most
        :data:`MAX_VOICES`.
        """
        for vid in msg.ids:
            vid = str(vid)
            if vid in self.voices or not vid:
                continue
            if len(self.voices) >= MAX_VOICES:
                self._node.get_logger().warning(f"more than {MAX_VOICES} voices tracked: voice '{vid}' ignored",
                                                throttle_duration_sec=10.0)
                continue
            try:
                self.voices[vid] = self._live_speech(f"/humans/voices/{vid}/speech")
            except Exception as exc:  # an id that is not a valid ROS name token
                self._node.get_logger().warning(f"cannot subscribe to voice '{vid}': {exc}",
                                                throttle_duration_sec=10.0)
                self.voices[vid] = None
