"""Feature cache of a dataset split, for training.

For every utterance of a split (MELD CSV / IEMOCAP JSONL):

* text: token-level hidden states and the sentence embedding (:class:`~synctva_ros.features.text.TextEncoder`);
* audio: the transcript rendered to speech with espeak-ng by the **same function and rules the
  bag writer uses** (:func:`synctva_ros.datasets.rendering.render_utterance`), so training audio
  matches the audio in the project's bags, then openSMILE nodes
  (:class:`~synctva_ros.features.audio.OpenSmileAudio`);
* visual: from recordings only (``build_cache(..., clips=...)``, e.g. a MELD.Raw split read by
  :func:`synctva_ros.datasets.meld_raw.read_meld_raw`, whose clips also give the audio): the
  configured visual extractor's nodes of the clip's sampled frames; absent otherwise.

Storage: one safetensors file plus one JSON index per split, named
``{dataset}_{split}_{key}.safetensors`` / ``.json`` where ``key`` is a hash of the extractor
identities and the speech renderer's identity (:mod:`.keys`), so a changed extractor never reuses
a stale cache. Node matrices of all utterances are concatenated (float16) with offsets in the
index. The build (:mod:`.build`) is chunked and resumable (:mod:`.parts`); :mod:`.load` reads
a finished cache back.

Modules: :mod:`.keys` (format, key, file names), :mod:`.build` (building, worker processes, the
``synctva cache`` entry point), :mod:`.parts` (resumable chunks and their merge), :mod:`.load`.
"""

from __future__ import annotations

from synctva_ros.datasets.cache.build import build_cache, cache_split
from synctva_ros.datasets.cache.keys import CACHE_FORMAT, cache_key, cache_stem, find_cache
from synctva_ros.datasets.cache.load import CachedSplit, load_cache
# What the cache reads, also importable from here (their homes: datasets.splits, datasets.rendering).
from synctva_ros.datasets.rendering import render_utterance, speech_identity
from synctva_ros.datasets.splits import DEFAULT_DATA_DIR, dataset_classes, load_utterances

__all__ = ["CACHE_FORMAT", "DEFAULT_DATA_DIR", "load_utterances", "dataset_classes", "cache_key", "cache_stem",
           "find_cache", "build_cache", "cache_split", "load_cache", "CachedSplit", "render_utterance",
           "speech_identity"]
