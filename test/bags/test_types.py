"""The rosbags typestore: our messages registered, type hashes equal to rosidl's."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from synctva_ros.bags.types import STORE, custom_msgtypes, get_synctva_typestore


def _rosidl_hash(pkg: str, name: str) -> str | None:
    for prefix in (Path(sys.prefix),):
        f = prefix / "share" / pkg / "msg" / f"{name}.json"
        if f.exists():
            hashes = json.loads(f.read_text())["type_hashes"]
            return next(h["hash_string"] for h in hashes if h["type_name"] == f"{pkg}/msg/{name}")
    return None


def test_store_and_custom_types_registered():
    assert STORE.name.startswith("ROS2_")
    ts = get_synctva_typestore()
    names = set(custom_msgtypes())
    assert {"synctva_ros/msg/AudioChunk", "synctva_ros/msg/Transcript", "synctva_ros/msg/EmotionState"} <= names
    for n in names:
        assert n in ts.types
    tr = ts.types["synctva_ros/msg/Transcript"]
    assert {"text", "is_final", "start", "end", "utterance_id"} <= set(tr.__dataclass_fields__)


@pytest.mark.parametrize("pkg,name", [("sensor_msgs", "Image"), ("std_msgs", "String"),
                                      ("synctva_ros", "AudioChunk"), ("synctva_ros", "Transcript"),
                                      ("synctva_ros", "EmotionState")])
def test_type_hashes_equal_rosidl(pkg, name):
    ref = _rosidl_hash(pkg, name)
    if ref is None:
        pytest.skip(f"rosidl type description of {pkg}/{name} not installed")
    assert get_synctva_typestore().hash_rihs01(f"{pkg}/msg/{name}") == ref


def test_cdr_round_trip_of_custom_message():
    import numpy as np

    ts = get_synctva_typestore()
    T = ts.types
    msg = T["synctva_ros/msg/AudioChunk"](
        header=T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=3, nanosec=5), frame_id="mic"),
        sample_rate=16000, channels=1, encoding="S16LE", data=np.arange(8, dtype=np.uint8))
    back = ts.deserialize_cdr(ts.serialize_cdr(msg, "synctva_ros/msg/AudioChunk"), "synctva_ros/msg/AudioChunk")
    assert back.sample_rate == 16000 and back.header.frame_id == "mic"
    np.testing.assert_array_equal(back.data, msg.data)
