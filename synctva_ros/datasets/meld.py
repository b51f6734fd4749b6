"""MELD reader (Poria et al., ACL 2019; github.com/declare-lab/MELD ``data/MELD/*_sent_emo.csv``).

Columns: ``Sr No., Utterance, Speaker, Emotion, Sentiment, Dialogue_ID, Utterance_ID, Season,
Episode, StartTime, EndTime``; times are ``HH:MM:SS,mmm`` within the episode. Text is UTF-8
with typographic quotes (kept as they are); a UTF-8 BOM is tolerated.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from pathlib import Path

from synctva_ros.datasets.utterance import Utterance

__all__ = ["MELD_CLASSES", "MELD_SPLIT_FILES", "read_meld", "parse_srt_time", "meld_path"]

log = logging.getLogger(__name__)

#: MELD emotion classes in the project's output order (= ``ModelConfig.class_names`` default).
MELD_CLASSES: tuple[str, ...] = ("neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear")
#: Split name -> CSV file name in the MELD repository.
MELD_SPLIT_FILES = {"train": "train_sent_emo.csv", "dev": "dev_sent_emo.csv", "test": "test_sent_emo.csv"}

_REQUIRED = ("Utterance", "Speaker", "Emotion", "Dialogue_ID", "Utterance_ID", "StartTime", "EndTime")
_TIME = re.compile(r"^\s*(\d+):(\d{1,2}):(\d{1,2})[,.](\d{1,3})\s*$")


def parse_srt_time(value: str) -> float:
    """``"HH:MM:SS,mmm"`` (or with ``.``) -> seconds.

    Raises:
        ValueError: the string is not in that format.
    """
    m = _TIME.match(value or "")
    if not m:
        raise ValueError(f"time {value!r} is not HH:MM:SS,mmm")
    h, mi, s, ms = m.groups()
    return int(h) * 3600 + int(mi) * 60 + int(s) + int(ms.ljust(3, "0")) / 1000.0


def meld_path(data_dir: str | os.PathLike[str], split: str) -> Path:
    """Path of a split's CSV under ``data_dir`` (e.g. ``/work/shared/data/meld``).

    Raises:
        ValueError: unknown split.
    """
    if split not in MELD_SPLIT_FILES:
        raise ValueError(f"unknown MELD split '{split}' (known: {list(MELD_SPLIT_FILES)})")
    return Path(data_dir) / MELD_SPLIT_FILES[split]


def read_meld(path: str | os.PathLike[str], split: str | None = None, strict_times: bool = True) -> list[Utterance]:
    """Read a MELD ``*_sent_emo.csv`` into utterances, in file order.

    The one MELD CSV reader: ``synctva make-bag`` (:func:`synctva_ros.bags.make_bag.read_meld_csv`)
    uses it too, with ``strict_times=False``.

    Args:
        path: CSV file.
        split: split name stored in the records (default: guessed from the file name).
        strict_times: a malformed ``StartTime``/``EndTime`` is an error; with False it becomes ``nan``
            (MELD's published CSVs contain a few).

    Raises:
        FileNotFoundError: missing file.
        ValueError: a required column is missing, an emotion is not a MELD class, a time is
            malformed (``strict_times``), or an id is not an integer (the message names the row).
    """
    path = Path(path)
    if split is None:
        split = next((k for k, v in MELD_SPLIT_FILES.items() if path.name == v), path.stem.split("_")[0])
    out: list[Utterance] = []
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in _REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing MELD columns {missing}")
        for row_no, row in enumerate(reader, start=2):
            try:
                label = row["Emotion"].strip().lower()
                if label not in MELD_CLASSES:
                    raise ValueError(f"unknown emotion {row['Emotion']!r}")
                did, uid = str(int(row["Dialogue_ID"])), int(row["Utterance_ID"])
                times = []
                for col in ("StartTime", "EndTime"):
                    try:
                        times.append(parse_srt_time(row[col]))
                    except (ValueError, TypeError):
                        if strict_times:
                            raise
                        times.append(float("nan"))
                start, end = times
            except (ValueError, TypeError, AttributeError) as exc:
                raise ValueError(f"{path}:{row_no}: {exc}") from None
            meta = {k: row[k] for k in ("Sr No.", "Sentiment", "Season", "Episode") if k in row}
            out.append(Utterance(dataset="meld", split=split, dialogue_id=did, utterance_index=uid,
                                 utterance_id=f"{did}_{uid}", speaker=row["Speaker"].strip(),
                                 text=row["Utterance"].strip(), label=label, start_s=start, end_s=end,
                                 meta=meta))
    return out
