"""Loading a feature cache written by :func:`synctva_ros.datasets.cache.build.build_cache`."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from safetensors.numpy import load_file

from synctva_ros.core.batch import ModalityFeatures, UtteranceFeatures
from synctva_ros.core.modalities import MODALITIES
from synctva_ros.datasets.cache.keys import CACHE_FORMAT

__all__ = ["CachedSplit", "load_cache"]


@dataclass
class CachedSplit:
    """A loaded cache.

    Attributes:
        items: one :class:`UtteranceFeatures` per utterance (float32 nodes; ``label`` indexes
            ``class_names``; ``meta`` has ``utterance_id``, ``speaker``, ``text``, ``label_name``,
            ``audio_s``).
        dims: ``{"text": F_t, "audio": F_a, "visual": F_v}`` (0 = not cached).
        class_names: label order of ``items``.
        header: the JSON header (extractor identities, key, dataset, split...).
    """

    items: list[UtteranceFeatures]
    dims: dict[str, int]
    class_names: list[str]
    header: dict[str, Any] = field(default_factory=dict)

    @property
    def identities(self) -> dict[str, Any]:
        """``{modality: identity or None}`` of the extractors the cache was built with."""
        return dict(self.header.get("extractors", {}))


def load_cache(path: str | os.PathLike[str], class_names: Sequence[str] | None = None) -> CachedSplit:
    """Load a cache (path of the ``.safetensors`` or ``.json``, or the stem).

    Text nodes get evenly spaced times ``(i + 0.5) / n`` in [0, 1] (and their context states as the
    prefix when the cache has ``text_prefix_x``); audio nodes keep their stored times (seconds); visual
    nodes (a cache built from recordings: ``visual_x`` ``(sum N_v, F_v)``, ``visual_t`` in [0, 1]) keep
    theirs. A cache without visual arrays (built from transcripts, or before they existed) gives
    ``visual=None`` for every item.

    Args:
        path: the cache.
        class_names: label order for ``items[i].label`` (default: the cache's own).

    Returns:
        The :class:`CachedSplit`.

    Raises:
        FileNotFoundError: missing file; ValueError: wrong format or a label outside ``class_names``.
    """
    p = Path(path)
    stem = p.with_suffix("") if p.suffix in (".safetensors", ".json") else p
    header = json.loads(stem.with_suffix(".json").read_text())
    if header.get("format") != CACHE_FORMAT:
        raise ValueError(f"{stem}.json is not a {CACHE_FORMAT} cache (format={header.get('format')!r})")
    arr = load_file(str(stem.with_suffix(".safetensors")))
    names = list(class_names or header["class_names"])
    tx, ax, at, se = (arr["text_x"].astype(np.float32), arr["audio_x"].astype(np.float32), arr["audio_t"],
                      arr["sentence"].astype(np.float32))
    px = arr["text_prefix_x"].astype(np.float32) if "text_prefix_x" in arr else None
    vx = arr["visual_x"].astype(np.float32) if "visual_x" in arr else None
    vt = arr["visual_t"].astype(np.float32) if "visual_t" in arr else None
    items: list[UtteranceFeatures] = []
    ti = ai = pi = vi = 0
    for i, row in enumerate(header["utterances"]):
        text = audio = visual = None
        if row["n_text"]:
            n = row["n_text"]
            x = tx[ti:ti + n]
            prefix = None
            if px is not None:  # a text encoder with context states (features.text_context_states)
                m = int(row.get("n_text_prefix", 0))
                prefix, pi = px[pi:pi + m], pi + m
            text = ModalityFeatures(x, ((np.arange(n, dtype=np.float32) + 0.5) / n).astype(np.float32), prefix)
            ti += n
        if row["n_audio"]:
            n = row["n_audio"]
            audio = ModalityFeatures(ax[ai:ai + n], at[ai:ai + n].astype(np.float32))
            ai += n
        if vx is not None and vt is not None and row.get("n_visual"):
            n = int(row["n_visual"])
            visual, vi = ModalityFeatures(vx[vi:vi + n], vt[vi:vi + n]), vi + n
        if row["label"] not in names:
            raise ValueError(f"label '{row['label']}' of {row['utterance_id']} is not in class_names {names}")
        items.append(UtteranceFeatures(
            text=text, audio=audio, visual=visual, sentence=se[i] if row.get("has_sentence") else None,
            label=names.index(row["label"]), dialogue_id=str(row["dialogue_id"]),
            utterance_index=int(row["utterance_index"]),
            meta={"utterance_id": row["utterance_id"], "speaker": row["speaker"], "text": row["text"],
                  "label_name": row["label"], "audio_s": row.get("audio_s", 0.0)}))
    dims = {m: int(header["dims"].get(m, 0)) for m in MODALITIES}
    return CachedSplit(items, dims, names, header)
