"""Bag round trip: MELD rows -> rosbag2 (mcap and sqlite3) -> messages and windows back."""

from __future__ import annotations

import inspect
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
from synctva_ros.datasets.meld import read_meld
from synctva_ros.datasets.rendering import MAX_UTT_S, MIN_UTT_S, render_utterance
from synctva_ros.windowing.windower import UtteranceWindower

_SHARED_DEV = Path(os.environ.get("SYNCTVA_DATA", "/work/shared/data")) / "meld" / "dev_sent_emo.csv"
#: MELD dev CSV (shared data), else the demo sample shipped in the repository.
MELD_DEV = (_SHARED_DEV if _SHARED_DEV.exists()
            else Path(__file__).resolve().parents[2] / "data" / "demo" / "meld_dev_sample.csv")
needs_inputs = pytest.mark.skipif(not MELD_DEV.exists() or shutil.which("espeak-ng") is None,
                                  reason="needs MELD dev CSV and espeak-ng")
MELD_HEADER = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime\n"
N = 4
SIZE = (96, 72)
FPS = 30.0


@pytest.fixture(scope="module", params=["mcap", "sqlite3"])
def bag(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param) / "bag"
    summary = make_bag(MELD_DEV, out, storage=request.param, max_utterances=N, fps=FPS, size=SIZE)
    return out, summary


@needs_inputs
def test_meld_time_parsing():
    assert parse_meld_time("00:20:57,256") == pytest.approx(1257.256)
    assert parse_meld_time("garbage") is None
    d = read_meld_csv(MELD_DEV, max_utterances=1)[0].dialogue_id
    rows = read_meld_csv(MELD_DEV, dialogues=[d], max_utterances=2)
    assert [r.uid for r in rows] == [f"dia{d}_utt0", f"dia{d}_utt1"]
    assert all(r.emotion in MELD_CLASS_NAMES and r.text for r in rows)


@needs_inputs
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


@needs_inputs
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


@needs_inputs
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


@needs_inputs
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


@needs_inputs
def test_bag_audio_is_the_training_rendering(bag):
    """Each utterance's samples in the bag equal render_utterance's (what the feature cache trains on)."""
    path, summary = bag
    samples = np.concatenate([audio_to_float(m.msg.data, m.msg.encoding, m.msg.channels)
                              for m in read_bag(path, [TOPIC_AUDIO])])
    utts = read_meld(MELD_DEV, strict_times=False)[:N]
    assert [f"dia{u.dialogue_id}_utt{u.utterance_index}" for u in utts] == summary["utterance_ids"]
    for u, (s, e) in zip(utts, summary["bounds"]):
        wav, sr = render_utterance(u, 16000)
        first = int(round(s * sr))
        assert sr == 16000 and wav.size == int(round((e - s) * sr))
        np.testing.assert_array_equal(samples[first:first + wav.size], wav)


def test_rendering_defaults_are_the_shared_constants():
    params = inspect.signature(make_bag).parameters
    assert (params["min_utt_s"].default, params["max_utt_s"].default) == (MIN_UTT_S, MAX_UTT_S)


def test_read_meld_csv_lenient_times(tmp_path):
    """make-bag reads MELD CSVs through read_meld (strict_times=False); a malformed time is None in MeldRow."""
    q = tmp_path / "y.csv"
    q.write_text(MELD_HEADER + '1, Hi there ,A,Joy,positive,3,0,1,1,"00:00:01","00:00:02,000"\n'
                 '2,Bye,B,anger,negative,4,1,1,1,"00:00:03,000","00:00:04,500"\n', encoding="utf-8")
    rows = read_meld_csv(q)
    assert [(r.dialogue_id, r.utterance_id, r.emotion) for r in rows] == [(3, 0, "joy"), (4, 1, "anger")]
    assert rows[0].start_s is None and rows[1].end_s == pytest.approx(4.5) and rows[1].uid == "dia4_utt1"
    assert [r.text for r in read_meld_csv(q, dialogues=[4])] == ["Bye"]
