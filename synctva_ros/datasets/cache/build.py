"""Building the feature cache of a dataset split: chunked, resumable, optionally with worker processes.

For every utterance: the text encoder's token states (with its previous turns as dialogue context
when the encoder has ``context_turns`` > 0: :func:`synctva_ros.features.dialogue.dataset_contexts`, the
dataset's dialogue order, the pipeline's rules) and sentence embedding; the transcript
rendered to speech (:func:`synctva_ros.datasets.rendering.render_utterance`, the bag writer's
rules) and run through openSMILE. With recordings (``clips``: e.g. a MELD.Raw split,
:class:`synctva_ros.datasets.meld_raw.MeldRawSplit`, or IEMOCAP's release,
:class:`synctva_ros.datasets.iemocap_release.IemocapReleaseSplit`) the audio is the clip's own track instead of
rendered speech, and the clip's sampled frames give the visual nodes (``visual_x``/``visual_t``,
times in [0, 1]; e.g. :class:`~synctva_ros.features.faces.embedding.FaceEmbeddingVisual`); without
clips there are no visual features. Each chunk of ``chunk_size`` utterances is written to
``{stem}.parts/`` (:mod:`.parts`) and skipped on restart; the chunks are merged at the end.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from tqdm import tqdm

from synctva_ros.config import FeaturesConfig, load_config
from synctva_ros.core.batch import TextEncoding
from synctva_ros.datasets.cache.keys import CACHE_FORMAT, cache_key, cache_stem
from synctva_ros.datasets.cache.parts import merge_parts, part_done, part_path, save_part, text_cache_arrays
from synctva_ros.datasets.rendering import render_utterance, speech_identity
from synctva_ros.datasets.recordings import read_recordings
from synctva_ros.datasets.splits import dataset_classes, load_utterances
from synctva_ros.datasets.utterance import Utterance
from synctva_ros.features.base import FeatureExtractor
from synctva_ros.features.dialogue import Turn, dataset_contexts
from synctva_ros.features.registry import build_extractor, extractor_identities

__all__ = ["build_cache", "cache_split"]

log = logging.getLogger(__name__)

#: ``Utterance -> (samples (S,) float32, sample rate Hz)``.
Renderer = Callable[[Utterance], tuple[np.ndarray, int]]
#: ``Utterance -> decoded clip or None`` (unreadable): an object with ``audio`` ``(S,)`` float32,
#: ``sample_rate`` (Hz), ``frames`` ``(K, H, W, 3)`` uint8, ``frame_times`` ``(K,)`` s and ``duration_s``
#: (:class:`synctva_ros.datasets.meld_raw.ClipMedia`); optionally with ``identity()`` for the cache key.
ClipSource = Callable[[Utterance], Any]


def _encode_chunk(utts: Sequence[Utterance], text: FeatureExtractor | None, audio: FeatureExtractor | None,
                  render: Renderer | None, contexts: dict[str, list[Turn]] | None = None,
                  visual: FeatureExtractor | None = None, clips: ClipSource | None = None
                  ) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    """Features of a chunk: concatenated arrays + one index row per utterance.

    ``contexts``: ``{utterance_id: previous turns}`` for a text encoder with dialogue context (else ``None``).
    ``clips``: decoded recordings (audio from them instead of ``render``; visual nodes from their frames
    with ``visual``); an utterance whose clip is unreadable (``None``) keeps only its text, row ``clip_error``.
    """
    rows: list[dict[str, Any]] = []
    ax, at, vx, vt = [], [], [], []
    if text is None:
        enc = [TextEncoding(None, None)] * len(utts)
    elif contexts is not None:
        enc = text.encode_texts(  # type: ignore[attr-defined]
            [u.text for u in utts], [contexts[u.utterance_id] for u in utts], [u.speaker for u in utts])
    else:
        enc = text.encode_texts([u.text for u in utts])  # type: ignore[attr-defined]
    td = text.dim if text is not None else 0
    text_arrays, text_rows = text_cache_arrays(list(enc), td)
    for u, trow in zip(utts, text_rows):
        row: dict[str, Any] = {"utterance_id": u.utterance_id, "dialogue_id": u.dialogue_id,
                               "utterance_index": u.utterance_index, "speaker": u.speaker, "label": u.label,
                               "text": u.text, **trow, "n_audio": 0, "audio_s": 0.0}
        clip = clips(u) if clips is not None else None
        if clips is not None:
            row.update(n_visual=0, clip_error=clip is None)
        sound = None
        if audio is not None and clip is not None and clip.audio.size:
            sound = clip.audio, int(clip.sample_rate)
        elif audio is not None and clips is None and render is not None and u.text.strip():
            sound = render(u)
        if sound is not None:
            wav, sr = sound
            row["audio_s"] = float(wav.size / sr) if sr else 0.0
            feats = audio.extract(wav, sr)  # type: ignore[union-attr]
            if feats is not None:
                ax.append(feats.x)
                at.append(feats.t)
                row["n_audio"] = int(feats.x.shape[0])
        if visual is not None and clip is not None and len(clip.frames):
            vf = visual.extract_frames(clip.frames, clip.frame_times, clip.duration_s)  # type: ignore[attr-defined]
            if vf is not None:
                vx.append(vf.x)
                vt.append(vf.t)
                row["n_visual"] = int(vf.x.shape[0])
        rows.append(row)
    ad = audio.dim if audio is not None else 0
    arrays = {
        **text_arrays,
        "audio_x": np.concatenate(ax).astype(np.float16) if ax else np.zeros((0, ad), np.float16),
        "audio_t": np.concatenate(at).astype(np.float32) if at else np.zeros(0, np.float32),
    }
    if visual is not None and clips is not None:
        arrays["visual_x"] = (np.concatenate(vx) if vx else np.zeros((0, visual.dim))).astype(np.float16)
        arrays["visual_t"] = np.concatenate(vt).astype(np.float32) if vt else np.zeros(0, np.float32)
    return arrays, rows


# ------------------------------------------------------------------ worker processes (spawned)
def _audio_worker_init(feature_set: str, sample_rate: int, max_nodes: int, level: str) -> None:
    """Pool initializer: one openSMILE extractor per worker process."""
    global _W_AUDIO
    # deferred: opensmile is needed here only inside the spawned worker processes
    from synctva_ros.features.audio import OpenSmileAudio

    _W_AUDIO = OpenSmileAudio(feature_set, sample_rate, max_nodes, level)  # type: ignore[name-defined]


def _audio_worker(u: Utterance) -> tuple[np.ndarray | None, np.ndarray | None, float]:
    """``(nodes (N, F_a) or None, times (N,) or None, audio seconds)`` of one utterance.

    A blank transcript has no speech to render: ``(None, None, 0.0)``, as the serial path skips it.
    """
    if not u.text.strip():
        return None, None, 0.0
    wav, sr = render_utterance(u, _W_AUDIO.sample_rate)  # type: ignore[name-defined]
    f = _W_AUDIO.extract(wav, sr)  # type: ignore[name-defined]
    return (None, None, wav.size / sr) if f is None else (f.x, f.t, wav.size / sr)


def _encode_chunk_pooled(pool: Any, chunk: Sequence[Utterance], text: FeatureExtractor | None,
                         audio: FeatureExtractor, contexts: dict[str, list[Turn]] | None = None
                         ) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    """:func:`_encode_chunk` with the audio (speech + openSMILE) computed by the worker ``pool``."""
    arrays, rows = _encode_chunk(chunk, text, None, None, contexts)
    res = pool.map(_audio_worker, chunk)
    ax = [r[0] for r in res if r[0] is not None]
    for row, r in zip(rows, res):
        row["n_audio"] = 0 if r[0] is None else int(r[0].shape[0])
        row["audio_s"] = float(r[2])
    arrays["audio_x"] = np.concatenate(ax).astype(np.float16) if ax else np.zeros((0, audio.dim), np.float16)
    arrays["audio_t"] = (np.concatenate([r[1] for r in res if r[1] is not None]).astype(np.float32)
                         if ax else np.zeros(0, np.float32))
    return arrays, rows


# ------------------------------------------------------------------ building
def build_cache(dataset: str, split: str, cfg: FeaturesConfig, out_dir: str | os.PathLike[str],
                limit: int | None = None, workers: int = 1, data_dir: str | os.PathLike[str] | None = None,
                chunk_size: int = 256, extractors: dict[str, FeatureExtractor | None] | None = None,
                render: Renderer | None = None, utterances: Sequence[Utterance] | None = None,
                progress: bool = True, clips: ClipSource | None = None, device: str = "cpu") -> Path:
    """Build (or finish) the feature cache of one split; returns the ``.safetensors`` path.

    Args:
        dataset: ``"meld"`` or ``"iemocap"``.
        split: split name (``train``, ``dev``, ``valid``) or a CSV/JSONL path.
        cfg: feature configuration (text encoder, openSMILE set, audio rate/nodes).
        out_dir: cache directory.
        limit: first N utterances only (the key then includes ``-limN``).
        workers: processes rendering speech + running openSMILE (1 = in this process).
        data_dir: dataset root (default :data:`~synctva_ros.datasets.splits.DEFAULT_DATA_DIR`).
        chunk_size: utterances per resumable chunk.
        extractors: pre-built ``{"text", "audio", "visual"}`` extractors (default: built from ``cfg``;
            the visual one only with ``clips``).
        render: ``Utterance -> (samples, Hz)`` (default
            :func:`~synctva_ros.datasets.rendering.render_utterance`; tests may pass another real
            renderer); ``None`` audio extractor disables audio.
        utterances: use these instead of reading the split.
        progress: show a tqdm progress bar.
        clips: recordings of the utterances (``Utterance -> decoded clip or None``, e.g. a
            :class:`~synctva_ros.datasets.meld_raw.MeldRawSplit`, whose ``utterances`` then are the
            default ``utterances``): audio from their tracks instead of rendered speech, visual nodes
            from their frames; its ``identity()`` replaces the speech renderer's in the key and header.
            Clips that do not decode are counted in the header's ``clips`` (``unreadable``).
        device: torch device of the text and visual encoders built here (``cpu``, ``cuda``, ``cuda:N``);
            openSMILE always runs on the CPU. The cache key does not depend on it.

    Returns:
        Path of the ``{dataset}_{split}_{key}.safetensors`` file (its ``.json`` index beside it).

    Raises:
        ValueError: unknown dataset/split; RuntimeError: the speech renderer is unavailable.
    """
    if utterances is None and clips is not None and hasattr(clips, "utterances"):
        utterances = clips.utterances  # a MeldRawSplit: the rows that have a clip
    utts = list(utterances) if utterances is not None else load_utterances(dataset, split, data_dir)
    if limit is not None:
        utts = utts[:limit]
    if extractors is None:
        extractors = {"text": build_extractor("text", cfg, device), "audio": build_extractor("audio", cfg),
                      "visual": build_extractor("visual", cfg, device) if clips is not None else None}
    text, audio = extractors.get("text"), extractors.get("audio")
    visual = extractors.get("visual") if clips is not None else None
    k = int(getattr(text, "context_turns", 0) or 0)
    # turns from the split's dialogue order (every utterance of the split, not only its chunk)
    contexts = dataset_contexts(utts, k) if text is not None and k > 0 else None
    render_fn = render
    if audio is not None and render_fn is None:
        render_fn = lambda u: render_utterance(u, cfg.audio_sample_rate)  # noqa: E731
    idents = extractor_identities({"text": text, "audio": audio, "visual": visual})
    speech = (speech_identity(cfg.audio_sample_rate) if render is None else
              {"renderer": getattr(render, "__qualname__", repr(render))}) if audio is not None else None
    if clips is not None:  # the recordings' decoder instead of a speech renderer
        speech = (clips.identity() if hasattr(clips, "identity") else
                  {"clips": getattr(clips, "__qualname__", type(clips).__qualname__)})
    key = cache_key(idents, speech) + (f"-lim{limit}" if limit is not None else "")
    stem = cache_stem(out_dir, dataset, split, key)
    final = stem.with_suffix(".safetensors")
    if final.exists() and stem.with_suffix(".json").exists():
        log.info("cache %s is complete", final)
        return final
    parts = Path(str(stem) + ".parts")
    parts.mkdir(parents=True, exist_ok=True)
    n_chunks = (len(utts) + chunk_size - 1) // chunk_size
    pool = None
    if workers > 1 and audio is not None and render is None and clips is None:
        a = audio
        pool = mp.get_context("spawn").Pool(workers, initializer=_audio_worker_init,
                                            initargs=(a.feature_set, a.sample_rate, a.max_nodes, a.level))
    t0 = time.perf_counter()
    done_new = 0
    bar = tqdm(total=len(utts), desc=f"cache {dataset}/{Path(split).stem}", unit="utt", disable=not progress)
    try:
        for c in range(n_chunks):
            chunk = utts[c * chunk_size:(c + 1) * chunk_size]
            pfile = part_path(parts, c)
            if part_done(pfile):
                bar.update(len(chunk))
                continue
            if pool is not None:
                arrays, rows = _encode_chunk_pooled(pool, chunk, text, audio, contexts)
            else:
                arrays, rows = _encode_chunk(chunk, text, audio, render_fn, contexts, visual, clips)
            save_part(pfile, arrays, rows)
            done_new += len(chunk)
            bar.update(len(chunk))
    finally:
        bar.close()
        if pool is not None:
            pool.close()
            pool.join()
    elapsed = time.perf_counter() - t0
    if done_new:
        log.info("cache %s/%s: %d utterances in %.1f s (%.1f ms per utterance)", dataset, split, done_new,
                 elapsed, 1000 * elapsed / done_new)
    header = {"format": CACHE_FORMAT, "dataset": dataset, "split": Path(split).stem, "key": key,
              "extractors": idents, "speech": speech,
              "dims": {"text": text.dim if text is not None else 0, "audio": audio.dim if audio is not None else 0,
                       "visual": visual.dim if visual is not None else 0},
              "class_names": list(dataset_classes(dataset)), "count": len(utts),
              "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "build_s_per_utterance": (elapsed / done_new) if done_new else None}
    if clips is not None:
        header["clips"] = dict(clips.counts()) if hasattr(clips, "counts") else {}
        log.info("%s", clips.summary() if hasattr(clips, "summary") else header["clips"])
    merge_parts(parts, n_chunks, stem, header)
    return final


def cache_split(dataset: str, split: str, *, out_dir: str | os.PathLike[str] = Path("cache"),
                data_dir: str | os.PathLike[str] | None = None, limit: int | None = None, workers: int = 1,
                profile: str | os.PathLike[str] = "demo", overrides: Sequence[str] = (),
                raw_dir: str | os.PathLike[str] | None = None, clips: ClipSource | None = None) -> Path:
    """``synctva cache``: build the cache of one split with a profile's feature extractors.

    Args:
        dataset: ``"meld"`` or ``"iemocap"``.
        split: split name or a CSV/JSONL path.
        out_dir: cache directory.
        data_dir: dataset root (default :data:`~synctva_ros.datasets.splits.DEFAULT_DATA_DIR`).
        limit: first N utterances only.
        workers: speech + openSMILE processes (1 = in this process).
        profile: profile name in ``config/profiles`` or a YAML path.
        overrides: ``"section.key=value"`` strings (:func:`synctva_ros.config.load_config`);
            ``runtime.device`` is the device of the text and visual encoders.
        raw_dir: recordings of the dataset (:func:`~synctva_ros.datasets.recordings.read_recordings`): a
            MELD.Raw folder (``meld``) or an IEMOCAP release folder (``iemocap``; ``split`` then is ``train``
            = sessions 1-4, ``test`` = session 5, ``all`` or ``session1`` .. ``session5``): features of its
            recordings (audio; frames through ``features.visual_encoder``, e.g. ``face_api``, at
            ``features.visual_fps``) instead of rendered transcripts; files missing or unreadable are skipped
            and counted.
        clips: a clip source built by the caller instead (e.g. labelled bags,
            :func:`synctva_ros.bags.recordings.read_bag_recordings`); ``raw_dir`` is then ignored.

    Returns:
        Path of the cache's ``.safetensors`` file.

    Raises:
        ConfigError (a ValueError): bad override; ValueError: unknown dataset/split (of the recordings too);
        FileNotFoundError: missing profile, split file or recordings folder; RuntimeError: espeak-ng is missing.
    """
    cfg = load_config(profile, list(overrides) or None)
    if clips is None and raw_dir:
        clips = read_recordings(dataset, raw_dir, split, sample_rate=cfg.features.audio_sample_rate,
                                fps=cfg.features.visual_fps)
    return build_cache(dataset, split, cfg.features, out_dir, limit=limit, workers=max(1, int(workers)),
                       data_dir=data_dir, clips=clips, device=cfg.runtime.device)
