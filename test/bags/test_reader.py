"""windows_from_bag on hand-written bags: String transcripts, undecodable images, custom topic names."""

from __future__ import annotations

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer

from synctva_ros.bags.reader import read_bag, windows_from_bag
from synctva_ros.bags.types import get_synctva_typestore
from synctva_ros.config import TopicsConfig, WindowingConfig

T0 = 1_704_067_200 * 10**9


def _stamp(T, ns):
    return T["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9)


def _write(path, image_topic="/camera/image_raw", bad_every=0):
    ts = get_synctva_typestore()
    T = ts.types
    with Writer(path, version=9, storage_plugin=StoragePlugin.SQLITE3) as w:
        ci = w.add_connection(image_topic, "sensor_msgs/msg/Image", typestore=ts)
        ct = w.add_connection("/speech/text", "std_msgs/msg/String", typestore=ts)
        for i in range(50):  # 5 s at 10 fps
            ns = T0 + i * 10**8
            enc = "bayer_rggb8" if bad_every and i % bad_every == 0 else "bgr8"
            img = T["sensor_msgs/msg/Image"](
                header=T["std_msgs/msg/Header"](stamp=_stamp(T, ns), frame_id="cam"), height=2, width=3,
                encoding=enc, is_bigendian=0, step=9, data=np.full(18, i, np.uint8))
            w.write(ci, ns, ts.serialize_cdr(img, "sensor_msgs/msg/Image"))
        for k, sec in enumerate((2.0, 4.0)):
            ns = T0 + int(sec * 1e9) + 1
            w.write(ct, ns, ts.serialize_cdr(T["std_msgs/msg/String"](data=f"utterance {k}"),
                                             "std_msgs/msg/String"))


def test_string_transcripts_stamped_at_log_time(tmp_path):
    _write(tmp_path / "b")
    cfg = WindowingConfig(default_window_s=1.0, vad_enabled=False)
    pairs = windows_from_bag(tmp_path / "b", cfg)
    assert [p[0].transcript for p in pairs] == ["utterance 0", "utterance 1"]
    assert all(p[1] is None for p in pairs)  # no ground truth in this bag
    w0 = pairs[0][0]
    assert w0.end - T0 * 1e-9 == pytest.approx(2.0, abs=1e-6) and w0.duration == pytest.approx(1.0)
    assert len(w0.frames) == 11 and not w0.present["audio"]  # frames at 1.0 .. 2.0 s, bounds inclusive
    assert w0.frames[0].image[0, 0, 0] == w0.frames[0].image[0, 0, 2]  # bgr8 -> rgb of a uniform image


def test_undecodable_images_are_skipped_and_topics_configurable(tmp_path, caplog):
    _write(tmp_path / "b", image_topic="/robot/cam", bad_every=5)
    topics = TopicsConfig(image="robot/cam")
    pairs = windows_from_bag(tmp_path / "b", WindowingConfig(default_window_s=1.0, vad_enabled=False),
                             topics=topics)
    assert "cannot be decoded" in caplog.text
    assert len(pairs[0][0].frames) == 8  # 11 frames in [1, 2] s minus the bayer ones (1.0, 1.5, 2.0 s)
    assert len(list(read_bag(tmp_path / "b", ["/robot/cam"]))) == 50
    with pytest.raises(FileNotFoundError):
        list(read_bag(tmp_path / "missing"))


def _write_zero_stamps(path):
    """A camera (30 fps) and a microphone (20 ms chunks) that leave header.stamp at 0, and String transcripts."""
    ts = get_synctva_typestore()
    T = ts.types
    zero = T["builtin_interfaces/msg/Time"](sec=0, nanosec=0)
    msgs = []
    for i in range(90):  # 3 s at 30 fps
        img = T["sensor_msgs/msg/Image"](header=T["std_msgs/msg/Header"](stamp=zero, frame_id="cam"), height=2,
                                         width=3, encoding="rgb8", is_bigendian=0, step=9,
                                         data=np.full(18, i, np.uint8))
        msgs.append((T0 + i * 10**9 // 30, "i", ts.serialize_cdr(img, "sensor_msgs/msg/Image")))
    for i in range(150):  # 3 s of 20 ms chunks
        pcm = (np.sin(np.arange(320) * 0.3) * 8000).astype("<i2").tobytes()
        chunk = T["synctva_ros/msg/AudioChunk"](header=T["std_msgs/msg/Header"](stamp=zero, frame_id="mic"),
                                                sample_rate=16000, channels=1, encoding="S16LE",
                                                data=np.frombuffer(pcm, np.uint8))
        msgs.append((T0 + i * 2 * 10**7 + 1, "a", ts.serialize_cdr(chunk, "synctva_ros/msg/AudioChunk")))
    msgs.append((T0 + 2 * 10**9 + 5, "t", ts.serialize_cdr(T["std_msgs/msg/String"](data="hello"),
                                                            "std_msgs/msg/String")))
    with Writer(path, version=9, storage_plugin=StoragePlugin.SQLITE3) as w:
        conns = {"i": w.add_connection("/camera/image_raw", "sensor_msgs/msg/Image", typestore=ts),
                 "a": w.add_connection("/audio", "synctva_ros/msg/AudioChunk", typestore=ts),
                 "t": w.add_connection("/speech/text", "std_msgs/msg/String", typestore=ts)}
        for ns, kind, raw in sorted(msgs, key=lambda m: m[0]):
            w.write(conns[kind], ns, raw)
    return sorted(msgs, key=lambda m: m[0])


def test_zero_stamp_frames_and_audio_take_their_log_time_as_the_node_does(tmp_path):
    """A 0 header stamp is stamped on arrival in the node (its /clock = the bag's log time), thinning included:
    the reader places, thins and polls such frames and chunks at their log time too (it used to thin and
    buffer them at time 0, so the window had no frames)."""
    msgs = _write_zero_stamps(tmp_path / "b")
    cfg = WindowingConfig(default_window_s=1.0, vad_enabled=False, frame_keep_hz=10.0)
    from synctva_ros.windowing.windower import UtteranceWindower

    w = UtteranceWindower(cfg, 16000)
    pairs = windows_from_bag(tmp_path / "b", cfg, windower=w)
    assert len(pairs) == 1
    win = pairs[0][0]
    stamps = np.array([f.stamp for f in win.frames]) - T0 * 1e-9
    assert len(stamps) == 11 and stamps.min() >= 1.0 - 1e-6 and stamps.max() <= 2.0 + 1e-5
    assert np.diff(stamps).min() >= 0.095  # thinned to frame_keep_hz by arrival time
    assert win.present["audio"] and win.audio_start - T0 * 1e-9 == pytest.approx(1.0, abs=0.021)
    assert w.count("zero_stamps") == 90 + 150 and w.count("thinned_frames") == 60

    # the node's procedure (EmotionNode._take_frame / _on_audio through WindowFeed): arrival time = log time
    node = UtteranceWindower(cfg, 16000)
    got = []
    for ns, kind, _ in msgs:
        now = ns * 1e-9
        if kind == "i":
            if not node.thin_frame(0.0, now):
                node.add_frame(0.0, np.zeros((2, 3, 3), np.uint8), now=now)
        elif kind == "a":
            node.add_audio(0.0, np.zeros(320, np.float32), 16000, now=now)
        else:
            node.add_transcript("hello", 0.0, 0.0, True, stamp=now)
        got += node.poll(now)
    got += node.flush()
    assert [f.stamp for f in got[0].frames] == [f.stamp for f in win.frames]
    assert got[0].audio_start == win.audio_start and (got[0].start, got[0].end) == (win.start, win.end)


def test_transcript_with_unknown_stamps_is_stamped_at_log_time(tmp_path):
    """A synctva_ros/Transcript whose header, start and end are all 0 (unknown) is placed at its log time, as
    the node stamps it on arrival (windowing.stamps.effective_stamp, rule 12), not dropped."""
    ts = get_synctva_typestore()
    T = ts.types
    zero = T["builtin_interfaces/msg/Time"](sec=0, nanosec=0)
    with Writer(tmp_path / "b", version=9, storage_plugin=StoragePlugin.SQLITE3) as w:
        ct = w.add_connection("/speech", "synctva_ros/msg/Transcript", typestore=ts)
        msg = T["synctva_ros/msg/Transcript"](
            header=T["std_msgs/msg/Header"](stamp=zero, frame_id=""), text="hello there", start=zero, end=zero,
            is_final=True, utterance_id="u1", dialogue_id="", language="en", confidence=0.9, speaker_id="")
        w.write(ct, T0 + 3 * 10**9, ts.serialize_cdr(msg, "synctva_ros/msg/Transcript"))
    pairs = windows_from_bag(tmp_path / "b", WindowingConfig(default_window_s=1.0, vad_enabled=False))
    assert [p[0].transcript for p in pairs] == ["hello there"]
    assert pairs[0][0].end - T0 * 1e-9 == pytest.approx(3.0, abs=1e-6)
