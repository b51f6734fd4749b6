"""The streaming audio modes (ROS parameter ``features.streaming_audio``) and the one place one is chosen.

``"context"`` (:class:`~synctva_ros.streaming.audio_context.ContextAudio`): one live openSMILE run
over the microphone stream, pooled per window at close; frames at a window's edges see the audio
around it. ``"exact"`` (:class:`~synctva_ros.streaming.audio_exact.ExactAudio`): block-wise
openSMILE, the batch extractor's values bit for bit. The default is the configuration schema's
(:attr:`synctva_ros.config.FeaturesConfig.streaming_audio`), so the library and the node agree.
"""

from __future__ import annotations

import logging
from collections import Counter

from synctva_ros.config import FeaturesConfig
from synctva_ros.features.audio import OpenSmileAudio
from synctva_ros.features.opensmile_live import LiveOpenSmileError
from synctva_ros.streaming.audio_context import ContextAudio
from synctva_ros.streaming.audio_exact import ExactAudio
from synctva_ros.streaming.audio_stream import AudioStream

__all__ = ["AUDIO_MODES", "DEFAULT_AUDIO_MODE", "build_audio_stream"]

log = logging.getLogger(__name__)

#: ``audio_mode`` values.
AUDIO_MODES = (ExactAudio.mode, ContextAudio.mode)
#: ``audio_mode`` when none is given: the configuration schema's default for ``features.streaming_audio``.
DEFAULT_AUDIO_MODE: str = FeaturesConfig.streaming_audio


def build_audio_stream(mode: str, ext: OpenSmileAudio | None, stats: Counter[str], *, buffer_s: float,
                       block_s: float, left_context_s: float, gap_tolerance_s: float, exact: bool,
                       rotate_s: float) -> AudioStream | None:
    """The audio stream of ``mode`` over the batch extractor ``ext``, or ``None`` where nothing is streamed.

    Args:
        mode: one of :data:`AUDIO_MODES`.
        ext: the batch audio extractor (``OpenSmileAudio``) or ``None``; with ``level="functionals"``
            there are no LLD frames to stream (the batch extractor serves every window).
        stats: the cache's counters, shared with the stream.
        buffer_s, block_s, left_context_s, gap_tolerance_s: as
            :class:`~synctva_ros.streaming.audio_stream.AudioStream` (seconds).
        exact: ``"exact"`` mode: windows off the 10 ms grid fall back to the batch extractor.
        rotate_s: ``"context"`` mode: seconds of audio per live openSMILE run before a hand-over.

    Returns:
        An :class:`ExactAudio` or :class:`ContextAudio`; ``"context"`` gives an :class:`ExactAudio`,
        with a warning, where the installed opensmile package cannot stream.

    Raises:
        ValueError: an unknown ``mode``.
    """
    if mode not in AUDIO_MODES:
        raise ValueError(f"audio_mode must be one of {AUDIO_MODES}, got {mode!r}")
    if ext is None or ext.level == "functionals":
        return None
    common = dict(buffer_s=buffer_s, block_s=block_s, left_context_s=left_context_s,
                  gap_tolerance_s=gap_tolerance_s)
    if mode == ContextAudio.mode:
        try:
            return ContextAudio(ext, stats, rotate_s=rotate_s, **common)
        except LiveOpenSmileError as exc:
            log.warning("streaming audio_mode 'context' unavailable (%s): using 'exact'", exc)
    return ExactAudio(ext, stats, exact=exact, **common)
