"""The feature caches a training run reads, found by the configured extractors.

:func:`load_split_cache` looks up ``{cache_dir}/{dataset}_{split}_{key}.safetensors`` whose
extractor identities match the configuration (:mod:`synctva_ros.datasets.cache`). Top-k
fine-tuning (``model.text_top_layers = K``) needs text nodes from the encoder's layer
``features.text_layer`` instead of its last layer, and comparing dialogue-context lengths
(``features.text_context_turns``) or text encoders needs text encoded otherwise: when only a cache
with other text settings (encoder, layer, context, ``max_tokens``) and the same audio exists,
:func:`build_text_layer_cache` derives one from it, copying the
(expensive, about 0.2 s per utterance) audio nodes and re-encoding only the text (MiniLM: about
10 ms per utterance alone, about 25 ms with 4 turns of context). The contexts are rebuilt from the
cache's own rows (dialogue id, utterance index, speaker, text) by
:func:`~synctva_ros.features.dialogue.dataset_contexts`, as ``synctva cache`` builds them. The derived
cache has the same format and key rule, so later runs find it directly.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file

from synctva_ros.bags.recordings import BAG_SOURCE, bag_split_dir, read_bag_recordings
from synctva_ros.config import FeaturesConfig, SyncTVAConfig
from synctva_ros.datasets.cache import (CACHE_FORMAT, CachedSplit, build_cache, cache_key, cache_stem, find_cache,
                                        load_cache)
from synctva_ros.datasets.cache.parts import text_cache_arrays, write_cache
from synctva_ros.datasets.recordings import RECORDING_SOURCES, read_recordings
from synctva_ros.features.dialogue import CONTEXT_STATE_PREFIXES, dataset_contexts
from synctva_ros.features.text import TextEncoder
from synctva_ros.training.config import TrainingConfig

__all__ = ["load_split_cache", "build_text_layer_cache", "recordings_of"]

log = logging.getLogger(__name__)


def _wanted_identities(cfg: SyncTVAConfig) -> dict[str, Any]:
    """Cheap identity fields of the configured extractors (no model loading) to select a cache."""
    f = cfg.features
    # the text identity holds context_turns / context_max_tokens only when K > 0 (features.text)
    k = int(getattr(f, "text_context_turns", 0))
    # the prefix's kind depends on the encoder's position scheme (features.text: relative-position encoders such as
    # MPNet keep the pair separators), which only loading it tells; the name, matched too, fixes which one it is
    context = {"context_turns": k or None, "context_max_tokens": f.text_context_max_tokens if k else None,
               "prefix": CONTEXT_STATE_PREFIXES if k and f.text_context_states else None}
    return {"text": {"name": f.text_encoder, "max_tokens": f.text_max_tokens, "layer": f.text_layer, **context},
            "audio": {"feature_set": f.audio_feature_set, "sample_rate": f.audio_sample_rate,
                      "max_nodes": f.audio_max_nodes, "level": f.audio_level},
            "visual": {"encoder": f.visual_encoder, "fps": f.visual_fps, "max_frames": f.max_frames}}




def _identities_match(stored: dict[str, Any], wanted: dict[str, Any], ignore: tuple[str, ...] = ()) -> bool:
    """Whether a cache's stored extractor identities have the wanted keys, modalities in ``ignore`` aside."""
    for m, keys in wanted.items():
        s = stored.get(m)
        if s is None:
            continue  # modality not cached: it will be inactive
        if m not in ignore and any(s.get(k) not in v if isinstance(v, tuple) else s.get(k) != v
                                   for k, v in keys.items()):
            return False
    return True


def _pick(found: list[Path], wanted: dict[str, Any], limit: int, ignore: tuple[str, ...] = ()) -> Path | None:
    for p in found:
        header = json.loads(p.with_suffix(".json").read_text())
        if not _identities_match(header.get("extractors", {}), wanted, ignore):
            continue
        if limit and header.get("count", 0) < limit:
            continue
        return p
    return None


