"""Client process for test_online_offline_hri.py (run as a script): replay a bag onto live topics and record
the node's EmotionStates.

    python bag_client.py BAG N [RATE]  -> JSON: {"states": [...], "replay": {...}, "node_up": bool,
                                                  "diagnostics": {the node's last /diagnostics values}}

Waits for the node's ``emotion_state`` publisher, replays every topic of the bag except the ground truth with
:func:`synctva_ros.ros.replay.replay_bag` (its original timing, ``/clock``, latched topics transient-local),
then waits until ``N`` states arrived (or 120 s).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosbags.highlevel import AnyReader

from ros_client import _state_dict
from synctva_ros.bags.reader import GROUND_TRUTH_TOPIC
from synctva_ros.bags.types import get_synctva_typestore
from synctva_ros.msg import EmotionState
from synctva_ros.ros.replay import replay_bag


def run(bag: str, n: int, rate: float) -> dict:
    rec = rclpy.create_node("synctva_bag_recorder")
    states: list[EmotionState] = []
    diag: dict[str, str] = {}
    rec.create_subscription(EmotionState, "/emotion_state", states.append,
                            QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE))
    rec.create_subscription(DiagnosticArray, "/diagnostics", lambda m: diag.update(
        {kv.key: kv.value for st in m.status if "emotion_node" in st.name for kv in st.values}), 10)
    ex = SingleThreadedExecutor()
    ex.add_node(rec)
    spin = threading.Thread(target=ex.spin, daemon=True)
    spin.start()
    deadline = time.monotonic() + 180
    while rec.count_publishers("/emotion_state") == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    up = rec.count_publishers("/emotion_state") > 0
    with AnyReader([Path(bag)], default_typestore=get_synctva_typestore()) as reader:
        topics = sorted(t for t in reader.topics if t != GROUND_TRUTH_TOPIC)
    stats = replay_bag(bag, rate=rate, topics=topics, wait_for_subscribers_s=30.0)
    deadline = time.monotonic() + 120
    while len(states) < n and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.5)  # an extra (wrong) window would show up here, and one more /diagnostics (1 Hz)
    ex.shutdown()
    spin.join(10.0)  # the spinning thread must be gone before rclpy shuts down (else std::terminate at exit)
    out = [_state_dict(s) for s in states]
    rec.destroy_node()
    return {"states": out, "replay": {k: stats[k] for k in ("published", "skipped_topics", "failed")},
            "node_up": up, "diagnostics": dict(diag)}


def main() -> int:
    rclpy.init()
    try:
        print(json.dumps(run(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]) if len(sys.argv) > 3 else 2.0)))
    finally:
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
