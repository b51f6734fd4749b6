"""What the node and the offline bag reader make of one speech-to-text message (ROS-free).

:class:`TranscriptFields` is one transcript as ``UtteranceWindower.add_transcript`` takes it;
:class:`InputError` is a message that cannot be used. Both are filled by the message conversions of
:mod:`synctva_ros.ros.conversions` (this package's messages, in the node) and
:mod:`synctva_ros.core.hri_fields` (ROS4HRI, audio_common and whisper_ros messages, in the node and in
:mod:`synctva_ros.bags.reader`), so live topics and a bag read offline give the same windows.
Times are seconds (REP-103, sensor time).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["InputError", "MAX_TRANSCRIPT_CHARS", "TranscriptFields", "clip_text"]

#: Longest transcript kept, in characters; longer ones are truncated (a counted warning).
MAX_TRANSCRIPT_CHARS = 10_000


class InputError(ValueError):
    """A message the node cannot use.

    Attributes:
        kind: counter name for diagnostics (``bad_image``, ``bad_audio``, ``bad_transcript``).
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class TranscriptFields:
    """Keyword arguments of ``UtteranceWindower.add_transcript`` (seconds, sensor time).

    ``start``/``end`` of 0.0 mean unknown (resolved by the windower); ``truncated``
    says whether the text was cut to :data:`MAX_TRANSCRIPT_CHARS`. ``speaker_id`` is the voice id
    (ROS4HRI ``/humans/voices/<id>/speech``, or ``synctva_ros/Transcript.speaker_id``; '' unknown).
    """

    text: str
    start: float
    end: float
    is_final: bool
    stamp: float
    utterance_id: str = ""
    dialogue_id: str = ""
    language: str = ""
    confidence: float = float("nan")
    speaker_id: str = ""
    truncated: bool = False

    def windower_kwargs(self) -> dict:
        """The fields ``add_transcript`` takes (everything but ``truncated``)."""
        return {"text": self.text, "start": self.start, "end": self.end, "is_final": self.is_final,
                "stamp": self.stamp, "utterance_id": self.utterance_id, "dialogue_id": self.dialogue_id,
                "language": self.language, "confidence": self.confidence, "speaker_id": self.speaker_id}


def clip_text(text: str) -> tuple[str, bool]:
    """``(text cut to MAX_TRANSCRIPT_CHARS characters, whether it was cut)``."""
    if len(text) > MAX_TRANSCRIPT_CHARS:
        return text[:MAX_TRANSCRIPT_CHARS], True
    return text, False
