"""QoS profiles of the node's topics (``rclpy.qos``).

Camera and microphone use ``topics.sensor_qos``: ``sensor_data`` is rclpy's
``qos_profile_sensor_data`` (best effort, as camera drivers publish; REP-2003),
``reliable`` suits a bag replay or a reliable driver. Transcripts, the
``EmotionState`` output and ``/diagnostics`` are always reliable: one lost final
transcript would lose a whole utterance.
"""

from __future__ import annotations

import copy

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

__all__ = ["sensor_qos", "reliable_qos"]


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
