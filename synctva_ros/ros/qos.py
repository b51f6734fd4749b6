"""QoS profiles of the node's topics (``rclpy.qos``).

Camera and microphone use ``topics.sensor_qos``: ``sensor_data`` is rclpy's
``qos_profile_sensor_data`` (best effort, as camera drivers publish; REP-2003),
``reliable`` suits a bag replay or a reliable driver. Transcripts, the
``EmotionState`` output and ``/diagnostics`` are always reliable: one lost final
transcript would lose a whole utterance.

History depth (issue 14's soak, docs/performance.md "Soak"): a subscription keeps the last ``depth``
messages the executor has not taken yet; when the executor falls behind by more, the oldest are
overwritten, silently (no message-lost event). The microphone's depth is therefore at least
:data:`AUDIO_MIN_DEPTH` (10 s of 20 ms chunks, about 0.3 MB of 16 kHz S16LE): with ``topics.qos_depth`` 50
(1 s of chunks) the node lost 13 % of the audio chunks on a loaded 2-core machine, and 0.4 % with 500. The
camera keeps ``topics.qos_depth``: the middleware keeps the memory of the largest backlog its history ever
held (measured: +140 MB after a 6 s stall with depth 500, never given back), which for 0.9 MB frames would
be up to 450 MB, while the windower keeps only 10 frames per second anyway.
"""

from __future__ import annotations

import copy

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

__all__ = ["sensor_qos", "reliable_qos", "audio_qos", "AUDIO_MIN_DEPTH"]

#: Least history depth of the microphone subscription (messages): 10 s of 20 ms chunks.
AUDIO_MIN_DEPTH = 500


def sensor_qos(kind: str, depth: int) -> QoSProfile:
    """QoS for camera and microphone subscriptions.

    Args:
        kind: ``topics.sensor_qos``: ``sensor_data`` (SensorDataQoS, best effort) or
            anything else for reliable.
        depth: history depth (``topics.qos_depth``), messages.

    Returns:
        A new profile (keep last ``depth``, volatile).
    """
    if kind == "sensor_data":
        qos = copy.copy(qos_profile_sensor_data)
        qos.depth = depth
        return qos
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def reliable_qos(depth: int) -> QoSProfile:
    """Reliable, volatile, keep last ``depth`` messages (transcripts and outputs)."""
    return sensor_qos("reliable", depth)


def audio_qos(sensor: QoSProfile) -> QoSProfile:
    """The microphone's QoS: ``sensor`` (:func:`sensor_qos`) with a depth of at least :data:`AUDIO_MIN_DEPTH`
    (module docstring). A new profile; ``sensor`` is not modified."""
    qos = copy.copy(sensor)
    qos.depth = max(int(sensor.depth), AUDIO_MIN_DEPTH)
    return qos
