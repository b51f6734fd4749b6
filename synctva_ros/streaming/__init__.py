"""Incremental audio and visual features while an utterance is still going.

When the final transcript closes a window, the batch path runs openSMILE over the whole window
audio and the visual encoder over every sampled frame. Both inputs arrive long before that, so
:class:`StreamingFeatureCache` works on them as they come, and at close only looks up, pools and
fills in what it could not compute ahead.

Modules:

* :mod:`~synctva_ros.streaming.feature_cache`: :class:`StreamingFeatureCache`, the windower's sink
  (``on_audio``, ``on_frame``, ``reset``), its background thread and bounded queues, and what the
  pipeline calls at close (``features_for``, ``wait_ready``, ``describe``).
* :mod:`~synctva_ros.streaming.audio_stream`: the continuous audio segment on a sensor-time 10 ms
  grid that both audio modes share, and the common interface of a mode.
* :mod:`~synctva_ros.streaming.audio_context`: ``audio_mode="context"``, one live openSMILE run
  over the stream (the default, :data:`DEFAULT_AUDIO_MODE`, taken from the configuration schema).
* :mod:`~synctva_ros.streaming.audio_exact`: ``audio_mode="exact"``, block-wise openSMILE giving
  the batch extractor's values bit for bit.
* :mod:`~synctva_ros.streaming.audio_modes`: the modes and the one place one is chosen.
* :mod:`~synctva_ros.streaming.visual_cache`: frame embeddings encoded as frames arrive.
"""

from __future__ import annotations

from synctva_ros.streaming.audio_modes import AUDIO_MODES, DEFAULT_AUDIO_MODE
from synctva_ros.streaming.audio_stream import LEFT_CONTEXT_S, RIGHT_CONTEXT_S
from synctva_ros.streaming.feature_cache import StreamingFeatureCache

__all__ = ["StreamingFeatureCache", "LEFT_CONTEXT_S", "RIGHT_CONTEXT_S", "AUDIO_MODES", "DEFAULT_AUDIO_MODE"]
