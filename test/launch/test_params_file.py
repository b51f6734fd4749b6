"""config/emotion.yaml: a valid ROS params file whose every key is a configuration key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from synctva_ros.config import SyncTVAConfig, load_config

ROOT = Path(__file__).resolve().parents[2]
PARAMS = ROOT / "config" / "emotion.yaml"


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


@pytest.fixture(scope="module")
def params() -> dict:
    data = yaml.safe_load(PARAMS.read_text())
    assert list(data) == ["emotion_node"], "the file must address the node by its launch name"
    assert list(data["emotion_node"]) == ["ros__parameters"]
    return _flatten(data["emotion_node"]["ros__parameters"])


def test_every_key_is_a_config_key(params):
    known = set(SyncTVAConfig().to_flat())
    assert params and set(params) <= known, sorted(set(params) - known)


def test_values_validate_and_have_the_parameter_type(params):
    defaults = load_config(params["runtime.profile"]).to_flat()
    SyncTVAConfig().update(params)  # raises ConfigError on a bad value
    for key, value in params.items():
        # rclpy does not coerce: an int in the file for a double parameter is refused
        assert type(value) is type(defaults[key]), (key, value, defaults[key])


def test_profile_owned_keys_are_left_to_the_profile(params):
    # runtime.profile picks checkpoint/backend/extractors; overriding them here would defeat it
    for key in ("runtime.checkpoint", "runtime.backend", "model.class_names", "features.text_encoder"):
        assert key not in params
