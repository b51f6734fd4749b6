"""IEMOCAP reader for the JSONL export of the COSMIC feature-extraction data
(github.com/declare-lab/conv-emotion ``COSMIC/feature-extraction/iemocap``).

One JSON object per line: ``dialogue_id, utterance_index, speaker (M/F), text, label`` with
the six standard classes ``hap, sad, neu, ang, exc, fru`` (the literature's index order).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from synctva_ros.datasets.utterance import Utterance

__all__ = ["IEMOCAP_CLASSES", "read_iemocap"]

log = logging.getLogger(__name__)

#: IEMOCAP classes in the index order of the literature's pickles (hap=0 ... fru=5).
IEMOCAP_CLASSES: tuple[str, ...] = ("hap", "sad", "neu", "ang", "exc", "fru")

_REQUIRED = ("dialogue_id", "utterance_index", "speaker", "text", "label")


def read_iemocap(path: str | os.PathLike[str], split: str | None = None) -> list[Utterance]:
    """Read an IEMOCAP JSONL file into utterances, in file order (blank lines skipped).

    Raises:
        FileNotFoundError: missing file.
        ValueError: invalid JSON, a missing field or an unknown label (the message names the line).
    """
    path = Path(path)
    split = split or path.stem
    out: list[Utterance] = []
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                missing = [k for k in _REQUIRED if k not in rec]
                if missing:
                    raise ValueError(f"missing fields {missing}")
                label = str(rec["label"]).strip()
                if label not in IEMOCAP_CLASSES:
                    raise ValueError(f"unknown label {rec['label']!r} (known: {IEMOCAP_CLASSES})")
                did, idx = str(rec["dialogue_id"]), int(rec["utterance_index"])
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{path}:{line_no}: {exc}") from None
            meta = {k: v for k, v in rec.items() if k not in _REQUIRED}
            out.append(Utterance(dataset="iemocap", split=split, dialogue_id=did, utterance_index=idx,
                                 utterance_id=f"{did}_{idx}", speaker=str(rec["speaker"]),
                                 text=str(rec["text"]).strip(), label=label, meta=meta))
    return out
