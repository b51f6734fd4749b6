"""Identity of a feature cache: its format, its key and where its files are.

A cache is named ``{dataset}_{split}_{key}.safetensors`` / ``.json`` where ``key`` hashes the
extractor identities and the speech renderer's identity
(:func:`synctva_ros.datasets.rendering.speech_identity`), so a changed extractor or renderer
never reuses a stale cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["CACHE_FORMAT", "cache_key", "cache_stem", "find_cache"]

#: ``format`` of the cache's JSON header and safetensors metadata.
CACHE_FORMAT = "synctva-feature-cache/1"


def cache_key(identities: dict[str, Any], speech: dict[str, Any] | None) -> str:
    """12-hex key of the extractor identities + speech renderer identity.

    Args:
        identities: ``{modality: identity or None}`` of the extractors.
        speech: identity of the speech renderer (``None`` when no audio is cached).

    Returns:
        The first 12 hex digits of the sha256 of both (and :data:`CACHE_FORMAT`) as sorted JSON.
    """
    blob = json.dumps({"extractors": identities, "speech": speech, "format": CACHE_FORMAT}, sort_keys=True,
                      default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def cache_stem(out_dir: str | os.PathLike[str], dataset: str, split: str, key: str) -> Path:
    """``out_dir/{dataset}_{split}_{key}`` (add ``.safetensors`` / ``.json``); a split path counts by its stem."""
    return Path(out_dir) / f"{dataset}_{Path(split).stem}_{key}"


def find_cache(out_dir: str | os.PathLike[str], dataset: str, split: str) -> list[Path]:
    """Complete caches (``.safetensors`` with its ``.json``) of a split in ``out_dir``, newest first."""
    found = [p for p in Path(out_dir).glob(f"{dataset}_{Path(split).stem}_*.safetensors")
             if p.with_suffix(".json").exists()]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)
