"""QoS profiles of the node's topics."""

from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, ReliabilityPolicy, qos_profile_sensor_data

from synctva_ros.ros.qos import reliable_qos, sensor_qos


def test_sensor_data_is_best_effort_with_the_configured_depth():
    qos = sensor_qos("sensor_data", 7)
    assert qos.reliability == ReliabilityPolicy.BEST_EFFORT and qos.depth == 7
    assert qos_profile_sensor_data.depth == 5  # rclpy's shared profile is not modified


def test_reliable():
    for qos in (sensor_qos("reliable", 3), reliable_qos(3)):
        assert qos.reliability == ReliabilityPolicy.RELIABLE and qos.depth == 3
        assert qos.history == HistoryPolicy.KEEP_LAST and qos.durability == DurabilityPolicy.VOLATILE


def test_the_microphone_keeps_ten_seconds_of_chunks_whatever_the_depth():
    """topics.qos_depth 50 is 1 s of 20 ms chunks: an executor that falls behind by more overwrote audio (soak)."""
    from synctva_ros.ros.qos import AUDIO_MIN_DEPTH, audio_qos

    for kind in ("sensor_data", "reliable"):
        sensor = sensor_qos(kind, 50)
        qos = audio_qos(sensor)
        assert qos.depth == AUDIO_MIN_DEPTH == 500 and qos.reliability == sensor.reliability
        assert sensor.depth == 50  # the camera's profile is not modified
    assert audio_qos(sensor_qos("reliable", 2000)).depth == 2000  # a deeper setting is kept
