"""The MELD.Raw reader on clips generated in the release's layout (espeak-ng speech, face photographs)."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest

pytest.importorskip("av")
from meld_raw_fixtures import _face_frame, make_meld_raw  # noqa: E402

from synctva_ros.datasets.meld_raw import (ClipUnreadable, clip_dir, decode_clip, read_meld_raw,  # noqa: E402
                                           sampled_times)


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    """7 real MELD dev rows: 5 clips, 1 truncated clip, 1 row without a clip."""
    return make_meld_raw(tmp_path_factory.mktemp("meld_raw") / "MELD.Raw", "dev")


def test_reads_clips_and_counts_missing_and_unreadable(raw, caplog):
    s = read_meld_raw(raw.root, "dev", fps=2.0)
    assert s.clip_dir.name == "dev_splits_complete"
    assert [u.utterance_id for u in s.utterances] == raw.written + raw.corrupt
    assert s.missing == raw.missing and s.unreadable == []
    with caplog.at_level(logging.INFO, logger="synctva_ros.datasets.meld_raw"):
        got = list(s.iter_clips())
    assert [u.utterance_id for u, _ in got] == raw.written
    assert s.unreadable == raw.corrupt
    assert s.counts() == {"rows": 7, "clips": 6, "missing": 1, "unreadable": 1}
    assert "1 missing" in caplog.text and "1 unreadable" in caplog.text
    for u, c in got:
        assert u.label == raw.labels[u.utterance_id] and u.dataset == "meld" and u.split == "dev"
        assert c.sample_rate == 16000 and c.audio.dtype == np.float32 and c.audio.ndim == 1
        # the speech written (16 kHz, through AAC at 48 kHz stereo) comes back at its length, +- one AAC frame
        assert abs(c.audio_s - raw.durations[u.utterance_id]) < 0.03
        assert 0.05 < np.abs(c.audio).max() <= 1.0  # real speech, not silence
        assert c.n_video_frames == raw.frames[u.utterance_id] and c.video_fps == 15.0
        assert c.duration_s == pytest.approx(max(c.audio_s, c.n_video_frames / 15.0), abs=1e-6)
        # 2 frames per second: one per target time (k + 0.5) / 2 within the clip, nearest frames, no repeats
        assert len(c.frames) == len(sampled_times(c.duration_s, 2.0)) == len(c.frame_times)
        assert np.all(np.diff(c.frame_times) > 0) and c.frame_times[0] >= 0 and c.frame_times[-1] < c.duration_s
        assert c.frames.dtype == np.uint8 and c.frames.shape[1:] == (160, 160, 3)


def test_frames_are_the_face_photograph_in_rgb(raw):
    """The decoded frame matches the photograph written (H.264 loss aside), channel order included."""
    uid = raw.written[0]
    c = decode_clip(raw.root / "dev_splits_complete" / "dia{}_utt{}.mp4".format(*uid.split("_")), fps=2.0)
    want = _face_frame(raw.faces[uid], (160, 160)).astype(np.float32)
    for frame in c.frames.astype(np.float32):
        assert frame.std() > 20  # a photograph, not a flat frame
        assert np.abs(frame - want).mean() < 6  # about 2-3 grey levels of H.264 loss
        assert np.abs(frame - want[..., ::-1]).mean() >= np.abs(frame - want).mean()


def test_max_frames_and_rates(raw):
    path = raw.root / "dev_splits_complete" / "dia{}_utt{}.mp4".format(*raw.written[1].split("_"))
    every = decode_clip(path, sample_rate=8000, fps=30.0)
    assert every.sample_rate == 8000 and len(every.frames) == every.n_video_frames  # 30 > 15 fps: every frame once
    np.testing.assert_allclose(every.frame_times, np.arange(every.n_video_frames) / 15.0, atol=1e-6)
    capped = decode_clip(path, fps=30.0, max_frames=3)
    assert len(capped.frames) == 3 and capped.frame_times[0] == 0.0
    assert capped.frame_times[-1] == pytest.approx(every.frame_times[-1])
    with pytest.raises(ValueError):
        decode_clip(path, fps=0.0)


def test_corrupt_and_non_media_files_raise_clip_unreadable(raw, tmp_path):
    corrupt = raw.root / "dev_splits_complete" / "dia{}_utt{}.mp4".format(*raw.corrupt[0].split("_"))
    with pytest.raises(ClipUnreadable):
        decode_clip(corrupt)
    text = tmp_path / "dia0_utt0.mp4"
    text.write_text("not a video")
    with pytest.raises(ClipUnreadable):
        decode_clip(text)


def test_folder_variants_and_test_split_names(raw, tmp_path):
    nested = tmp_path / "unpacked"
    (nested / "dev").mkdir(parents=True)
    shutil.copytree(raw.root / "dev_splits_complete", nested / "dev" / "dev_splits_complete")
    shutil.copy(raw.root / "dev_sent_emo.csv", nested / "dev_sent_emo.csv")
    assert clip_dir(nested, "dev") == nested / "dev" / "dev_splits_complete"
    assert len(read_meld_raw(nested, "dev").utterances) == 6
    # the test folder's final_videos_test copies are found when the plain name is absent; ._ files never
    t = tmp_path / "t"
    (t / "output_repeated_splits_test").mkdir(parents=True)
    shutil.copy(raw.root / "dev_sent_emo.csv", t / "test_sent_emo.csv")
    first, second = raw.written[0].split("_"), raw.written[1].split("_")
    shutil.copy(raw.root / "dev_splits_complete" / f"dia{first[0]}_utt{first[1]}.mp4",
                t / "output_repeated_splits_test" / f"final_videos_testdia{first[0]}_utt{first[1]}.mp4")
    (t / "output_repeated_splits_test" / f"._dia{second[0]}_utt{second[1]}.mp4").write_bytes(b"\0" * 64)
    s = read_meld_raw(t, "test")
    assert [u.utterance_id for u in s.utterances] == [raw.written[0]] and len(s.missing) == 6
    assert s.utterances[0].split == "test"
    with pytest.raises(FileNotFoundError, match="train_splits"):
        clip_dir(t, "train")
    with pytest.raises(ValueError):
        read_meld_raw(t, "valid")
