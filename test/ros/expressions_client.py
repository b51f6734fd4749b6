"""Client process for test_node_expressions.py (run as a script): per-face hri_msgs/Expression over real DDS.

    python expressions_client.py   -> JSON: {"expressions": {face_id: [...]}, "tracked": [...], "states": [...],
                                             "matched": bool}

Publishes /clock by hand (the node runs with use_sim_time) and 640x480 camera frames at 10 Hz showing two
labelled photographs of ../shared/data/faces (a happy face, larger, and a neutral one; ``two_faces.compose``),
paced at real time for ``SHOW_S`` seconds, then a final transcript over the frames so that one EmotionState
names the face its expert used. Listens to ``/humans/faces/tracked`` and to ``/humans/faces/face_<n>/expression``
for n = 1..8 (subscribed before the node creates those publishers) and to any id the tracked lists name.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import rclpy
from hri_msgs.msg import Expression, IdsList
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from ros_client import Client, _state_dict, stamp
from synctva_ros.evaluation.faces import read_rgb
from synctva_ros.evaluation.two_faces import compose, speaker_listener

T0 = 200.0
SHOW_S = 4.0
FRAME_HZ = 10.0
HAPPY, NEUTRAL = "images/Ai_Sugiyama_0001.jpg", "images/Al_Gore_0001.jpg"


def _t(h: Header) -> float:
    return h.stamp.sec + h.stamp.nanosec * 1e-9


def run(faces_dir: Path, timeout: float = 120.0) -> dict:
    c = Client()
    reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    expressions: dict[str, list[dict]] = {}
    tracked: list[dict] = []

    def listen(face_id: str) -> None:
        if face_id in expressions:
            return
        expressions[face_id] = []
        c.create_subscription(Expression, f"/humans/faces/{face_id}/expression", lambda m, f=face_id: expressions[f]
                              .append({"stamp": _t(m.header), "frame_id": m.header.frame_id,
                                       "expression": m.expression, "valence": m.valence, "arousal": m.arousal,
                                       "confidence": m.confidence}), reliable)

    def on_tracked(m: IdsList) -> None:
        tracked.append({"stamp": _t(m.header), "ids": list(m.ids)})
        for i in m.ids:
            listen(str(i))

    for n in range(1, 9):
        listen(f"face_{n}")
    c.create_subscription(IdsList, "/humans/faces/tracked", on_tracked, reliable)
    c.set_clock(T0 - 5.0)
    matched = c.spin_until(lambda: c.image_pub.get_subscription_count() > 0
                           and c.transcript_pub.get_subscription_count() > 0
                           and c.count_publishers("/humans/faces/tracked") > 0, 60.0)
    frame = compose([read_rgb(faces_dir / HAPPY), read_rgb(faces_dir / NEUTRAL)],
                    speaker_listener("speaker larger", "symmetric"))
    data = frame.tobytes()
    start = time.monotonic()
    for k in range(int(SHOW_S * FRAME_HZ)):
        t = T0 + k / FRAME_HZ
        c.set_clock(t)
        c.image_pub.publish(Image(header=Header(stamp=stamp(t), frame_id="head_camera"), height=480, width=640,
                                  encoding="rgb8", is_bigendian=0, step=640 * 3, data=data))
        c.spin_until(lambda: time.monotonic() - start >= (k + 1) / FRAME_HZ, 1.0)  # real-time pacing
    end = T0 + SHOW_S - 0.1
    c.transcript_pub.publish(c.transcript("I am so glad you came.", T0 + 0.5, end, "u-faces"))
    deadline, clock = time.monotonic() + timeout, end
    while not c.states and time.monotonic() < deadline:
        clock = min(clock + 0.1, end + 2.0)
        c.set_clock(clock)
        c.spin_until(lambda: bool(c.states), 0.05)
    c.spin_until(lambda: False, 1.0)  # the last expressions
    out = {"expressions": {k: v for k, v in expressions.items() if v}, "tracked": tracked,
           "states": [_state_dict(s) for s in c.states], "matched": matched}
    c.destroy_node()
    return out


def main() -> int:
    rclpy.init()
    try:
        print(json.dumps(run(Path(sys.argv[1]))))
    finally:
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