def load_split_cache(tcfg: TrainingConfig, cfg: SyncTVAConfig, split: str, limit: int = 0) -> CachedSplit:
    """The :class:`~synctva_ros.datasets.cache.CachedSplit` of ``split`` matching the configured extractors.

    Looks for ``{cache_dir}/{dataset}_{split}_{key}.safetensors`` with the key of the configured
    extractors; builds it when ``training.build_cache`` is true; derives it from a cache of another
    text layer (:func:`build_text_layer_cache`) when only the text layer differs.

    Args:
        tcfg: where the caches are (``cache_dir``, ``dataset``, ``build_cache``, ``data_dir``); with
            ``raw_dir`` (MELD.Raw or IEMOCAP's release) only caches of its recordings are used, without it
            only caches of rendered transcripts.
        cfg: the configured extractors (``cfg.features``) and class names.
        split: split name (``train``, ``dev``, ...).
        limit: first N utterances (0 = all).

    Returns:
        The cache, its items cut to ``limit``.

    Raises:
        FileNotFoundError: no matching cache and ``build_cache`` is false (the message says how to build it).
    """
    names = list(cfg.model.class_names)
    if getattr(tcfg, "feature_pickle", ""):  # a literature feature pickle instead of the caches
        from synctva_ros.training.pickle_source import load_pickle_split

        c = load_pickle_split(tcfg, cfg, split)
        if limit:
            c.items = c.items[:limit]
        return c
    raw_dir = getattr(tcfg, "raw_dir", "")
    if tcfg.build_cache:
        clips = None
        if raw_dir:  # labelled bags (ROOT/split/), else MELD.Raw clips or IEMOCAP's release, by dataset
            clips = recordings_of(tcfg.dataset, raw_dir, split, cfg)
        path = build_cache(tcfg.dataset, split, cfg.features, tcfg.cache_dir, limit=limit or None,
                           data_dir=tcfg.data_dir or None, progress=tcfg.progress, clips=clips, device=tcfg.device)
        return load_cache(path, names)
    found = find_cache(tcfg.cache_dir, tcfg.dataset, split)
    # with raw_dir only caches built from recordings (MELD.Raw, IEMOCAP's release: their header's decoder), else
    # only those from rendered transcripts (a release's `train` holds other utterances than the export's)
    found = [p for p in found if bool(raw_dir) == ((json.loads(p.with_suffix(".json").read_text()).get("speech")
                                                    or {}).get("source") in (*RECORDING_SOURCES.values(),
                                                                             BAG_SOURCE))]
    wanted = _wanted_identities(cfg)
    path = _pick(found, wanted, limit)
    if path is None:
        source = _pick(found, wanted, limit, ignore=("text",))
        if source is not None:
            log.info("deriving a text cache (layer %d, %d context turns) of %s/%s from %s", cfg.features.text_layer,
                     cfg.features.text_context_turns, tcfg.dataset, split, source.name)
            path = build_text_layer_cache(source, cfg.features, tcfg.cache_dir, device=tcfg.device)
    if path is None:
        raise FileNotFoundError(
            f"no feature cache of {tcfg.dataset}/{split} for the configured extractors in {tcfg.cache_dir} "
            f"(found {len(found)} other(s)); build it with `synctva cache {tcfg.dataset} {split} --out "
            f"{tcfg.cache_dir}{' --raw ' + str(raw_dir) if raw_dir else ''}` or set training.build_cache=true")
    c = load_cache(path, names)
    if limit:
        c.items = c.items[:limit]
    return c


def recordings_of(dataset: str, root: str | os.PathLike[str], split: str, cfg: SyncTVAConfig) -> Any:
    """The clip source of ``split`` under ``root``: labelled bags when ``root/split`` holds rosbag2 recordings
    (:func:`~synctva_ros.bags.recordings.read_bag_recordings`), else the dataset's own recordings
    (:func:`~synctva_ros.datasets.recordings.read_recordings`: MELD.Raw, IEMOCAP's release).

    Raises:
        ValueError: unknown dataset or split; FileNotFoundError: no such recordings.
    """
    if bag_split_dir(root, split) is not None:
        return read_bag_recordings(root, split, dataset, cfg)
    return read_recordings(dataset, root, split, sample_rate=cfg.features.audio_sample_rate,
                           fps=cfg.features.visual_fps)


