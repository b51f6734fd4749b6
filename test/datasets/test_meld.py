from __future__ import annotations

import math
from pathlib import Path

import pytest

from synctva_ros.datasets.meld import MELD_CLASSES, parse_srt_time, read_meld
from synctva_ros.datasets.utterance import group_dialogues, label_counts

HEADER = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime\n"
REAL = Path("/work/shared/data/meld/train_sent_emo.csv")


def _write(path: Path, rows: list[str], bom: bool = False) -> Path:
    path.write_text(("\ufeff" if bom else "") + HEADER + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


def test_parse_srt_time():
    assert parse_srt_time("00:16:16,059") == pytest.approx(976.059)
    assert parse_srt_time("1:02:03.5") == pytest.approx(3723.5)
    with pytest.raises(ValueError):
        parse_srt_time("16:16")


def test_read_small_csv_with_bom_and_typographic_quotes(tmp_path):
    p = _write(tmp_path / "dev_sent_emo.csv", [
        '1,"You must’ve had your hands full, “really”.",The Interviewer,Joy,positive,3,1,8,21,'
        '"00:16:21,940","00:16:23,442"',
        '2,Oh.,Chandler,neutral,neutral,3,0,8,21,"00:16:20,000","00:16:20,500"',
    ], bom=True)
    utts = read_meld(p)
    assert [u.utterance_id for u in utts] == ["3_1", "3_0"]
    u = utts[0]
    assert u.split == "dev" and u.label == "joy" and u.speaker == "The Interviewer"
    assert u.text == "You must’ve had your hands full, “really”."
    assert u.duration_s == pytest.approx(1.502)
    assert u.meta["Sentiment"] == "positive"
    d = group_dialogues(utts)
    assert [x.utterance_index for x in d["3"]] == [0, 1]
    assert label_counts(utts, MELD_CLASSES)["joy"] == 1


def test_bad_rows_raise_with_location(tmp_path):
    p = _write(tmp_path / "x.csv", ['1,Hi,A,happy,positive,0,0,1,1,"00:00:01,000","00:00:02,000"'])
    with pytest.raises(ValueError, match=r"x.csv:2: unknown emotion"):
        read_meld(p)
    q = _write(tmp_path / "y.csv", ['1,Hi,A,joy,positive,0,0,1,1,"00:00:01","00:00:02,000"'])
    with pytest.raises(ValueError, match="HH:MM:SS"):
        read_meld(q)
    (tmp_path / "z.csv").write_text("Utterance,Speaker\nhi,A\n", encoding="utf-8")
    with pytest.raises(ValueError, match="missing MELD columns"):
        read_meld(tmp_path / "z.csv")


def test_lenient_times(tmp_path):
    """With strict_times=False a malformed time is nan (make-bag reads MELD this way: test/bags/test_make_bag.py)."""
    q = _write(tmp_path / "y.csv", ['1, Hi there ,A,Joy,positive,3,0,1,1,"00:00:01","00:00:02,000"',
                                    '2,Bye,B,anger,negative,4,1,1,1,"00:00:03,000","00:00:04,500"'])
    (u, v) = read_meld(q, strict_times=False)
    assert math.isnan(u.start_s) and u.end_s == pytest.approx(2.0) and u.text == "Hi there"


@pytest.mark.skipif(not REAL.exists(), reason="MELD data not present")
def test_real_meld_train_counts():
    utts = read_meld(REAL)
    assert len(utts) == 9989 and len(group_dialogues(utts)) == 1038
    assert label_counts(utts, MELD_CLASSES) == {"neutral": 4710, "joy": 1743, "surprise": 1205, "anger": 1109,
                                                "sadness": 683, "disgust": 271, "fear": 268}
    assert all(math.isfinite(u.start_s) and math.isfinite(u.end_s) for u in utts)
    assert any("’" in u.text for u in utts)
