"""The resumable on-disk chunks of a cache build and their merge into the final files.

A chunk is ``{stem}.parts/{c:05d}.safetensors`` (arrays ``text_x``, ``audio_x``, ``audio_t``,
``sentence``, ``text_prefix_x`` for a text encoder with context states, ``visual_x``/``visual_t`` for a
cache built from recordings) plus ``{c:05d}.json`` (one index row per utterance). The arrays are written to
``.tmp`` and renamed only after the index rows are written, so a chunk with both files is complete.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from synctva_ros.datasets.cache.keys import CACHE_FORMAT

__all__ = ["part_path", "part_done", "save_part", "merge_parts", "write_cache", "text_cache_arrays"]


def part_path(parts: Path, c: int) -> Path:
    """``parts/{c:05d}.safetensors``: chunk ``c``'s arrays (its index rows: same name, ``.json``)."""
    return parts / f"{c:05d}.safetensors"


def part_done(pfile: Path) -> bool:
    """True when chunk ``pfile`` was written completely (arrays and index rows)."""
    return pfile.exists() and pfile.with_suffix(".json").exists()


def save_part(pfile: Path, arrays: dict[str, np.ndarray], rows: list[dict[str, Any]]) -> None:
    """Write one chunk: arrays to ``.tmp``, the index rows, then the arrays' rename marks the chunk done."""
    tmp = pfile.with_suffix(".tmp")
    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp))
    pfile.with_suffix(".json").write_text(json.dumps(rows, ensure_ascii=False))
    os.replace(tmp, pfile)


def merge_parts(parts: Path, n_chunks: int, stem: Path, header: dict[str, Any]) -> None:
    """Concatenate chunks ``0 .. n_chunks - 1`` into ``{stem}.safetensors`` / ``{stem}.json``, then delete them.

    Args:
        parts: the chunk folder (removed when empty).
        n_chunks: number of chunks.
        stem: the cache's path without suffix.
        header: the JSON header (``key``, ``dims``...); the merged rows go in as ``utterances``.
    """
    arrays: dict[str, list[np.ndarray]] = {}
    rows: list[dict[str, Any]] = []
    for c in range(n_chunks):
        pfile = part_path(parts, c)
        for k, v in load_file(str(pfile)).items():
            arrays.setdefault(k, []).append(v)
        rows.extend(json.loads(pfile.with_suffix(".json").read_text()))
    merged = {k: np.concatenate(v) for k, v in arrays.items()}
    if not merged:
        merged = {"text_x": np.zeros((0, header["dims"]["text"]), np.float16),
                  "audio_x": np.zeros((0, header["dims"]["audio"]), np.float16),
                  "audio_t": np.zeros(0, np.float32),
                  "sentence": np.zeros((0, header["dims"]["text"]), np.float16)}
    write_cache(stem, merged, {**header, "utterances": rows})
    for c in range(n_chunks):
        for suffix in (".safetensors", ".json"):
            (parts / f"{c:05d}{suffix}").unlink(missing_ok=True)
    try:
        parts.rmdir()
    except OSError:
        pass


def write_cache(stem: Path, arrays: dict[str, np.ndarray], header: dict[str, Any]) -> Path:
    """Write a finished cache: arrays to ``{stem}.tmp``, the JSON index, then rename to ``{stem}.safetensors``.

    Args:
        stem: the cache's path without suffix.
        arrays: ``text_x``, ``audio_x``, ``audio_t``, ``sentence`` (see :mod:`synctva_ros.datasets.cache`).
        header: the complete JSON index (``key``, ``dims``, ``utterances``...); its ``key`` also goes
            into the safetensors metadata with :data:`CACHE_FORMAT`.

    Returns:
        ``{stem}.safetensors``; the rename comes last, so a cache whose ``.safetensors`` exists is complete.
    """
    tmp = stem.with_suffix(".tmp")
    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp),
              metadata={"format": CACHE_FORMAT, "key": header["key"]})
    stem.with_suffix(".json").write_text(json.dumps(header, ensure_ascii=False, indent=0))
    os.replace(tmp, stem.with_suffix(".safetensors"))
    return stem.with_suffix(".safetensors")


def text_cache_arrays(encodings: list[Any], dim: int) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    """The text arrays of a cache and each utterance's text fields, from its encodings.

    Args:
        encodings: one :class:`~synctva_ros.features.text.TextEncoding` (``tokens``, ``sentence``,
            ``prefix``) per utterance, in row order.
        dim: the text width ``F``.

    Returns:
        ``({"text_x": (sum N, F), "sentence": (B, F)[, "text_prefix_x": (sum M, F)]} float16,
        [{"n_text", "has_sentence"[, "n_text_prefix"]}] per utterance)``; the prefix entries only when
        some encoding has a prefix (``features.text_context_states``).
    """
    tx, se, px, rows = [], [], [], []
    with_prefix = any(e.prefix is not None for e in encodings)
    for e in encodings:
        row: dict[str, Any] = {"n_text": 0 if e.tokens is None else int(e.tokens.shape[0]),
                               "has_sentence": e.sentence is not None}
        if e.tokens is not None:
            tx.append(e.tokens)
        se.append(e.sentence if e.sentence is not None else np.zeros(dim, np.float32))
        if with_prefix:
            m = 0 if e.prefix is None or e.tokens is None else int(e.prefix.shape[0])
            row["n_text_prefix"] = m
            if m:
                px.append(e.prefix)
        rows.append(row)
    arrays = {"text_x": (np.concatenate(tx) if tx else np.zeros((0, dim))).astype(np.float16),
              "sentence": (np.stack(se) if se else np.zeros((0, dim))).astype(np.float16)}
    if with_prefix:
        arrays["text_prefix_x"] = (np.concatenate(px) if px else np.zeros((0, dim))).astype(np.float16)
    return arrays, rows
