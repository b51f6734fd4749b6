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
