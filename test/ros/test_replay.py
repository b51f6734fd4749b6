"""Replay a bag onto live topics: player and subscriber in separate processes (real rclpy, Fast DDS)."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("rosgraph_msgs")

from rosbags.rosbag2 import StoragePlugin, Writer  # noqa: E402

from synctva_ros.bags.types import get_synctva_typestore  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
_SHARED_DEV = Path(os.environ.get("SYNCTVA_DATA", "/work/shared/data")) / "meld" / "dev_sent_emo.csv"
#: MELD dev CSV (shared data), else the demo sample shipped in the repository.
MELD_DEV = (_SHARED_DEV if _SHARED_DEV.exists()
            else Path(__file__).resolve().parents[2] / "data" / "demo" / "meld_dev_sample.csv")
T0_NS = 1_704_067_200 * 1_000_000_000

SUBSCRIBER = r"""
import json, sys, time
import rclpy
from rclpy.qos import QoSProfile
from rosgraph_msgs.msg import Clock
from std_msgs.msg import String
from sensor_msgs.msg import Image
out, ready, expected, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
rclpy.init()
node = rclpy.create_node("replay_test_sub")
got, clock = [], []
qos = QoSProfile(depth=1000)
def on_string(m): got.append(["/chatter", time.monotonic(), int(m.data)])
def on_image(m): got.append(["/camera/image_raw", time.monotonic(),
                             m.header.stamp.sec * 10**9 + m.header.stamp.nanosec, list(m.data[:4])])
node.create_subscription(String, "/chatter", on_string, qos)
node.create_subscription(Image, "/camera/image_raw", on_image, qos)
node.create_subscription(Clock, "/clock", lambda m: clock.append(m.clock.sec * 10**9 + m.clock.nanosec),
                         QoSProfile(depth=1000))
open(ready, "w").write("ready")
end = time.monotonic() + timeout
while len(got) < expected and time.monotonic() < end:
    rclpy.spin_once(node, timeout_sec=0.05)
for _ in range(10):
    rclpy.spin_once(node, timeout_sec=0.02)
