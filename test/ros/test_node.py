"""EmotionNode parameters, lifecycle start-up and errors, over real DDS (no checkpoint needed).

Runs the node with ``autostart:=false`` (it stays *unconfigured*, so no model is
loaded) and queries it from another process through its parameter services
(``ros2 param describe`` is not installable here).
"""

from __future__ import annotations


import pytest

from synctva_ros.config import SyncTVAConfig, load_config

NODE_FQN = "/emotion_node"
# rcl_interfaces/ParameterType
PARAMETER_BOOL, PARAMETER_INTEGER, PARAMETER_DOUBLE, PARAMETER_STRING, PARAMETER_STRING_ARRAY = 1, 2, 3, 4, 9


@pytest.fixture(scope="module")
def described(node_process, run_client):
    """Descriptors and values of a node started with profile iemocap and one override."""
    node = node_process(["-p", "autostart:=false", "-p", "runtime.profile:=iemocap",
                                 "-p", "windowing.late_s:=0.5"])
    try:
        keys = list(SyncTVAConfig().to_flat()) + ["autostart"]
        out = run_client("params", NODE_FQN, *keys)
        state = run_client("state", NODE_FQN)
        assert node.alive(), node.output()
        yield out, state, node
    finally:
        node.stop()


def test_every_config_key_is_a_described_parameter(described):
    params, _, _ = described
    meta = SyncTVAConfig.describe()
    defaults = SyncTVAConfig().to_flat()
    for key, m in meta.items():
        d = params[key]
        assert d["name"] == key
        assert d["description"] == m["description"] and d["description"], key
        assert d["read_only"] == bool(m["read_only"]), key
        value = defaults[key]
        expected_type = {bool: PARAMETER_BOOL, int: PARAMETER_INTEGER, float: PARAMETER_DOUBLE,
                         str: PARAMETER_STRING, list: PARAMETER_STRING_ARRAY}[type(value)]
        assert d["type"] == expected_type, key
        if m["range"] is not None and isinstance(value, float):
            assert d["float_range"] and d["float_range"][0][:2] == pytest.approx(list(m["range"])), key
        elif m["range"] is not None and isinstance(value, int) and not isinstance(value, bool):
            assert d["int_range"] and d["int_range"][0][:2] == list(m["range"]), key
        else:
            assert not d["float_range"] and not d["int_range"], key
        for choice in m["choices"] or ():
            assert choice in d["additional_constraints"], key
    assert params["autostart"]["read_only"] and params["autostart"]["description"]


def test_profile_values_are_the_defaults_and_overrides_win(described):
    params, _, _ = described
    profile = load_config("iemocap")
    assert params["runtime.profile"]["value"] == "iemocap"
    assert params["model.class_names"]["value"] == profile.model.class_names
    assert params["model.class_names"]["value"] != SyncTVAConfig().model.class_names  # really the profile's
    assert params["runtime.checkpoint"]["value"] == profile.runtime.checkpoint
    assert params["windowing.late_s"]["value"] == 0.5 != profile.windowing.late_s
    assert params["autostart"]["value"] is False


def test_without_autostart_the_node_waits_unconfigured(described):
    _, state, node = described
    assert state["state"] == "unconfigured"
    assert node.alive()


def test_set_parameters_are_validated(described, run_client):
    _, _, node = described
    out_of_range = run_client("set", NODE_FQN, "windowing.late_s", "20.0")
    assert not out_of_range["successful"]
    read_only = run_client("set", NODE_FQN, "runtime.backend", "onnxruntime")
    assert not read_only["successful"]
    ok = run_client("set", NODE_FQN, "windowing.late_s", "0.4")
    assert ok["successful"], ok["reason"]
    now = run_client("params", NODE_FQN, "windowing.late_s", "runtime.backend")
    assert now["windowing.late_s"]["value"] == 0.4
    assert now["runtime.backend"]["value"] == load_config("iemocap").runtime.backend
    assert node.alive()


@pytest.mark.parametrize("key, raw", [("windowing.buffer_s", "60.0"), ("windowing.max_frames", "100"),
                                      ("windowing.vad_enabled", "false"), ("windowing.vad_aggressiveness", "3"),
                                      ("features.visual_fps", "4.0"), ("features.max_frames", "4"),
                                      ("features.face_crop", "false")])
def test_parameters_read_only_at_configure_refuse_set_parameters(described, run_client, key, raw):
    """Issue 14 item 9: these are read only where the windower and extractors are built, so a run-time
    ``ros2 param set`` used to be accepted and do nothing; now it is refused with a reason."""
    _, _, node = described
    before = run_client("params", NODE_FQN, key)[key]["value"]
    out = run_client("set", NODE_FQN, key, raw)
    assert not out["successful"] and "read-only" in out["reason"] and key in out["reason"], out
    assert run_client("params", NODE_FQN, key)[key]["value"] == before
    assert node.alive()


@pytest.mark.parametrize("args, needle", [
    (["-p", "runtime.profile:=no_such_profile"], "no_such_profile"),
    (["-p", "windowing.late_s:=99.0"], "windowing.late_s"),
    (["-p", "runtime.backend:=tpu"], "tpu"),
])
def test_invalid_configuration_exits_with_a_message(start_node, args, needle):
    node = start_node("-p", "autostart:=false", *args)
    status = node.wait(60)
    assert status == 1
    out = node.output()
    assert needle in out and "[FATAL]" in out
    assert "Traceback" not in out, out  # a clean message, and a clean shutdown after it


def test_autostart_failure_exits_with_status_1(start_node, tmp_path):
    node = start_node("-p", f"runtime.checkpoint:={tmp_path / 'missing'}")
    assert node.wait(120) == 1
    assert "could not configure" in node.output() and "Traceback" not in node.output()
