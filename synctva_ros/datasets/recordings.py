"""Recordings of a dataset (MELD.Raw clips, IEMOCAP's release), read by one call for the cache and training.

``synctva cache DATASET SPLIT --raw DIR`` and ``training.raw_dir`` name a folder of recordings; which
reader it takes follows from the dataset: MELD -> :func:`synctva_ros.datasets.meld_raw.read_meld_raw`
(``source: meld_raw`` in the cache header's ``speech``), IEMOCAP ->
:func:`synctva_ros.datasets.iemocap_release.read_iemocap_release` (``source: iemocap_release``).
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["RECORDING_SOURCES", "read_recordings"]

#: Dataset -> the ``source`` its recordings' decoder writes into a cache header's ``speech``.
RECORDING_SOURCES: dict[str, str] = {"meld": "meld_raw", "iemocap": "iemocap_release"}


def read_recordings(dataset: str, root: str | os.PathLike[str], split: str, sample_rate: int = 16000,
                    fps: float = 2.0) -> Any:
    """The recordings of ``dataset`` ``split`` under ``root``: a clip source for
    :func:`~synctva_ros.datasets.cache.build_cache` (``Utterance -> ClipMedia or None``, with
    ``utterances``, ``identity()``, ``counts()``, ``summary()``), decoding audio at ``sample_rate`` Hz and
    frames at ``fps`` per second.

    Raises:
        ValueError: unknown dataset or split; FileNotFoundError: the folder lacks the split's files.
    """
    if dataset == "meld":
        from synctva_ros.datasets.meld_raw import read_meld_raw

        return read_meld_raw(root, split, sample_rate=sample_rate, fps=fps)
    if dataset == "iemocap":
        from synctva_ros.datasets.iemocap_release import read_iemocap_release

        return read_iemocap_release(root, split, sample_rate=sample_rate, fps=fps)
    raise ValueError(f"no reader of recordings for dataset {dataset!r} (known: {list(RECORDING_SOURCES)})")
