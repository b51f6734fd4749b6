"""Parameter descriptors and run-time validation (rcl_interfaces messages, rclpy Parameter objects; no node).

Declaring them on a real node is tested over DDS in test_node.py.
"""

from __future__ import annotations

from rclpy.parameter import Parameter

from synctva_ros.config import SyncTVAConfig
from synctva_ros.ros.parameters import apply_parameter_updates, parameter_descriptor


def test_descriptor_ranges_follow_the_value_type():
    meta = SyncTVAConfig.describe()
    late = parameter_descriptor("windowing.late_s", meta["windowing.late_s"], 0.3)
    lo, hi = meta["windowing.late_s"]["range"]
    assert late.name == "windowing.late_s" and late.description == meta["windowing.late_s"]["description"]
    assert [(r.from_value, r.to_value, r.step) for r in late.floating_point_range] == [(lo, hi, 0.0)]
    assert not late.integer_range and not late.read_only
    aggr = parameter_descriptor("windowing.vad_aggressiveness", meta["windowing.vad_aggressiveness"], 2)
    assert [(r.from_value, r.to_value, r.step) for r in aggr.integer_range] == [(0, 3, 1)]
    assert not aggr.floating_point_range


def test_descriptor_read_only_choices_and_no_range_for_bool():
    meta = SyncTVAConfig.describe()
    backend = parameter_descriptor("runtime.backend", meta["runtime.backend"], "torch")
    assert backend.read_only == bool(meta["runtime.backend"]["read_only"])
    assert backend.additional_constraints == "one of: " + ", ".join(meta["runtime.backend"]["choices"])
    flag = parameter_descriptor("x.flag", {"description": "d", "range": (0, 1)}, True)
    assert not flag.integer_range and not flag.floating_point_range and flag.additional_constraints == ""


def test_keys_read_at_configure_have_read_only_descriptors():
    """rclpy refuses ``set_parameters`` on these (issue 14 item 9); a change would otherwise do nothing."""
    meta, flat = SyncTVAConfig.describe(), SyncTVAConfig().to_flat()
    for key in ("windowing.buffer_s", "windowing.max_frames", "windowing.vad_enabled", "windowing.vad_frame_ms",
                "features.visual_fps", "features.max_frames", "features.face_crop"):
        assert parameter_descriptor(key, meta[key], flat[key]).read_only, key
    assert not parameter_descriptor("windowing.late_s", meta["windowing.late_s"], 0.3).read_only


def test_valid_update_is_applied_in_place():
    cfg = SyncTVAConfig()
    result, applied = apply_parameter_updates(cfg, [Parameter("windowing.late_s", value=0.4),
                                                    Parameter("use_sim_time", value=True)])
    assert result.successful and applied == {"windowing.late_s"}
    assert cfg.windowing.late_s == 0.4


def test_invalid_update_is_refused_and_nothing_applied():
    cfg = SyncTVAConfig()
    before = cfg.to_flat()
    result, applied = apply_parameter_updates(cfg, [Parameter("windowing.max_window_s", value=20.0),
                                                    Parameter("windowing.late_s", value=20.0)])
    assert not result.successful and "windowing.late_s" in result.reason
    assert applied == set() and cfg.to_flat() == before  # all or nothing


def test_updates_outside_the_schema_are_left_alone():
    result, applied = apply_parameter_updates(SyncTVAConfig(), [Parameter("autostart", value=False)])
    assert result.successful and applied == set()


def test_array_values_become_lists():
    """rclpy may hand a string array over as a tuple; the configuration keeps lists."""
    cfg = SyncTVAConfig()
    names = tuple(reversed(cfg.model.class_names))
    result, applied = apply_parameter_updates(cfg, [Parameter("model.class_names", Parameter.Type.STRING_ARRAY,
                                                              names)])
    assert result.successful and applied == {"model.class_names"}
    assert cfg.model.class_names == list(names) and type(cfg.model.class_names) is list
