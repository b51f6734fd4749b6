"""synctva_ros.config: the one schema (defaults, overrides, ranges, choices, profiles, paths)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from synctva_ros.config import (PROFILES_DIR, ConfigError, SyncTVAConfig, WindowingConfig, load_config,
                                package_root, parse_overrides, resolve_path)

ROOT = Path(__file__).resolve().parents[1]
PROFILES = sorted((ROOT / PROFILES_DIR).glob("*.yaml"))
DESCRIBED = SyncTVAConfig.describe()


def _outside(lo: float, hi: float, kind: type) -> tuple[float, float]:
    """A value just below ``lo`` and one just above ``hi`` for a field of type ``kind``."""
    if kind is int:
        return lo - 1, hi + 1
    step = max(1e-3 * (hi - lo), 1e-6)
    return lo - step, hi + step


def test_every_key_is_described_with_its_metadata():
    flat = SyncTVAConfig().to_flat()
    assert set(flat) == set(DESCRIBED) and len(flat) > 50
    for key, meta in DESCRIBED.items():
        assert meta["description"].strip(), key
        assert set(meta) == {"description", "range", "read_only", "choices"}
        if meta["choices"]:
            assert flat[key] in meta["choices"], key
        if meta["range"] is not None:
            lo, hi = meta["range"]
            assert lo <= flat[key] <= hi, key


def test_no_profile_gives_the_dataclass_defaults():
    assert load_config(None).to_dict() == SyncTVAConfig().to_dict()


@pytest.mark.parametrize("key", [k for k, m in DESCRIBED.items() if m["range"] is not None])
def test_range_bounds_are_inclusive_and_values_outside_are_refused(key):
    lo, hi = DESCRIBED[key]["range"]
    kind = type(SyncTVAConfig().to_flat()[key])
    cfg = SyncTVAConfig()
    for ok in (lo, hi):
        cfg.update({key: ok})
        assert cfg.to_flat()[key] == ok and type(cfg.to_flat()[key]) is kind
    for bad in _outside(lo, hi, kind):
        with pytest.raises(ConfigError, match=f"'{key}' = .* is outside"):
            cfg.update({key: bad})
    assert cfg.to_flat()[key] == hi  # a refused value leaves the last valid one


@pytest.mark.parametrize("key", [k for k, m in DESCRIBED.items() if m["choices"]])
def test_choices_are_enforced(key):
    cfg = SyncTVAConfig()
    for choice in DESCRIBED[key]["choices"]:
        cfg.update({key: choice})
        assert cfg.to_flat()[key] == choice
    with pytest.raises(ConfigError, match="is not one of"):
        cfg.update({key: "no-such-choice"})


def test_flat_and_nested_overrides_are_coerced_to_the_field_type():
    cfg = load_config(None, {"windowing.late_s": "0.5", "topics.qos_depth": "7", "windowing.vad_enabled": "false",
                             "model.class_names": "a, b,c", "runtime": {"device": "cuda:1", "threads": 3.0}})
    assert cfg.windowing.late_s == 0.5 and isinstance(cfg.windowing.late_s, float)
    assert cfg.topics.qos_depth == 7 and isinstance(cfg.topics.qos_depth, int)
    assert cfg.windowing.vad_enabled is False
    assert cfg.model.class_names == ["a", "b", "c"]
    assert (cfg.runtime.device, cfg.runtime.threads) == ("cuda:1", 3)
    # an int where a float is expected becomes a float (ROS double parameters)
    assert isinstance(load_config(None, {"windowing.late_s": 1}).windowing.late_s, float)


@pytest.mark.parametrize("key, value, message", [
    ("windowing.nope", 1, "unknown configuration key 'windowing.nope' \\(known in 'windowing': .*late_s"),
    ("nosection.key", 1, "unknown configuration key 'nosection.key'"),
    ("late_s", 1, "unknown configuration key 'late_s'"),
    ("windowing.late_s", "soon", "'windowing.late_s' must be a number"),
    ("windowing.late_s", True, "'windowing.late_s' must be a number"),
    ("windowing.max_frames", 2.5, "'windowing.max_frames' must be an integer"),
    ("windowing.vad_enabled", "maybe", "'windowing.vad_enabled' must be a boolean"),
    ("model.class_names", 3, "'model.class_names' must be a list"),
])
def test_bad_keys_and_values_raise_config_error_naming_the_key(key, value, message):
    with pytest.raises(ConfigError, match=message):
        SyncTVAConfig().update({key: value})
    assert issubclass(ConfigError, ValueError)


def test_parse_overrides_reads_yaml_scalars_and_the_last_value_wins():
    parsed = parse_overrides(["windowing.late_s=0.25", "model.class_names=[x, y]", "runtime.cache_dir=",
                              "runtime.device = cpu", "windowing.late_s=0.75", "topics.image=a=b"])
    assert parsed == {"windowing.late_s": 0.75, "model.class_names": ["x", "y"], "runtime.cache_dir": "",
                      "runtime.device": "cpu", "topics.image": "a=b"}
    cfg = load_config(None, ["windowing.late_s=0.25", "model.class_names=[x, y]"])
    assert cfg.windowing.late_s == 0.25 and cfg.model.class_names == ["x", "y"]
    with pytest.raises(ConfigError, match="'windowing.late_s' is not key=value"):
        parse_overrides(["windowing.late_s"])


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.stem)
def test_every_shipped_profile_loads_and_sets_what_its_file_says(path):
    data = yaml.safe_load(path.read_text())
    cfg = load_config(path.stem)
    assert cfg.runtime.profile == path.stem
    flat = cfg.to_flat()
    for section, values in data.items():
        for name, value in values.items():
            assert flat[f"{section}.{name}"] == value, (section, name)
    assert load_config(str(path)).to_dict() == cfg.to_dict()  # by path, the same
    # overrides apply on top of the profile
    assert load_config(path.stem, ["windowing.late_s=1.5"]).windowing.late_s == 1.5


def test_profiles_differ_where_their_files_differ():
    demo, iemocap = load_config("demo"), load_config("iemocap")
    assert demo.model.class_names != iemocap.model.class_names
    assert len(iemocap.model.class_names) == 6 and len(demo.model.class_names) == 7


def test_profile_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such_profile"):
        load_config("no_such_profile")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  hidden: 3\n")
    with pytest.raises(ConfigError, match="'model.hidden' = 3 is outside"):
        load_config(str(bad))
    listed = tmp_path / "listed.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping of sections"):
        load_config(str(listed))
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_config(str(empty)).to_dict() == SyncTVAConfig().to_dict()


def test_package_root_is_the_checkout_or_synctva_home(tmp_path, monkeypatch):
    monkeypatch.delenv("SYNCTVA_HOME", raising=False)
    assert package_root() == ROOT and (package_root() / PROFILES_DIR).is_dir()
    monkeypatch.setenv("SYNCTVA_HOME", str(tmp_path / "home"))
    assert package_root() == tmp_path / "home"  # returned as given, even before it exists
    monkeypatch.setenv("SYNCTVA_HOME", "")
    assert package_root() == ROOT


def test_profiles_are_found_under_synctva_home_from_any_directory(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / PROFILES_DIR).mkdir(parents=True)
    (home / PROFILES_DIR / "robot.yaml").write_text("windowing:\n  late_s: 2.5\n")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("SYNCTVA_HOME", str(home))
    cfg = load_config("robot")
    assert cfg.windowing.late_s == 2.5 and cfg.runtime.profile == "robot"
    with pytest.raises(FileNotFoundError):
        load_config("demo")  # not in the working directory nor in SYNCTVA_HOME


def test_resolve_path_prefers_the_working_directory(tmp_path, monkeypatch):
    home, work = tmp_path / "home", tmp_path / "work"
    for base in (home, work):
        (base / "models").mkdir(parents=True)
    (home / "models" / "only_home.txt").write_text("h")
    (home / "models" / "both.txt").write_text("h")
    (work / "models" / "both.txt").write_text("w")
    monkeypatch.chdir(work)
    monkeypatch.setenv("SYNCTVA_HOME", str(home))
    assert resolve_path("models/both.txt").read_text() == "w"
    assert resolve_path("models/only_home.txt") == home / "models" / "only_home.txt"
    assert resolve_path(str(home / "models" / "both.txt")) == home / "models" / "both.txt"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_path(str(tmp_path / "absent.txt"))
    with pytest.raises(FileNotFoundError, match="'models/absent.txt' not found"):
        resolve_path("models/absent.txt")


def test_sections_are_independent_instances():
    a, b = SyncTVAConfig(), SyncTVAConfig()
    a.update({"model.class_names": ["x"], "windowing.late_s": 2.0})
    assert b.model.class_names == SyncTVAConfig().model.class_names and b.windowing.late_s == WindowingConfig().late_s
    assert dataclasses.asdict(WindowingConfig()) == SyncTVAConfig().to_dict()["windowing"]


#: Keys whose value is read only where an object is built at configure (grep of every use, issue 14 item 9):
#: the frame/audio buffers and the streaming cache (buffer_s, max_frames), the WebRTC VAD (vad_*), the visual
#: extractor (visual_fps, max_frames, face_crop). A run-time change would be accepted and do nothing.
READ_AT_CONFIGURE = {"windowing.buffer_s", "windowing.max_frames", "windowing.vad_enabled",
                     "windowing.vad_aggressiveness", "windowing.vad_frame_ms", "windowing.vad_min_speech_s",
                     "windowing.vad_hangover_s", "features.visual_fps", "features.max_frames", "features.face_crop"}
#: The writable keys: each is read from the live configuration at every use (windower and closer decisions,
#: the diagnostics timer, the diagnostics thresholds, the EmotionState frame id at each publish). A new writable
#: key must be added here deliberately.
READ_AT_EACH_USE = {"windowing.frame_keep_hz", "windowing.max_window_s", "windowing.min_window_s",
                    "windowing.late_s", "windowing.stt_timeout_s", "windowing.time_reset_s",
                    "windowing.default_window_s", "windowing.max_pending", "windowing.audio_grid_s",
                    "windowing.future_tolerance_s", "windowing.stream_wait_s", "windowing.straggler_s",
                    "runtime.diagnostics_hz", "runtime.latency_warn_s", "runtime.latency_error_s",
                    "output.frame_id",
                    # backend triton reads its live section at every request (synctva_ros/backends/triton_backend.py)
                    "triton.timeout_s", "triton.retries", "triton.retry_interval_s", "triton.pad_nodes",
                    "triton.verify_tolerance"}


def test_keys_read_only_at_configure_are_read_only():
    assert READ_AT_CONFIGURE <= set(DESCRIBED)
    assert [k for k in sorted(READ_AT_CONFIGURE) if not DESCRIBED[k]["read_only"]] == []


def test_every_writable_key_is_read_at_each_use():
    writable = {k for k, m in DESCRIBED.items() if not m["read_only"]}
    assert writable <= READ_AT_EACH_USE, sorted(writable - READ_AT_EACH_USE)
