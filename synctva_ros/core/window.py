"""The utterance window: everything the model sees for one utterance.

Times are sensor time in seconds (REP-103), i.e. the ``header.stamp`` of the
messages, never arrival time, so that live topics and a bag replay give the same
windows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["TimedFrame", "UtteranceWindow"]


@dataclass(frozen=True)
class TimedFrame:
    """One camera frame.

    Attributes:
        stamp: sensor time in seconds.
        image: ``(H, W, 3)`` uint8 RGB array (C-contiguous).
    """

    stamp: float
    image: np.ndarray


@dataclass
class UtteranceWindow:
    """One utterance window ``[start, end]`` (seconds, sensor time).

    Attributes:
        start, end: window bounds in seconds, ``end >= start``.
        transcript: final transcript text, or ``None`` when the window was closed
            by voice activity with no speech-to-text.
        frames: camera frames whose stamps lie in ``[start, end]``, ascending.
        audio: ``(S,)`` float32 mono samples in [-1, 1] covering the window (may be
            empty), first sample at ``audio_start`` seconds.
        sample_rate: audio sample rate in Hz.
        audio_start: sensor time of ``audio[0]`` in seconds.
        closed_by: ``"transcript"`` or ``"vad"``.
        utterance_id: id from the transcript (or a counter for VAD windows).
        dialogue_id: conversation id when known ('' otherwise), for dialogue context.
        session: the windower session the window was built in (0, 1, ...: +1 at every time reset); the
            pipeline forgets the dialogue context when it changes.
        speaker_id: the voice that spoke (ROS4HRI voice id of ``/humans/voices/<id>/speech``, or
            ``Transcript.msg`` ``speaker_id``; '' unknown): ``EmotionState.voice_id``.
        person_id: the ROS4HRI person whose ``voice_id`` is ``speaker_id`` ('' unknown), set when the
            window is emitted (:mod:`synctva_ros.core.persons`); with ``speaker_id`` as fallback it is
            the speaker tag of the dialogue context (:func:`synctva_ros.features.dialogue.window_speaker`).
        person_face_id: that person's ROS4HRI face id when known ('' otherwise).
        camera_frame_id: ``header.frame_id`` of the newest camera image when the window was emitted.
        language: BCP-47 tag of the transcript ('' if unknown).
        stt_confidence: speech-to-text confidence in [0, 1] (NaN if unknown).
        closed_at: sensor time at which the window was closed (for latency).
    """

    start: float
    end: float
    transcript: str | None = None
    frames: list[TimedFrame] = field(default_factory=list)
    audio: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    sample_rate: int = 16000
    audio_start: float = 0.0
    closed_by: str = "transcript"
    utterance_id: str = ""
    dialogue_id: str = ""
    speaker_id: str = ""
    person_id: str = ""
    person_face_id: str = ""
    camera_frame_id: str = ""
    session: int = 0
    language: str = ""
    stt_confidence: float = float("nan")
    closed_at: float = 0.0

    @property
    def duration(self) -> float:
        """Window length in seconds."""
        return self.end - self.start

    @property
    def present(self) -> dict[str, bool]:
        """Which modalities carry data, keyed by :data:`~synctva_ros.core.modalities.MODALITIES`."""
        return {
            "text": bool(self.transcript and self.transcript.strip()),
            "audio": self.audio.size > 0,
            "visual": len(self.frames) > 0,
        }
