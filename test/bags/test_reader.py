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
