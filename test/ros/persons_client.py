"""Client process for test_node_persons.py (run as a script): ROS4HRI persons over real DDS.

    python persons_client.py   -> JSON: {"states": [...], "matched": bool, "latched_subscribed": bool}

Publishes /clock by hand (the node runs with use_sim_time), camera frames, ``audio_common_msgs/AudioStamped``
audio and, as a ROS4HRI stack would: the voices on ``/humans/voices/tracked``, person ``p_anna`` on
``/humans/persons/tracked`` whose latched (transient-local) ``voice_id`` is ``v_anna`` and ``face_id`` is
``f_anna`` -- published BEFORE the node subscribes to them, so only transient-local delivery gets them
there -- then one utterance of ``v_anna`` and one of ``v_bob`` (a voice no person claims) as
``hri_msgs/LiveSpeech``, and waits for both EmotionStates.
"""

from __future__ import annotations

import json
import time

import numpy as np
import rclpy
from audio_common_msgs.msg import Audio, AudioData, AudioInfo, AudioStamped
from hri_msgs.msg import IdsList, LiveSpeech
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Header, String

from ros_client import RATE, TEXT, Client, _state_dict, stamp

T0 = 50.0
UTTERANCE_S = 2.0
VOICES = ("v_anna", "v_bob")


def run(timeout: float = 120.0) -> dict:
    c = Client()  # /clock, camera, EmotionState (its synctva inputs are remapped away, main())
    p = Node("persons_test_publisher")
    reliable = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    audio_pub = p.create_publisher(AudioStamped, "audio", reliable)
    voices_pub = p.create_publisher(IdsList, "/humans/voices/tracked", reliable)
    persons_pub = p.create_publisher(IdsList, "/humans/persons/tracked", reliable)
    voice_id_pub = p.create_publisher(String, "/humans/persons/p_anna/voice_id", latched)
    face_id_pub = p.create_publisher(String, "/humans/persons/p_anna/face_id", latched)
    voice_id_pub.publish(String(data="v_anna"))  # nobody subscribes yet: kept for late joiners
    face_id_pub.publish(String(data="f_anna"))
    c.set_clock(T0 - 5.0)
    pubs = [audio_pub, voices_pub, persons_pub, c.image_pub, c.clock_pub]
    matched = c.spin_until(lambda: all(x.get_subscription_count() > 0 for x in pubs)
                           and c.count_publishers("emotion_state") > 0, 30.0)
    head = Header(stamp=stamp(T0 - 5.0))
    voices_pub.publish(IdsList(header=head, ids=list(VOICES)))
    persons_pub.publish(IdsList(header=head, ids=["p_anna"]))
    speech = {v: p.create_publisher(LiveSpeech, f"/humans/voices/{v}/speech", reliable) for v in VOICES}
    later = c.spin_until(lambda: all(x.get_subscription_count() > 0 for x in [*speech.values(), voice_id_pub,
                                                                               face_id_pub]), 30.0)
    c.spin_until(lambda: False, 1.0)  # the latched samples reach the new subscriptions
    info = AudioInfo(format=8, channels=1, rate=RATE, chunk=RATE // 10)
    chunk = RATE // 10
    for k, voice in enumerate(VOICES):
        t = T0 + k * (UTTERANCE_S + 3.0)
        audio = (c.speech(int(UTTERANCE_S * RATE), seed=k + 1) * 32767).astype(np.int16)
        for i in range(0, audio.size, chunk):
            c.set_clock(t + i / RATE)
            audio_pub.publish(AudioStamped(header=Header(stamp=stamp(t + i / RATE), frame_id="mic"), audio=Audio(
                audio_data=AudioData(int16_data=audio[i:i + chunk].tolist()), info=info)))
            if i % (2 * chunk) == 0:
                c.image_pub.publish(c.image(t + i / RATE))
            rclpy.spin_once(c, timeout_sec=0.01)
        end = t + UTTERANCE_S
        speech[voice].publish(LiveSpeech(header=Header(stamp=stamp(end)), final=TEXT, confidence=0.9,
                                         locale="en_GB"))
        deadline, clock = time.monotonic() + timeout, end
        while len(c.states) <= k and time.monotonic() < deadline:
            clock = min(clock + 0.1, end + 2.5)
            c.set_clock(clock)
            c.spin_until(lambda: len(c.states) > k, 0.05)
    c.spin_until(lambda: False, 0.5)
    states = [_state_dict(s) for s in c.states]
    c.destroy_node()
    p.destroy_node()
    return {"states": states, "matched": matched, "latched_subscribed": later}


def main() -> int:
    # the Client's own AudioChunk publisher would clash with AudioStamped on 'audio'
    rclpy.init(args=["--ros-args", "-r", "synctva_test_client:audio:=unused/audio",
                     "-r", "synctva_test_client:speech:=unused/speech"])
    try:
        print(json.dumps(run()))
    finally:
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
