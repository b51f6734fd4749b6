"""Client process for test_node_hri_inputs.py (run as a script): third-party input types over real DDS.

    python hri_client.py live_speech_audio_stamped  -> JSON: {"states": [...], "matched": bool}
    python hri_client.py whisper_audio_data         -> JSON: same

Publishes /clock by hand (the node runs with use_sim_time), camera frames (sensor_msgs/Image), microphone
audio as ``audio_common_msgs/AudioStamped`` (or ``AudioData`` + ``AudioInfo``), and the utterance's text as
``hri_msgs/LiveSpeech`` on ``/humans/voices/anna/speech`` after announcing voice ``anna`` on
``/humans/voices/tracked`` (or as ``whisper_msgs/Transcription`` on ``speech``); then advances the clock
until the node's EmotionState arrives.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import rclpy
from audio_common_msgs.msg import Audio, AudioData, AudioInfo, AudioStamped
from hri_msgs.msg import IdsList, LiveSpeech
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import Header
from whisper_msgs.msg import Transcription

from ros_client import RATE, TEXT, Client, _state_dict, stamp

T0 = 50.0
UTTERANCE_S = 2.0


def run(case: str, timeout: float = 90.0) -> dict:
    c = Client()  # /clock, camera, EmotionState and /diagnostics (its synctva inputs are remapped away, main())
    p = Node("hri_test_publisher")  # the third-party types on the node's audio and speech topics
    reliable = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
    stamped = case == "live_speech_audio_stamped"
    audio_pub = p.create_publisher(AudioStamped if stamped else AudioData, "audio", reliable)
    info_pub = None if stamped else p.create_publisher(AudioInfo, "audio_info", reliable)
    if stamped:
        tracked_pub = p.create_publisher(IdsList, "/humans/voices/tracked", reliable)
        pubs = [audio_pub, tracked_pub, c.image_pub, c.clock_pub]
    else:
        speech_pub = p.create_publisher(Transcription, "speech", reliable)
        pubs = [audio_pub, info_pub, speech_pub, c.image_pub, c.clock_pub]
    c.set_clock(T0 - 5.0)
    matched = c.spin_until(lambda: all(p.get_subscription_count() > 0 for p in pubs)
                           and c.count_publishers("emotion_state") > 0, 30.0)
    info = AudioInfo(format=8, channels=1, rate=RATE, chunk=RATE // 10)
    if stamped:  # the voice appears; the node subscribes to its speech topic
        tracked_pub.publish(IdsList(header=Header(stamp=stamp(T0 - 5.0)), ids=["anna"]))
        live = p.create_publisher(LiveSpeech, "/humans/voices/anna/speech", reliable)
        matched = matched and c.spin_until(lambda: live.get_subscription_count() > 0, 30.0)
    else:
        info_pub.publish(info)
        c.spin_until(lambda: False, 0.3)
    audio = (c.speech(int(UTTERANCE_S * RATE), seed=1) * 32767).astype(np.int16)
    chunk, t = RATE // 10, T0
    for i in range(0, audio.size, chunk):
        data = AudioData(int16_data=audio[i:i + chunk].tolist())
        c.set_clock(t + i / RATE + (chunk / RATE if not stamped else 0.0))  # AudioData is stamped on arrival
        if stamped:
            audio_pub.publish(AudioStamped(header=Header(stamp=stamp(t + i / RATE), frame_id="mic"),
                                           audio=Audio(audio_data=data, info=info)))
        else:  # stamped on arrival: let the node see this clock first (/clock and audio are separate topics)
            c.spin_until(lambda: False, 0.03)
            audio_pub.publish(data)
        if i % (2 * chunk) == 0:
            c.image_pub.publish(c.image(t + i / RATE))
        rclpy.spin_once(c, timeout_sec=0.01)
    end = t + UTTERANCE_S
    if stamped:
        live.publish(LiveSpeech(header=Header(stamp=stamp(end)), incremental="I am so happy", final="",
                                confidence=0.5, locale="en_GB"))
        live.publish(LiveSpeech(header=Header(stamp=stamp(end)), incremental="", final=TEXT, confidence=0.9,
                                locale="en_GB"))
    else:
        c.set_clock(end + 0.4)  # whisper took 0.4 s; let the node see that clock before the result arrives
        c.spin_until(lambda: False, 0.5)
        speech_pub.publish(Transcription(text=TEXT, audio_time=UTTERANCE_S, transcription_time=0.4))
    deadline, clock = time.monotonic() + timeout, end
    while not c.states and time.monotonic() < deadline:
        clock = min(clock + 0.1, end + 4.0)
        c.set_clock(clock)
        c.spin_until(lambda: bool(c.states), 0.05)
    c.spin_until(lambda: False, 0.5)  # a second (wrong) window would show up here
    states = [_state_dict(s) | {"frame_id": s.header.frame_id} for s in c.states]
    c.destroy_node()
    p.destroy_node()
    return {"states": states, "matched": matched}


def main() -> int:
    # the Client's own AudioChunk/Transcript publishers would clash with these types on 'audio' and 'speech'
    rclpy.init(args=["--ros-args", "-r", "synctva_test_client:audio:=unused/audio",
                     "-r", "synctva_test_client:speech:=unused/speech"])
    try:
        print(json.dumps(run(sys.argv[1])))
    finally:
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