def build_text_layer_cache(source: str | os.PathLike[str], features: FeaturesConfig,
                           out_dir: str | os.PathLike[str], encoder: Any = None, device: str = "cpu") -> Path:
    """Copy a feature cache with its text re-encoded at ``features.text_layer`` with ``features.text_context_turns``.

    Args:
        source: an existing cache (``.safetensors``/``.json`` path or stem) of the same split,
            any text settings (only its rows and audio are used).
        features: configuration of the new text extractor (``text_encoder``, ``text_max_tokens``,
            ``text_layer``, ``text_context_turns``, ``text_context_max_tokens``).
        out_dir: where to write (name ``{dataset}_{split}_{key}`` with the new key); an existing
            cache of that name is returned as it is.
        encoder: a pre-built :class:`~synctva_ros.features.text.TextEncoder` (default: from ``features``).
        device: torch device of the encoder built here (``cpu``, ``cuda``, ``cuda:N``).

    Returns:
        Path of the new cache's ``.safetensors`` (its ``.json`` index beside it).

    Raises:
        FileNotFoundError: missing source; ValueError: the source is not a cache.
    """
    p = Path(source)
    stem = p.with_suffix("") if p.suffix in (".safetensors", ".json") else p
    header = json.loads(stem.with_suffix(".json").read_text())
    if header.get("format") != CACHE_FORMAT:
        raise ValueError(f"{stem} is not a {CACHE_FORMAT} cache")
    enc = encoder or TextEncoder(features.text_encoder, max_tokens=features.text_max_tokens,
                                 layer=features.text_layer, context_turns=features.text_context_turns,
                                 context_max_tokens=features.text_context_max_tokens,
                                 context_states=features.text_context_states, device=device)
    new_ident = enc.identity()
    extractors = {**header["extractors"], "text": new_ident}
    key = cache_key(extractors, header.get("speech"))
    out = cache_stem(out_dir, header["dataset"], header["split"], key)
    if out.with_suffix(".safetensors").exists() and out.with_suffix(".json").exists():
        return out.with_suffix(".safetensors")
    arr = load_file(str(stem.with_suffix(".safetensors")))
    rows = [dict(r) for r in header["utterances"]]
    t0 = time.perf_counter()
    contexts = speakers = None
    if enc.context_turns > 0:  # the same turns as `synctva cache` builds from the split's dialogue order
        turns = dataset_contexts([_Row(r) for r in rows], enc.context_turns)
        contexts = [turns[r["utterance_id"]] for r in rows]
        speakers = [str(r.get("speaker") or "") for r in rows]
    enc_out = enc.encode_texts([r["text"] for r in rows], contexts, speakers)
    text_arrays, text_rows = text_cache_arrays(enc_out, enc.dim)
    for r, t in zip(rows, text_rows):
        r.pop("n_text_prefix", None)
        r.update(t)
    arrays = {**text_arrays, "audio_x": arr["audio_x"], "audio_t": arr["audio_t"],
              **{k: arr[k] for k in ("visual_x", "visual_t") if k in arr}}  # recordings' visual nodes, as they are
    log.info("re-encoded %d texts at layer %d (%d context turns) in %.1f s", len(rows), enc.layer,
             enc.context_turns, time.perf_counter() - t0)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    new_header = {**header, "key": key, "extractors": extractors, "utterances": rows,
                  "dims": {**header["dims"], "text": enc.dim}, "derived_from": str(stem.name),
                  "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    return write_cache(out, arrays, new_header)


class _Row:
    """A cache row (``utterance_id``, ``dialogue_id``, ``utterance_index``, ``speaker``, ``text``) as attributes."""

    def __init__(self, row: dict[str, Any]) -> None:
        self.utterance_id = row["utterance_id"]
        self.dialogue_id = row["dialogue_id"]
        self.utterance_index = int(row["utterance_index"])
        self.speaker = str(row.get("speaker") or "")
        self.text = str(row.get("text") or "")