json.dump({"got": got, "clock": clock}, open(out, "w"))
node.destroy_node()
rclpy.shutdown()
"""

PLAYER = r"""
import json, sys
from synctva_ros.ros.replay import replay_bag
stats = replay_bag(sys.argv[1], rate=float(sys.argv[2]), wait_for_subscribers_s=10.0)
json.dump(stats, open(sys.argv[3], "w"))
"""


def _env(domain: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", OMP_NUM_THREADS="1",
               PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""))
    return env


def _write_std_bag(path: Path, n_text: int = 20, n_img: int = 10, duration_s: float = 1.0) -> None:
    """std_msgs/String on /chatter and 4x4 rgb8 images on /camera/image_raw over ``duration_s``."""
    ts = get_synctva_typestore()
    T = ts.types
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        c_txt = w.add_connection("/chatter", "std_msgs/msg/String", typestore=ts)
        c_img = w.add_connection("/camera/image_raw", "sensor_msgs/msg/Image", typestore=ts)
        events = [(T0_NS + int(i * duration_s / (n_text - 1) * 1e9), "t", i) for i in range(n_text)]
        events += [(T0_NS + int((i + 0.5) * duration_s / n_img * 1e9), "i", i) for i in range(n_img)]
        for ns, kind, i in sorted(events):
            if kind == "t":
                w.write(c_txt, ns, ts.serialize_cdr(T["std_msgs/msg/String"](data=str(i)), "std_msgs/msg/String"))
            else:
                stamp = T["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9)
                img = T["sensor_msgs/msg/Image"](
                    header=T["std_msgs/msg/Header"](stamp=stamp, frame_id="camera"), height=4, width=4,
                    encoding="rgb8", is_bigendian=0, step=12, data=np.full(48, i, np.uint8))
                w.write(c_img, ns, ts.serialize_cdr(img, "sensor_msgs/msg/Image"))


def _run(bag: Path, tmp: Path, expected: int, rate: float) -> tuple[dict, dict]:
    domain = random.Random(os.getpid() ^ time.time_ns()).randint(1, 100)
    env = _env(domain)
    out, ready, stats = tmp / "sub.json", tmp / "ready", tmp / "stats.json"
    sub = subprocess.Popen([sys.executable, "-c", SUBSCRIBER, str(out), str(ready), str(expected), "30"],
                           env=env, cwd=REPO)
    try:
        end = time.monotonic() + 30
        while not ready.exists() and time.monotonic() < end and sub.poll() is None:
            time.sleep(0.05)
        assert ready.exists(), "subscriber did not start"
        player = subprocess.run([sys.executable, "-c", PLAYER, str(bag), str(rate), str(stats)], env=env,
                                cwd=REPO, timeout=60, capture_output=True, text=True)
        assert player.returncode == 0, player.stderr
        sub.wait(timeout=40)
    finally:
        if sub.poll() is None:
            sub.kill()
    return json.loads(out.read_text()), json.loads(stats.read_text())


def test_replay_publishes_in_order_with_scaled_timing_and_clock(tmp_path):
    bag = tmp_path / "bag"
    _write_std_bag(bag, n_text=20, n_img=10, duration_s=1.0)
    rate = 2.0
    received, stats = _run(bag, tmp_path, expected=30, rate=rate)
    got = received["got"]
    assert stats["published"] == {"/chatter": 20, "/camera/image_raw": 10}
    assert stats["skipped_topics"] == {}
    # the player cannot run faster than the scaled bag duration
    assert stats["wall_s"] >= 0.9 * 1.0 / rate
    assert stats["wall_s"] < 1.0 / rate + 10.0
    # everything arrived, each topic in order, images byte-exact
    chatter = [g[2] for g in got if g[0] == "/chatter"]
    images = [g for g in got if g[0] == "/camera/image_raw"]
    assert chatter == list(range(20))
    assert [g[2] for g in images] == sorted(g[2] for g in images) and len(images) == 10
    assert [g[3] for g in images] == [[i] * 4 for i in range(10)]
    # gross ordering across topics follows the bag: image 0 (t=0.05 s) after text 0, before the last text
    order = [(g[0], g[2]) for g in got]
    assert order.index(("/chatter", 0)) < order.index(("/camera/image_raw", images[0][2]))
    assert order.index(("/camera/image_raw", images[0][2])) < order.index(("/chatter", 19))
    # /clock carries bag time, never goes backwards, spans the bag
    clock = received["clock"]
    assert clock, "no /clock received"
    assert clock == sorted(clock)
    assert T0_NS <= clock[0] and clock[-1] <= T0_NS + 10**9
    assert clock[-1] >= T0_NS + int(0.9e9)


@pytest.mark.skipif(importlib.util.find_spec("synctva_ros.msg") is None,
                    reason="synctva_ros interfaces not built")
def test_replay_custom_types_round_trip(tmp_path):
    """A make_bag bag (custom AudioChunk / Transcript) replays; the subscriber decodes them."""
    from synctva_ros.bags.make_bag import make_bag, read_meld_csv

    if not MELD_DEV.exists():
        pytest.skip(f"{MELD_DEV} not present")
    summary = make_bag(MELD_DEV, tmp_path / "bag", max_utterances=1, size=(32, 24), fps=5, lead_in_s=0.1,
                       tail_s=0.1)
    row = read_meld_csv(MELD_DEV, max_utterances=1)[0]
    sub_code = r"""
import json, sys, time
import rclpy
from rclpy.qos import QoSProfile
from synctva_ros.msg import AudioChunk, Transcript
out, ready, n_audio = sys.argv[1], sys.argv[2], int(sys.argv[3])
rclpy.init(); node = rclpy.create_node("replay_custom_sub")
audio, texts = [], []
node.create_subscription(AudioChunk, "/audio", lambda m: audio.append(len(m.data)), QoSProfile(depth=5000))
node.create_subscription(Transcript, "/speech", lambda m: texts.append([m.text, m.utterance_id]),
                         QoSProfile(depth=10))
open(ready, "w").write("ready")
end = time.monotonic() + 40
while (len(audio) < n_audio or not texts) and time.monotonic() < end:
    rclpy.spin_once(node, timeout_sec=0.05)
