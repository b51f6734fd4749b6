"""The IEMOCAP release reader on a release generated in its layout (espeak-ng wavs, avis of face photographs)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

pytest.importorskip("av")
from iemocap_release_fixtures import DATA, make_iemocap_release  # noqa: E402

from synctva_ros.datasets.iemocap import read_iemocap  # noqa: E402
from synctva_ros.datasets.iemocap_release import (IEMOCAP_RELEASE_SPLITS, decode_segment,  # noqa: E402
                                                  read_iemocap_release)
from synctva_ros.datasets.meld_raw import decoder_identity, sampled_times  # noqa: E402


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """Sessions 1 and 5, 2 dialogues each, 4 kept turns per dialogue (+1 xxx, 1 turn without wav)."""
    return make_iemocap_release(tmp_path_factory.mktemp("iemocap_release") / "IEMOCAP_full_release")


def test_reads_turns_in_time_order_with_ids_speakers_and_skipped_labels(release):
    s = read_iemocap_release(release.root.parent, "all")  # the folder holding IEMOCAP_full_release/ also works
    assert s.root == release.root and s.sessions == (1, 5)
    assert s.counts() == {"evaluated": 17, "utterances": 16, "skipped": 1, "skipped_labels": {"xxx": 1},
                          "missing_wav": 1, "missing_avi": 0, "untranscribed": 0, "unreadable_wav": 0,
                          "unreadable_avi": 0}
    by_dialogue: dict[str, list] = {}
    for u in s.utterances:
        by_dialogue.setdefault(u.dialogue_id, []).append(u)
    assert list(by_dialogue) == ["Ses01F_impro01", "Ses01F_script01_1", "Ses05F_impro01", "Ses05F_script01_1"]
    for d, utts in by_dialogue.items():
        kept = release.kept(d)  # the evaluation file lists them by name (F turns first), not by time
        assert [u.meta["name"] for u in utts] == [t.name for t in kept]
        assert [u.utterance_index for u in utts] == list(range(len(kept)))
        for u, t in zip(utts, kept):
            assert u.utterance_id == f"{d}_{u.utterance_index}" and u.dataset == "iemocap" and u.split == "all"
            assert (u.speaker, u.text, u.label, u.start_s, u.end_s) == (t.speaker, t.text, t.label, t.start, t.end)
            assert u.meta["session"] == release.sessions[d]
            assert (u.meta["wav"] is None) == (t.wav_samples == 0)
            assert u.meta["avi"].endswith(f"Session{release.sessions[d]}/dialog/avi/DivX/{d}.avi")
    assert [u.meta["name"] for u in s.utterances if u.utterance_id in s.missing_wav] == ["Ses01F_script01_1_M000"]
    # the xxx turn is left out and the numbering runs over the kept turns: as the COSMIC export numbers them
    export = [u for u in read_iemocap(DATA / "iemocap" / "train.jsonl")
              if u.dialogue_id == "Ses01F_impro01"]
    assert [(u.utterance_id, u.speaker, u.text, u.label) for u in by_dialogue["Ses01F_impro01"]] == \
        [(u.utterance_id, u.speaker, u.text, u.label) for u in export[:4]]
    assert "Ses01F_impro01_F001" not in {u.meta["name"] for u in s.utterances}  # the xxx turn


def test_splits_are_sessions(release):
    assert IEMOCAP_RELEASE_SPLITS["train"] == (1, 2, 3, 4) and IEMOCAP_RELEASE_SPLITS["test"] == (5,)
    train = read_iemocap_release(release.root, "train")  # sessions 2-4 are absent here: skipped
    assert train.sessions == (1,) and {u.dialogue_id[:5] for u in train.utterances} == {"Ses01"}
    assert len(train.utterances) == 8 and train.skipped == {"xxx": 1} and train.utterances[0].split == "train"
    test = read_iemocap_release(release.root, "test")
    assert test.sessions == (5,) and len(test.utterances) == 8 and test.skipped == {}
    assert [u.utterance_id for u in read_iemocap_release(release.root, "session5").utterances] == \
        [u.utterance_id for u in test.utterances]
    with pytest.raises(FileNotFoundError, match="Session"):
        read_iemocap_release(release.root, "session2")
    with pytest.raises(ValueError, match="unknown IEMOCAP release split"):
        read_iemocap_release(release.root, "valid")


def _mean_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


def test_decoding_gives_the_wav_and_the_frames_of_the_turns_time_span(release):
    s = read_iemocap_release(release.root, "all", fps=2.0)
    turns = {t.name: t for ts in release.turns.values() for t in ts}
    got = list(s.iter_clips())
    assert len(got) == 16  # the turn without a wav still has its frames
    for u, c in got:
        t = turns[u.meta["name"]]
        assert c.sample_rate == 16000 and c.audio.dtype == np.float32 and c.audio.size == t.wav_samples
        if t.wav_samples:
            assert 0.05 < np.abs(c.audio).max() <= 1.0  # real speech
        dur = t.end - t.start
        assert c.duration_s == pytest.approx(max(dur, t.wav_samples / 16000))
        assert c.video_fps == release.video_fps and c.frames.shape[1:] == (release.size, 2 * release.size, 3)
        # 2 frames per second of the turn, times from its start, each a frame of the avi inside [start, end]
        assert len(c.frames) == len(sampled_times(dur, 2.0)) == len(c.frame_times)
        assert np.all(np.diff(c.frame_times) > 0) and 0 <= c.frame_times[0] and c.frame_times[-1] <= dur
        np.testing.assert_allclose((t.start + c.frame_times) * release.video_fps,
                                   np.round((t.start + c.frame_times) * release.video_fps), atol=1e-6)
        want = release.frame(t)
        others = [release.frame(None)] + [release.frame(o) for o in turns.values() if o is not t]
        for f in c.frames:  # the turn's own picture (MPEG-4 loss aside), nothing from before or after it
            assert _mean_diff(f, want) < 6 and _mean_diff(f, want) < min(_mean_diff(f, o) for o in others) / 2
    # a late turn is reached by seeking: far fewer frames decoded than lie before it
    u, c = next((u, c) for u, c in got if u.utterance_id == "Ses05F_impro01_3")
    assert u.start_s * release.video_fps > 70 and c.n_video_frames < u.start_s * release.video_fps / 2
    # audio resampled to another rate
    c8 = read_iemocap_release(release.root, "session5", sample_rate=8000, fps=1.0)(u)
    assert c8.sample_rate == 8000 and abs(c8.audio.size - c.audio.size / 2) <= 2
    assert len(c8.frames) == len(sampled_times(u.end_s - u.start_s, 1.0))


def test_decode_segment_between_turns_and_bad_arguments(release):
    avi = release.root / "Session1" / "dialog" / "avi" / "DivX" / "Ses01F_impro01.avi"
    a, b = release.turns["Ses01F_impro01"][:2]
    frames, times, rate, n = decode_segment(avi, a.end + 0.01, b.start - 0.01, fps=10.0)
    assert rate == release.video_fps and len(frames) == len(times) >= 2
    assert all(_mean_diff(f, release.frame(None)) < 3 for f in frames)  # the grey pause between the turns
    frames, times, _, _ = decode_segment(avi, 1000.0, 1001.0)  # after the video's end: no frames, no error
    assert frames.shape == (0, 0, 0, 3) and times.size == 0
    capped, ctimes, _, _ = decode_segment(avi, 0.0, 5.0, fps=10.0, max_frames=3)
    assert len(capped) == 3 and ctimes[0] == 0.0
    with pytest.raises(ValueError):
        decode_segment(avi, 2.0, 1.0)
    with pytest.raises(ValueError):
        decode_segment(avi, 0.0, 1.0, fps=0.0)


def test_missing_and_unreadable_files_are_skipped_and_counted(release, tmp_path):
    root = tmp_path / "release"
    shutil.copytree(release.root, root)
    s1, s5 = root / "Session1", root / "Session5"
    (s1 / "dialog/avi/DivX/Ses01F_script01_1.avi").unlink()  # the dialogue whose turn M000 has no wav
    avi = s1 / "dialog/avi/DivX/Ses01F_impro01.avi"
    avi.write_bytes(avi.read_bytes()[:600])  # truncated
    (s5 / "sentences/wav/Ses05F_impro01/Ses05F_impro01_M000.wav").write_text("not a wav")
    with open(s5 / "dialog/EmoEvaluation/Ses05F_impro01.txt", "a", encoding="utf-8") as fh:
        fh.write("[20.0000 - 20.5000]\tSes05F_impro01_F009\tsur\t[3.0, 4.0, 3.0]\n\n"
                 "[21.0000 - 21.5000]\tSes05F_impro01_M009\tneu\t[3.0, 3.0, 3.0]\n\n")  # no wav, no transcript
    s = read_iemocap_release(root, "all")
    assert s.skipped == {"sur": 1, "xxx": 1} and len(s.utterances) == 17
    assert s.missing_avi == [f"Ses01F_script01_1_{i}" for i in range(4)]
    assert s.missing_wav == ["Ses01F_script01_1_1", "Ses05F_impro01_4"] and s.untranscribed == ["Ses05F_impro01_4"]
    late = s.utterances[[u.utterance_id for u in s.utterances].index("Ses05F_impro01_4")]
    assert late.text == "" and late.label == "neu" and late.meta["name"] == "Ses05F_impro01_M009"
    media = {u.utterance_id: s(u) for u in s.utterances}
    assert media["Ses01F_script01_1_1"] is None  # neither a wav nor the avi
    assert media["Ses01F_script01_1_0"].audio.size and len(media["Ses01F_script01_1_0"].frames) == 0
    assert media["Ses01F_impro01_0"].audio.size and len(media["Ses01F_impro01_0"].frames) == 0
    m0 = s.utterances[[u.utterance_id for u in s.utterances].index("Ses05F_impro01_0")]
    assert media["Ses05F_impro01_0"].audio.size == 0 and len(media["Ses05F_impro01_0"].frames) == len(
        sampled_times(m0.end_s - m0.start_s, 2.0))
    assert media["Ses05F_impro01_4"] is None  # after the video's end, no wav
    c = s.counts()
    assert (c["unreadable_avi"], c["unreadable_wav"], c["missing_avi"], c["missing_wav"]) == (4, 1, 4, 2)
    assert s.unreadable_wav == ["Ses05F_impro01_0"] and "1 unreadable wav" in s.summary()


def test_identity_names_the_release(release):
    s = read_iemocap_release(release.root, "test", sample_rate=16000, fps=2.0)
    ident = s.identity()
    meld = decoder_identity(16000, 2.0, None)
    assert ident["source"] == "iemocap_release" and meld["source"] == "meld_raw"
    assert {k: v for k, v in ident.items() if k not in ("source", "video")} == {k: v for k, v in meld.items()
                                                                                   if k != "source"}
    assert read_iemocap_release(release.root, "test", fps=1.0).identity() != ident
