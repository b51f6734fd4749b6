from __future__ import annotations

import json
from pathlib import Path

import pytest

from synctva_ros.datasets.iemocap import IEMOCAP_CLASSES, read_iemocap
from synctva_ros.datasets.utterance import group_dialogues, label_counts

REAL = Path("/work/shared/data/iemocap/valid.jsonl")


def test_read_small_jsonl(tmp_path):
    p = tmp_path / "valid.jsonl"
    rows = [{"dialogue_id": "Ses01F_impro01", "utterance_index": 1, "speaker": "M", "text": "Do you?", "label": "fru"},
            {"dialogue_id": "Ses01F_impro01", "utterance_index": 0, "speaker": "F", "text": "Excuse me.",
             "label": "neu", "extra": 3}]
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    utts = read_iemocap(p)
    assert [u.utterance_id for u in utts] == ["Ses01F_impro01_1", "Ses01F_impro01_0"]
    assert utts[1].label == "neu" and utts[1].meta == {"extra": 3} and utts[0].split == "valid"
    assert [u.utterance_index for u in group_dialogues(utts)["Ses01F_impro01"]] == [0, 1]


@pytest.mark.parametrize("line, msg", [
    ('{"dialogue_id": "d", "utterance_index": 0, "speaker": "M", "text": "x", "label": "joy"}', "unknown label"),
    ('{"dialogue_id": "d", "speaker": "M", "text": "x", "label": "neu"}', "missing fields"),
    ("{not json", "t.jsonl:1"),
])
def test_bad_lines_raise(tmp_path, line, msg):
    p = tmp_path / "t.jsonl"
    p.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=msg):
        read_iemocap(p)


@pytest.mark.skipif(not REAL.exists(), reason="IEMOCAP data not present")
def test_real_iemocap_valid():
    utts = read_iemocap(REAL)
    assert len(utts) == 647 and len(group_dialogues(utts)) == 12
    assert set(label_counts(utts)) <= set(IEMOCAP_CLASSES)