json.dump({"audio": audio, "texts": texts}, open(out, "w"))
node.destroy_node(); rclpy.shutdown()
"""
    env = _env(random.Random(os.getpid() + 7 ^ time.time_ns()).randint(1, 100))
    out, ready, stats = tmp_path / "sub.json", tmp_path / "ready", tmp_path / "stats.json"
    n_audio = summary["messages"]["/audio"]
    sub = subprocess.Popen([sys.executable, "-c", sub_code, str(out), str(ready), str(n_audio)], env=env, cwd=REPO)
    try:
        end = time.monotonic() + 30
        while not ready.exists() and time.monotonic() < end and sub.poll() is None:
            time.sleep(0.05)
        player = subprocess.run([sys.executable, "-c", PLAYER, str(tmp_path / "bag"), "4.0", str(stats)],
                                env=env, cwd=REPO, timeout=60, capture_output=True, text=True)
        assert player.returncode == 0, player.stderr
        sub.wait(timeout=45)
    finally:
        if sub.poll() is None:
            sub.kill()
    got = json.loads(out.read_text())
    assert len(got["audio"]) == n_audio
    assert sum(got["audio"]) == round(summary["duration_s"] * 16000) * 2
    assert got["texts"] == [[row.text, row.uid]]


def test_latched_topics_reach_a_subscriber_that_joins_later(tmp_path):
    """A topic recorded from a transient-local publisher (REP-155's latched person ids) is replayed transient-local:
    a subscriber that subscribes after it was published (as the node does once a tracked list names the person)
    still gets it, and the replay does not wait for subscribers on per-person topics."""
    from synctva_ros.bags.hri import LATCHED_QOS
    from synctva_ros.ros.replay import recorded_latched

    ts = get_synctva_typestore()
    T = ts.types
    bag = tmp_path / "bag"
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        c_lat = w.add_connection("/humans/persons/anna/voice_id", "std_msgs/msg/String", typestore=ts,
                                 offered_qos_profiles=LATCHED_QOS)
        c_vol = w.add_connection("/chatter", "std_msgs/msg/String", typestore=ts)
        for c, data in ((c_lat, "voice_anna"), (c_vol, "missed")):
            w.write(c, T0_NS, ts.serialize_cdr(T["std_msgs/msg/String"](data=data), "std_msgs/msg/String"))
        end = ts.serialize_cdr(T["std_msgs/msg/String"](data="end"), "std_msgs/msg/String")
        w.write(c_vol, T0_NS + 4 * 10**9, end)
    from rosbags.highlevel import AnyReader

    with AnyReader([bag], default_typestore=ts) as reader:
        assert {c.topic: recorded_latched(c) for c in reader.connections} == \
            {"/humans/persons/anna/voice_id": True, "/chatter": False}
    late_sub = r"""
import json, sys, time
import rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String
out, ready = sys.argv[1], sys.argv[2]
rclpy.init(); node = rclpy.create_node("late_sub")
got = []
latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
node.create_subscription(String, "/chatter", lambda m: got.append(["/chatter", m.data]), QoSProfile(depth=10))
open(ready, "w").write("ready")
end = time.monotonic() + 1.5  # the replay publishes both at its start, before the late subscription exists
while time.monotonic() < end:
    rclpy.spin_once(node, timeout_sec=0.05)
node.create_subscription(String, "/humans/persons/anna/voice_id",
                         lambda m: got.append(["voice_id", m.data]), latched)
end = time.monotonic() + 20
while len(got) < 3 and time.monotonic() < end:
    rclpy.spin_once(node, timeout_sec=0.05)
json.dump(got, open(out, "w"))
node.destroy_node(); rclpy.shutdown()
"""
    env = _env(random.Random(os.getpid() + 11 ^ time.time_ns()).randint(1, 100))
    out, ready, stats = tmp_path / "sub.json", tmp_path / "ready", tmp_path / "stats.json"
    sub = subprocess.Popen([sys.executable, "-c", late_sub, str(out), str(ready)], env=env, cwd=REPO)
    try:
        end = time.monotonic() + 30
        while not ready.exists() and time.monotonic() < end and sub.poll() is None:
            time.sleep(0.05)
        t0 = time.monotonic()
        player = subprocess.run([sys.executable, "-c", PLAYER, str(bag), "1.0", str(stats)],
                                env=env, cwd=REPO, timeout=60, capture_output=True, text=True)
        assert player.returncode == 0, player.stderr
        sub.wait(timeout=30)
    finally:
        if sub.poll() is None:
            sub.kill()
    got = json.loads(out.read_text())
    assert ["voice_id", "voice_anna"] in got, got  # delivered to the late joiner (published 1.5 s before it joined)
    assert ["/chatter", "end"] in got and ["/chatter", "missed"] in got, got
    assert json.loads(stats.read_text())["published"] == {"/humans/persons/anna/voice_id": 1, "/chatter": 2}
    assert time.monotonic() - t0 < 9.0  # no 10 s wait for a subscriber on the per-person topic
