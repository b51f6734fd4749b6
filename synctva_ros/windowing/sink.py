"""The stream-sink protocol: where the windower hands the sensor data it keeps.

Rule 10 of :mod:`synctva_ros.windowing.windower`: an optional sink is given every camera
frame and audio chunk the windower keeps (after thinning, duplicate and late checks and
resampling, so audio at the windower's sample rate), each final transcript it queues a window
for, and is reset with the windower. The
pipeline's :class:`synctva_ros.streaming.StreamingFeatureCache` implements it to compute
features while the utterance is still going on.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

__all__ = ["StreamSink"]


class StreamSink(Protocol):
    """What the windower hands kept sensor data to (rule 10); implemented by
    :class:`synctva_ros.streaming.StreamingFeatureCache`."""

    def on_audio(self, stamp: float, samples: np.ndarray, sample_rate: int) -> None:
        """A kept audio chunk: ``(S,)`` float32 mono at ``sample_rate`` Hz, first sample at ``stamp`` s."""

    def on_frame(self, stamp: float, image: np.ndarray) -> None:
        """A kept camera frame: ``(H, W, 3)`` uint8 RGB at ``stamp`` s."""

    def on_transcript(self, window: Any) -> None:
        """A final, non-empty transcript the windower queued a window for: an
        :class:`~synctva_ros.core.window.UtteranceWindow` with its transcript and ids and no sensor data, before
        that window closes (optional: called only when the sink has it)."""

    def reset(self) -> None:
        """The windower was reset (time went back): forget everything."""
