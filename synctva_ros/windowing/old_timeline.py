"""Rule 13c of :mod:`.windower`: the timeline before a backward time reset, kept a little while for stragglers.

When sensor time goes back (a bag restarts, a simulator resets) the windower resets (rule 6) and drops the old
timeline's stragglers (rule 13b). A final transcript of the old timeline's last utterance may still be on its way
then: speech-to-text answers after the speech ends, and an executor draining a backlog delivers it after the first
messages of the new timeline (the soak of issue 14 lost 5 of 940 windows so, each the bag's last utterance). The
frame and audio buffers of the old timeline are therefore not cleared at the reset but held by
:class:`OldTimeline` for ``windowing.straggler_s`` seconds of the new timeline's sensor time; a straggling final
transcript whose window lies in them, and the stragglers of frames and audio it needs, still make its window,
with the old session number. Only while no window of the new session has been emitted, so that windows stay
ordered by session downstream (the pipeline resets the dialogue context when the session changes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

from synctva_ros.config import WindowingConfig
from synctva_ros.core.window import TimedFrame
from synctva_ros.windowing.buffers import AudioBuffer, FrameBuffer
from synctva_ros.windowing.clock import finite_time
from synctva_ros.windowing.closing import PendingWindow, transcript_bounds

__all__ = ["OldTimeline"]

KEPT = ("appended", "inserted")  # the buffers' answers for an item they stored


@dataclass
class OldTimeline:
    """The buffers of the timeline before the last backward reset, while they may still be needed.

    Attributes:
        frames, audio: the old timeline's buffers (``None``: nothing held).
        session: the windower session those buffers belong to.
        newest: the old timeline's newest camera/audio stamp (seconds).
        until: the new timeline's sensor time (seconds) after which they are let go.
    """

    frames: Optional[FrameBuffer] = None
    audio: Optional[AudioBuffer] = None
    session: int = -1
    newest: float = 0.0
    until: float = 0.0
    rescued: list[str] = field(default_factory=list)  #: utterance ids already given a window (no second one)

    def hold(self, frames: FrameBuffer, audio: AudioBuffer, session: int, newest: float | None, new_time: float,
             hold_s: float) -> None:
        """Keep ``frames`` and ``audio`` of ``session`` (newest camera/audio stamp ``newest``, s) until the new
        timeline, now at ``new_time`` (s), passes ``new_time + hold_s``; ``hold_s <= 0`` keeps nothing."""
        self.clear()
        if hold_s > 0 and newest is not None and len(frames) + len(audio) > 0:
            self.frames, self.audio, self.session = frames, audio, int(session)
            self.newest, self.until = float(newest), float(new_time) + float(hold_s)

    def clear(self) -> None:
        """Let the old buffers go."""
        self.frames = self.audio = None
        self.session, self.rescued = -1, []

    def live(self, new_time: Optional[float]) -> bool:
        """Whether buffers are held at the new timeline's sensor time ``new_time`` (s); lets them go after."""
        if self.frames is None:
            return False
        if new_time is not None and new_time > self.until:
            self.clear()
            return False
        return True

    def add_frame(self, stamp: float, image: Any) -> bool:
        """A straggling frame of the old timeline (s): kept when buffers are held (True)."""
        return self.frames is not None and self.frames.insert(TimedFrame(stamp, image)) in KEPT

    def add_audio(self, stamp: float, samples: Any) -> bool:
        """A straggling audio chunk of the old timeline (s, resampled): kept when buffers are held (True)."""
        return self.audio is not None and self.audio.insert(stamp, samples) in KEPT

    def straggler(self, text: str, start: object, end: float | None, ref: float, ids: dict[str, str],
                  confidence: object, cfg: WindowingConfig, new_time: float | None) -> PendingWindow | None:
        """The window of a final transcript of the old timeline, when its buffers are held (else ``None``).

        Args:
            text: the cleaned transcript (empty: no window).
            start, end, ref: its bounds and time (s), as for :func:`~.closing.transcript_bounds` (no VAD onset:
                the old timeline's voice activity was reset).
            ids: its cleaned ``utterance_id``, ``dialogue_id``, ``language``, ``speaker_id``.
            confidence: speech-to-text confidence (NaN when not finite).
            cfg: the windowing configuration (rule 2's bounds).
            new_time: the new timeline's newest camera/audio stamp (s).

        Returns:
            ``None`` also for an utterance id already given a window here (once per utterance).
        """
        uid = ids["utterance_id"]
        if not text.strip() or not self.live(new_time) or (uid and uid in self.rescued):
            return None
        self.rescued.append(uid)
        b = transcript_bounds(start, end, ref, cfg)
        conf = float(confidence) if finite_time(confidence) else math.nan  # type: ignore[arg-type]
        return PendingWindow(b.start, b.end, text, "transcript", uid, ids["dialogue_id"], ids["language"], conf,
                             speaker_id=ids["speaker_id"])
