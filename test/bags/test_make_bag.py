"""Bag round trip: MELD rows -> rosbag2 (mcap and sqlite3) -> messages and windows back."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from synctva_ros.bags.make_bag import (EPOCH_NS, MELD_CLASS_NAMES, TOPIC_AUDIO, TOPIC_GROUND_TRUTH, TOPIC_IMAGE,
                                       TOPIC_TRANSCRIPT, make_bag, parse_meld_time, read_meld_csv)
from synctva_ros.bags.reader import ground_truth_from_bag, read_bag, windows_from_bag
from synctva_ros.config import WindowingConfig
from synctva_ros.core.codecs import audio_to_float, image_to_rgb, stamp_to_seconds
from synctva_ros.windowing.windower import UtteranceWindower

_SHARED_DEV = Path(os.environ.get("SYNCTVA_DATA", "/work/shared/data")) / "meld" / "dev_sent_emo.csv"
#: MELD dev CSV (shared data), else the demo sample shipped in the repository.
MELD_DEV = (_SHARED_DEV if _SHARED_DEV.exists()
            else Path(__file__).resolve().parents[2] / "data" / "demo" / "meld_dev_sample.csv")
pytestmark = pytest.mark.skipif(not MELD_DEV.exists() or shutil.which("espeak-ng") is None,
                                reason="needs MELD dev CSV and espeak-ng")
N = 4
SIZE = (96, 72)
FPS = 30.0


@pytest.fixture(scope="module", params=["mcap", "sqlite3"])
def bag(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param) / "bag"
    summary = make_bag(MELD_DEV, out, storage=request.param, max_utterances=N, fps=FPS, size=SIZE)
    return out, summary


def test_meld_time_parsing():
    assert parse_meld_time("00:20:57,256") == pytest.approx(1257.256)
    assert parse_meld_time("garbage") is None
    d = read_meld_csv(MELD_DEV, max_utterances=1)[0].dialogue_id
    rows = read_meld_csv(MELD_DEV, dialogues=[d], max_utterances=2)
    assert [r.uid for r in rows] == [f"dia{d}_utt0", f"dia{d}_utt1"]
    assert all(r.emotion in MELD_CLASS_NAMES and r.text for r in rows)


def test_messages_round_trip(bag):
    path, summary = bag
    rows = read_meld_csv(MELD_DEV, max_utterances=N)
    msgs = list(read_bag(path))
    counts = {t: sum(m.topic == t for m in msgs) for t in summary["messages"]}
    assert counts == summary["messages"]
    assert counts[TOPIC_TRANSCRIPT] == counts[TOPIC_GROUND_TRUTH] == N
    times = [m.timestamp_ns for m in msgs]
    assert times == sorted(times) and times[0] >= EPOCH_NS
    for m in msgs:  # log time = header stamp
        assert m.timestamp_ns == m.msg.header.stamp.sec * 10**9 + m.msg.header.stamp.nanosec
    # audio: continuous 16 kHz S16LE covering the whole bag
    audio = [m.msg for m in msgs if m.topic == TOPIC_AUDIO]
    assert {(a.sample_rate, a.channels, a.encoding) for a in audio} == {(16000, 1, "S16LE")}
    samples = np.concatenate([audio_to_float(a.data, a.encoding, a.channels) for a in audio])
    assert samples.size / 16000 == pytest.approx(summary["duration_s"], abs=1e-3)
    # images: rgb8 of the requested size, ~30 fps, consecutive frames differ
    images = [m.msg for m in msgs if m.topic == TOPIC_IMAGE]
    assert len(images) == pytest.approx(summary["duration_s"] * FPS, abs=2)
    first = image_to_rgb(images[0].height, images[0].width, images[0].encoding, images[0].is_bigendian,
                         images[0].step, images[0].data)
    second = image_to_rgb(images[1].height, images[1].width, images[1].encoding, images[1].is_bigendian,
                          images[1].step, images[1].data)
    assert first.shape == (SIZE[1], SIZE[0], 3) and first.std() > 20 and not np.array_equal(first, second)
    # transcripts and labels
    tr = [m.msg for m in msgs if m.topic == TOPIC_TRANSCRIPT]
    assert [t.text for t in tr] == [r.text for r in rows]
    assert [t.utterance_id for t in tr] == [r.uid for r in rows]
    assert all(t.is_final and t.language == "en" and t.confidence == 1.0 for t in tr)
    truth = ground_truth_from_bag(path)
    assert [g.label for g in truth] == [r.emotion for r in rows]
    gt_msgs = [m.msg for m in msgs if m.topic == TOPIC_GROUND_TRUTH]
    for g, r in zip(gt_msgs, rows):
        assert list(g.class_names) == list(MELD_CLASS_NAMES)
        assert g.probabilities[g.label_index] == 1.0 and g.probabilities.sum() == 1.0
        assert g.model == "ground_truth" and g.transcript == r.text
    # speech lies inside the transcript bounds, silence outside
    t0 = EPOCH_NS * 1e-9
    for t in tr:
        s, e = stamp_to_seconds(t.start) - t0, stamp_to_seconds(t.end) - t0
        inside = samples[int(s * 16000):int(e * 16000)]
        assert np.abs(inside).max() > 0.05
    s0 = stamp_to_seconds(tr[0].start) - t0
    assert np.abs(samples[: int(s0 * 16000)]).max() == 0.0


def test_windows_from_bag_match_utterances(bag):
    path, summary = bag
    rows = read_meld_csv(MELD_DEV, max_utterances=N)
    w = UtteranceWindower(WindowingConfig(), 16000)
    pairs = windows_from_bag(path, WindowingConfig(), windower=w)
    assert len(pairs) == N
    assert [p[0].utterance_id for p in pairs] == [r.uid for r in rows]
    assert [p[1] for p in pairs] == [r.emotion for r in rows]
    for (win, _), (s, e) in zip(pairs, summary["bounds"]):
        t0 = EPOCH_NS * 1e-9
        assert win.start - t0 == pytest.approx(s, abs=1e-4) and win.end - t0 == pytest.approx(e, abs=1e-4)
        assert win.closed_by == "transcript" and all(win.present.values())
        # window audio starts on the 10 ms sensor-time grid at or before the window start (audio_grid_s)
        assert 0.0 <= win.start - win.audio_start < WindowingConfig().audio_grid_s + 1 / 16000
        assert win.audio.size / 16000 == pytest.approx(win.end - win.audio_start, abs=2 / 16000)
        assert np.abs(win.audio).max() > 0.05
        keep_hz = min(FPS, WindowingConfig().frame_keep_hz)  # the windower thins the camera to frame_keep_hz
        assert len(win.frames) == pytest.approx(win.duration * keep_hz, abs=1.5)
        assert all(win.start <= f.stamp <= win.end for f in win.frames)
    s = w.stats
    assert s["late_frames"] == s["late_audio"] == s["duplicates"] == s["time_resets"] == 0
    assert s["windows"] == N


def test_humble_version_and_existing_path(tmp_path):
    out = tmp_path / "humble"
    make_bag(MELD_DEV, out, storage="sqlite3", max_utterances=1, size=(32, 24), fps=5, version=8)
    meta = yaml.safe_load((out / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["version"] == 8 and meta["storage_identifier"] == "sqlite3"
    assert len(windows_from_bag(out)) == 1
    with pytest.raises(FileExistsError):
        make_bag(MELD_DEV, out, max_utterances=1)
    with pytest.raises(ValueError, match="storage"):
        make_bag(MELD_DEV, tmp_path / "x", storage="rosbag1")


def test_deterministic_output(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for p in (a, b):
        make_bag(MELD_DEV, p, max_utterances=1, size=(32, 24), fps=5)
    ma = [(m.topic, m.timestamp_ns) for m in read_bag(a)]
    mb = [(m.topic, m.timestamp_ns) for m in read_bag(b)]
    assert ma == mb
    aa = np.concatenate([m.msg.data for m in read_bag(a, [TOPIC_AUDIO])])
    ab = np.concatenate([m.msg.data for m in read_bag(b, [TOPIC_AUDIO])])
    np.testing.assert_array_equal(aa, ab)
