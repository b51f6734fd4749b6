"""Split names, class names and utterance loading (synctva_ros/datasets/splits.py)."""

from __future__ import annotations

import json

import pytest

from synctva_ros.datasets.iemocap import IEMOCAP_CLASSES
from synctva_ros.datasets.meld import MELD_CLASSES
from synctva_ros.datasets.splits import SPLIT_FILES, dataset_classes, load_utterances

MELD_HEADER = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime\n"


def test_dataset_classes():
    assert dataset_classes("meld") == MELD_CLASSES and dataset_classes("iemocap") == IEMOCAP_CLASSES
    with pytest.raises(ValueError, match="known: meld, iemocap"):
        dataset_classes("cmu-mosei")


def test_split_names_resolve_under_data_dir(tmp_path):
    (tmp_path / "meld").mkdir()
    (tmp_path / SPLIT_FILES[("meld", "dev")]).write_text(
        MELD_HEADER + '1,Hi,A,joy,positive,7,0,1,1,"00:00:01,000","00:00:02,000"\n', encoding="utf-8")
    (u,) = load_utterances("meld", "dev", tmp_path)
    assert (u.split, u.dialogue_id, u.text, u.label) == ("dev", "7", "Hi", "joy")
    with pytest.raises(ValueError, match=r"unknown split 'valid' of 'meld' \(known: \['train', 'dev', 'test'\]\)"):
        load_utterances("meld", "valid", tmp_path)


def test_a_file_path_is_a_split(tmp_path):
    p = tmp_path / "mine.jsonl"
    p.write_text(json.dumps({"dialogue_id": "d1", "utterance_index": 0, "speaker": "F", "text": "I am fine.",
                             "label": "neu"}) + "\n", encoding="utf-8")
    (u,) = load_utterances("iemocap", str(p))
    assert (u.split, u.dialogue_id, u.label) == ("mine", "d1", "neu")
    with pytest.raises(ValueError, match="unknown dataset"):
        load_utterances("other", str(p))


@pytest.mark.parametrize("name", ["missing.csv", "missing.jsonl"])
def test_a_missing_split_file_is_file_not_found(tmp_path, name):
    # issue 14 item 10: a path that names a CSV/JSONL file but does not exist is FileNotFoundError, as documented
    with pytest.raises(FileNotFoundError, match="no such"):
        load_utterances("meld", str(tmp_path / name))
