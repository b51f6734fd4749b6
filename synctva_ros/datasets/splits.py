"""The dataset splits the project knows: where their files are, their class names, their utterances.

MELD (Poria et al., ACL 2019) ships ``{train,dev,test}_sent_emo.csv``; IEMOCAP (Busso et al.,
2008) is read from the project's ``{train,valid,test}.jsonl`` export. Both live under
:data:`DEFAULT_DATA_DIR` (``$SYNCTVA_DATA``, else ``/work/shared/data``).
"""

from __future__ import annotations

import os
from pathlib import Path

from synctva_ros.datasets.iemocap import IEMOCAP_CLASSES, read_iemocap
from synctva_ros.datasets.meld import MELD_CLASSES, MELD_SPLIT_FILES, read_meld
from synctva_ros.datasets.utterance import Utterance

__all__ = ["DEFAULT_DATA_DIR", "SPLIT_FILES", "dataset_classes", "load_utterances"]

#: Where the real MELD/IEMOCAP text + labels live (overridable with ``$SYNCTVA_DATA``).
DEFAULT_DATA_DIR = Path(os.environ.get("SYNCTVA_DATA", "/work/shared/data"))

#: ``(dataset, split) -> file`` relative to the data directory.
SPLIT_FILES: dict[tuple[str, str], str] = {
    **{("meld", s): f"meld/{f}" for s, f in MELD_SPLIT_FILES.items()},
    **{("iemocap", s): f"iemocap/{s}.jsonl" for s in ("train", "valid", "test")}}


def dataset_classes(dataset: str) -> tuple[str, ...]:
    """Class names of a dataset in the project's order (MELD: ModelConfig default; IEMOCAP: hap..fru).

    Raises:
        ValueError: unknown dataset.
    """
    if dataset == "meld":
        return MELD_CLASSES
    if dataset == "iemocap":
        return IEMOCAP_CLASSES
    raise ValueError(f"unknown dataset '{dataset}' (known: meld, iemocap)")


def load_utterances(dataset: str, split: str, data_dir: str | os.PathLike[str] | None = None) -> list[Utterance]:
    """Utterances of ``dataset`` (``meld``/``iemocap``) ``split`` from ``data_dir`` (default :data:`DEFAULT_DATA_DIR`).

    Args:
        dataset: ``"meld"`` or ``"iemocap"``.
        split: a split name of :data:`SPLIT_FILES`, or a path to a CSV / JSONL file (its stem
            becomes the split name).
        data_dir: dataset root.

    Returns:
        The utterances in file order.

    Raises:
        ValueError: unknown dataset/split; FileNotFoundError: missing file.
    """
    p = Path(split)
    if p.suffix in (".csv", ".jsonl"):
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such {p.suffix[1:].upper()} file")
        path, name = p, p.stem
    else:
        if (dataset, split) not in SPLIT_FILES:
            raise ValueError(f"unknown split '{split}' of '{dataset}' "
                             f"(known: {[s for d, s in SPLIT_FILES if d == dataset]})")
        path, name = Path(data_dir or DEFAULT_DATA_DIR) / SPLIT_FILES[(dataset, split)], split
    if dataset == "meld":
        return read_meld(path, split=name)
    if dataset == "iemocap":
        return read_iemocap(path, split=name)
    raise ValueError(f"unknown dataset '{dataset}'")
