"""Feature cache of a dataset split, for training.

For every utterance of a split (MELD CSV / IEMOCAP JSONL):

* text: token-level hidden states and the sentence embedding (:class:`~synctva_ros.features.text.TextEncoder`);
* audio: the transcript rendered to speech with espeak-ng by the **same function and
  arguments the bag writer uses** (:func:`synctva_ros.bags.speech` via :func:`render_utterance`),
  so training audio matches the audio in the project's bags, then openSMILE nodes
  (:class:`~synctva_ros.features.audio.OpenSmileAudio`);
* visual: absent (no MELD/IEMOCAP video on these machines).

Storage: one safetensors file plus one JSON index per split, named
``{dataset}_{split}_{key}.safetensors`` / ``.json`` where ``key`` is a hash of the
extractor identities and the speech renderer's identity, so a changed extractor never
reuses a stale cache. Node matrices of all utterances are concatenated (float16) with
offsets in the index. The build is chunked and resumable: each chunk of
``chunk_size`` utterances is written to ``{stem}.parts/`` and skipped on restart; the
chunks are merged at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from synctva_ros.config import FeaturesConfig
from synctva_ros.datasets.utterance import Utterance
from synctva_ros.features.base import FeatureExtractor
from synctva_ros.core.batch import ModalityFeatures, UtteranceFeatures
from synctva_ros.core.modalities import MODALITIES

__all__ = ["CACHE_FORMAT", "DEFAULT_DATA_DIR", "load_utterances", "dataset_classes", "cache_key",
           "cache_stem", "build_cache", "load_cache", "CachedSplit", "render_utterance", "speech_identity",
           "main"]

log = logging.getLogger(__name__)

CACHE_FORMAT = "synctva-feature-cache/1"
#: Where the real MELD/IEMOCAP text + labels live (overridable with ``$SYNCTVA_DATA``).
DEFAULT_DATA_DIR = Path(os.environ.get("SYNCTVA_DATA", "/work/shared/data"))

_SPLIT_FILES = {("meld", "train"): "meld/train_sent_emo.csv", ("meld", "dev"): "meld/dev_sent_emo.csv",
                ("meld", "test"): "meld/test_sent_emo.csv", ("iemocap", "train"): "iemocap/train.jsonl",
                ("iemocap", "valid"): "iemocap/valid.jsonl", ("iemocap", "test"): "iemocap/test.jsonl"}


def dataset_classes(dataset: str) -> tuple[str, ...]:
    """Class names of a dataset in the project's order (MELD: ModelConfig default; IEMOCAP: hap..fru)."""
    from synctva_ros.datasets.iemocap import IEMOCAP_CLASSES
    from synctva_ros.datasets.meld import MELD_CLASSES

    if dataset == "meld":
        return MELD_CLASSES
    if dataset == "iemocap":
        return IEMOCAP_CLASSES
    raise ValueError(f"unknown dataset '{dataset}' (known: meld, iemocap)")


def load_utterances(dataset: str, split: str, data_dir: str | os.PathLike[str] | None = None) -> list[Utterance]:
    """Utterances of ``dataset`` (``meld``/``iemocap``) ``split`` from ``data_dir`` (default :data:`DEFAULT_DATA_DIR`).

    ``split`` may also be a path to a CSV / JSONL file.

    Raises:
        ValueError: unknown dataset/split; FileNotFoundError: missing file.
    """
    from synctva_ros.datasets.iemocap import read_iemocap
    from synctva_ros.datasets.meld import read_meld

    p = Path(split)
    if p.suffix in (".csv", ".jsonl") and p.exists():
        path, name = p, p.stem
    else:
        if (dataset, split) not in _SPLIT_FILES:
            raise ValueError(f"unknown split '{split}' of '{dataset}' "
                             f"(known: {[s for d, s in _SPLIT_FILES if d == dataset]})")
        path, name = Path(data_dir or DEFAULT_DATA_DIR) / _SPLIT_FILES[(dataset, split)], split
    if dataset == "meld":
        return read_meld(path, split=name)
    if dataset == "iemocap":
        return read_iemocap(path, split=name)
    raise ValueError(f"unknown dataset '{dataset}'")


# ------------------------------------------------------------------ speech rendering
def _speech_module() -> Any:
    try:
        from synctva_ros.bags import speech
    except ImportError as exc:  # pragma: no cover - depends on the bag tools being installed
        raise RuntimeError("synctva_ros.bags.speech (the espeak-ng renderer the bags use) is not available; "
                           "the feature cache renders training audio with it") from exc
    return speech


def _bag_defaults() -> tuple[float, float]:
    """``(min_utt_s, max_utt_s)`` defaults of :func:`synctva_ros.bags.make_bag.make_bag` (0.3, 30 s)."""
    try:
        import inspect as _inspect

        from synctva_ros.bags.make_bag import make_bag

        params = _inspect.signature(make_bag).parameters
        return float(params["min_utt_s"].default), float(params["max_utt_s"].default)
    except (ImportError, KeyError):  # pragma: no cover - bag tools absent
        return 0.3, 30.0


def render_utterance(utt: Utterance, sample_rate: int = 16000) -> tuple[np.ndarray, int]:
    """Speech audio of one utterance, rendered exactly as :func:`synctva_ros.bags.make_bag.make_bag` does.

    That is :func:`synctva_ros.bags.speech.render_speech` with the utterance's speaker and its
    dataset duration (``end_s - start_s``) when it lies in make_bag's ``[min_utt_s, max_utt_s]``
    (else no duration); text that renders as silence becomes ``min_utt_s`` of zeros; and the
    samples go through the bag's S16LE quantisation (``round(x * 32767)``, decoded ``/ 32768``).

    Returns:
        ``(samples (S,) float32 in [-1, 1], sample_rate Hz)``.

    Raises:
        RuntimeError: the renderer is unavailable or fails (EspeakNotFoundError is a RuntimeError).
    """
    speech = _speech_module()
    lo, hi = _bag_defaults()
    d = utt.duration_s
    dur = d if np.isfinite(d) and lo <= d <= hi else None
    x = np.asarray(speech.render_speech(utt.text, utt.speaker, dur, sample_rate), np.float32)
    if x.size == 0:
        x = np.zeros(int(lo * sample_rate), np.float32)
    x = np.round(np.clip(x, -1.0, 1.0) * 32767).astype(np.int16).astype(np.float32) / 32768.0
    return x, int(sample_rate)


def _code_hash(source: str) -> str:
    """sha256 of Python source with comments, docstrings and formatting removed (``ast.unparse``)."""
    import ast

    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(getattr(body[0], "value", None), ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.unparse(tree).encode()).hexdigest()


def speech_identity(sample_rate: int = 16000) -> dict[str, Any]:
    """Identity of the speech renderer (its ``identity()`` when it has one, else a hash of its source)."""
    speech = _speech_module()
    if hasattr(speech, "identity"):
        ident = dict(speech.identity())
    else:
        import shutil
        import subprocess

        ident = {"source_sha256": _code_hash(inspect.getsource(speech))}
        exe = shutil.which("espeak-ng") or shutil.which("espeak")
        if exe:
            ver = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
            ident["espeak"] = ver.split(" Data at")[0]
    ident["sample_rate"] = int(sample_rate)
    ident["bag_rules"] = {"min_max_utt_s": list(_bag_defaults()), "pcm": "S16LE", "adapter": 2}
    return ident


# ------------------------------------------------------------------ keys
def cache_key(identities: dict[str, Any], speech: dict[str, Any] | None) -> str:
    """12-hex key of the extractor identities + speech renderer identity."""
    blob = json.dumps({"extractors": identities, "speech": speech, "format": CACHE_FORMAT}, sort_keys=True,
                      default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def cache_stem(out_dir: str | os.PathLike[str], dataset: str, split: str, key: str) -> Path:
    """``out_dir/{dataset}_{split}_{key}`` (add ``.safetensors`` / ``.json``)."""
    return Path(out_dir) / f"{dataset}_{Path(split).stem}_{key}"


# ------------------------------------------------------------------ building
def _encode_chunk(utts: Sequence[Utterance], text: FeatureExtractor | None, audio: FeatureExtractor | None,
                  render: Callable[[Utterance], tuple[np.ndarray, int]] | None
                  ) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    """Features of a chunk: concatenated arrays + one index row per utterance."""
    rows: list[dict[str, Any]] = []
    tx, ax, at, se = [], [], [], []
    enc = text.encode_texts([u.text for u in utts]) if text is not None else [(None, None)] * len(utts)
    for u, (tok, sent) in zip(utts, enc):
        row: dict[str, Any] = {"utterance_id": u.utterance_id, "dialogue_id": u.dialogue_id,
                               "utterance_index": u.utterance_index, "speaker": u.speaker, "label": u.label,
                               "text": u.text, "n_text": 0, "n_audio": 0, "has_sentence": sent is not None,
                               "audio_s": 0.0}
        if tok is not None:
            tx.append(tok)
            row["n_text"] = int(tok.shape[0])
        se.append(sent if sent is not None else np.zeros(text.dim if text is not None else 0, np.float32))
        if audio is not None and render is not None and u.text.strip():
            wav, sr = render(u)
            row["audio_s"] = float(wav.size / sr) if sr else 0.0
            feats = audio.extract(wav, sr)  # type: ignore[attr-defined]
            if feats is not None:
                ax.append(feats.x)
                at.append(feats.t)
                row["n_audio"] = int(feats.x.shape[0])
        rows.append(row)
    td = text.dim if text is not None else 0
    ad = audio.dim if audio is not None else 0
    arrays = {
        "text_x": np.concatenate(tx).astype(np.float16) if tx else np.zeros((0, td), np.float16),
        "audio_x": np.concatenate(ax).astype(np.float16) if ax else np.zeros((0, ad), np.float16),
        "audio_t": np.concatenate(at).astype(np.float32) if at else np.zeros(0, np.float32),
        "sentence": np.stack(se).astype(np.float16) if se else np.zeros((0, td), np.float16),
    }
    return arrays, rows


def _audio_worker_init(feature_set: str, sample_rate: int, max_nodes: int, level: str) -> None:
    global _W_AUDIO
    from synctva_ros.features.audio import OpenSmileAudio

    _W_AUDIO = OpenSmileAudio(feature_set, sample_rate, max_nodes, level)  # type: ignore[name-defined]


def _audio_worker(u: Utterance) -> tuple[np.ndarray | None, np.ndarray | None, float]:
    wav, sr = render_utterance(u, _W_AUDIO.sample_rate)  # type: ignore[name-defined]
    f = _W_AUDIO.extract(wav, sr)  # type: ignore[name-defined]
    return (None, None, wav.size / sr) if f is None else (f.x, f.t, wav.size / sr)


def build_cache(dataset: str, split: str, cfg: FeaturesConfig, out_dir: str | os.PathLike[str],
                limit: int | None = None, workers: int = 1, data_dir: str | os.PathLike[str] | None = None,
                chunk_size: int = 256, extractors: dict[str, FeatureExtractor | None] | None = None,
                render: Callable[[Utterance], tuple[np.ndarray, int]] | None = None,
                utterances: Sequence[Utterance] | None = None, progress: bool = True) -> Path:
    """Build (or finish) the feature cache of one split; returns the ``.safetensors`` path.

    Args:
        dataset: ``"meld"`` or ``"iemocap"``.
        split: split name (``train``, ``dev``, ``valid``) or a CSV/JSONL path.
        cfg: feature configuration (text encoder, openSMILE set, audio rate/nodes).
        out_dir: cache directory.
        limit: first N utterances only (the key then includes ``-limN``).
        workers: processes rendering speech + running openSMILE (1 = in this process).
        data_dir: dataset root (default :data:`DEFAULT_DATA_DIR`).
        chunk_size: utterances per resumable chunk.
        extractors: pre-built ``{"text", "audio"}`` extractors (default: built from ``cfg``).
        render: ``Utterance -> (samples, Hz)`` (default :func:`render_utterance`; tests may pass
            another real renderer); ``None`` audio extractor disables audio.
        utterances: use these instead of reading the split.
        progress: show a tqdm progress bar.

    Raises:
        ValueError: unknown dataset/split; RuntimeError: the speech renderer is unavailable.
    """
    from tqdm import tqdm

    from synctva_ros.features.registry import build_extractor, extractor_identities

    utts = list(utterances) if utterances is not None else load_utterances(dataset, split, data_dir)
    if limit is not None:
        utts = utts[:limit]
    if extractors is None:
        extractors = {"text": build_extractor("text", cfg), "audio": build_extractor("audio", cfg), "visual": None}
    text, audio = extractors.get("text"), extractors.get("audio")
    render_fn = render
    if audio is not None and render_fn is None:
        render_fn = lambda u: render_utterance(u, cfg.audio_sample_rate)  # noqa: E731
    idents = extractor_identities({"text": text, "audio": audio, "visual": None})
    speech = (speech_identity(cfg.audio_sample_rate) if render is None else
              {"renderer": getattr(render, "__qualname__", repr(render))}) if audio is not None else None
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
    if workers > 1 and audio is not None and render is None:
        import multiprocessing as mp

        a = audio
        pool = mp.get_context("spawn").Pool(workers, initializer=_audio_worker_init,
                                            initargs=(a.feature_set, a.sample_rate, a.max_nodes, a.level))
    t0 = time.perf_counter()
    done_new = 0
    bar = tqdm(total=len(utts), desc=f"cache {dataset}/{Path(split).stem}", unit="utt", disable=not progress)
    try:
        for c in range(n_chunks):
            chunk = utts[c * chunk_size:(c + 1) * chunk_size]
            pfile = parts / f"{c:05d}.safetensors"
            if pfile.exists() and pfile.with_suffix(".json").exists():
                bar.update(len(chunk))
                continue
            if pool is not None:
                arrays, rows = _encode_chunk(chunk, text, None, None)
                res = pool.map(_audio_worker, chunk)
                ax = [r[0] for r in res if r[0] is not None]
                for row, r in zip(rows, res):
                    row["n_audio"] = 0 if r[0] is None else int(r[0].shape[0])
                    row["audio_s"] = float(r[2])
                arrays["audio_x"] = (np.concatenate(ax).astype(np.float16) if ax
                                     else np.zeros((0, audio.dim), np.float16))
                arrays["audio_t"] = (np.concatenate([r[1] for r in res if r[1] is not None]).astype(np.float32)
                                     if ax else np.zeros(0, np.float32))
            else:
                arrays, rows = _encode_chunk(chunk, text, audio, render_fn)
            _save_part(pfile, arrays, rows)
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
                       "visual": 0},
              "class_names": list(dataset_classes(dataset)), "count": len(utts),
              "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "build_s_per_utterance": (elapsed / done_new) if done_new else None}
    _merge_parts(parts, n_chunks, stem, header)
    return final


def _save_part(pfile: Path, arrays: dict[str, np.ndarray], rows: list[dict[str, Any]]) -> None:
    from safetensors.numpy import save_file

    tmp = pfile.with_suffix(".tmp")
    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp))
    pfile.with_suffix(".json").write_text(json.dumps(rows, ensure_ascii=False))
    os.replace(tmp, pfile)


def _merge_parts(parts: Path, n_chunks: int, stem: Path, header: dict[str, Any]) -> None:
    from safetensors.numpy import load_file, save_file

    arrays: dict[str, list[np.ndarray]] = {}
    rows: list[dict[str, Any]] = []
    for c in range(n_chunks):
        pfile = parts / f"{c:05d}.safetensors"
        for k, v in load_file(str(pfile)).items():
            arrays.setdefault(k, []).append(v)
        rows.extend(json.loads(pfile.with_suffix(".json").read_text()))
    merged = {k: np.concatenate(v) for k, v in arrays.items()}
    if not merged:
        merged = {"text_x": np.zeros((0, header["dims"]["text"]), np.float16),
                  "audio_x": np.zeros((0, header["dims"]["audio"]), np.float16),
                  "audio_t": np.zeros(0, np.float32),
                  "sentence": np.zeros((0, header["dims"]["text"]), np.float16)}
    tmp = stem.with_suffix(".tmp")
    save_file(merged, str(tmp), metadata={"format": CACHE_FORMAT, "key": header["key"]})
    stem.with_suffix(".json").write_text(json.dumps({**header, "utterances": rows}, ensure_ascii=False, indent=0))
    os.replace(tmp, stem.with_suffix(".safetensors"))
    for c in range(n_chunks):
        for suffix in (".safetensors", ".json"):
            (parts / f"{c:05d}{suffix}").unlink(missing_ok=True)
    try:
        parts.rmdir()
    except OSError:
        pass


# ------------------------------------------------------------------ loading
@dataclass
class CachedSplit:
    """A loaded cache.

    Attributes:
        items: one :class:`UtteranceFeatures` per utterance (float32 nodes; ``label`` indexes
            ``class_names``; ``meta`` has ``utterance_id``, ``speaker``, ``text``, ``label_name``).
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
    """Load a cache written by :func:`build_cache` (path of the ``.safetensors`` or ``.json``, or the stem).

    Args:
        class_names: label order for ``items[i].label`` (default: the cache's own).

    Raises:
        FileNotFoundError: missing file; ValueError: wrong format or a label outside ``class_names``.
    """
    from safetensors.numpy import load_file

    p = Path(path)
    stem = p.with_suffix("") if p.suffix in (".safetensors", ".json") else p
    header = json.loads(stem.with_suffix(".json").read_text())
    if header.get("format") != CACHE_FORMAT:
        raise ValueError(f"{stem}.json is not a {CACHE_FORMAT} cache (format={header.get('format')!r})")
    arr = load_file(str(stem.with_suffix(".safetensors")))
    names = list(class_names or header["class_names"])
    tx, ax, at, se = (arr["text_x"].astype(np.float32), arr["audio_x"].astype(np.float32), arr["audio_t"],
                      arr["sentence"].astype(np.float32))
    items: list[UtteranceFeatures] = []
    ti = ai = 0
    for i, row in enumerate(header["utterances"]):
        text = audio = None
        if row["n_text"]:
            n = row["n_text"]
            x = tx[ti:ti + n]
            text = ModalityFeatures(x, ((np.arange(n, dtype=np.float32) + 0.5) / n).astype(np.float32))
            ti += n
        if row["n_audio"]:
            n = row["n_audio"]
            audio = ModalityFeatures(ax[ai:ai + n], at[ai:ai + n].astype(np.float32))
            ai += n
        if row["label"] not in names:
            raise ValueError(f"label '{row['label']}' of {row['utterance_id']} is not in class_names {names}")
        items.append(UtteranceFeatures(
            text=text, audio=audio, visual=None, sentence=se[i] if row.get("has_sentence") else None,
            label=names.index(row["label"]), dialogue_id=str(row["dialogue_id"]),
            utterance_index=int(row["utterance_index"]),
            meta={"utterance_id": row["utterance_id"], "speaker": row["speaker"], "text": row["text"],
                  "label_name": row["label"], "audio_s": row.get("audio_s", 0.0)}))
    dims = {m: int(header["dims"].get(m, 0)) for m in MODALITIES}
    return CachedSplit(items, dims, names, header)


def find_cache(out_dir: str | os.PathLike[str], dataset: str, split: str) -> list[Path]:
    """Complete caches of a split in ``out_dir`` (newest first)."""
    found = [p for p in Path(out_dir).glob(f"{dataset}_{Path(split).stem}_*.safetensors")
             if p.with_suffix(".json").exists()]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


# ------------------------------------------------------------------ CLI
def main(args: argparse.Namespace) -> int:
    """``synctva cache DATASET SPLIT [--data-dir D] [--out DIR] [--limit N] [--profile P] [--set k=v]``."""
    from synctva_ros.config import load_config

    cfg = load_config(getattr(args, "profile", "demo"), getattr(args, "overrides", None) or None)
    path = build_cache(args.dataset, args.split, cfg.features, args.out, limit=args.limit,
                       workers=int(getattr(args, "workers", 1) or 1), data_dir=args.data_dir)
    print(path)
    return 0


if __name__ == "__main__":  # pragma: no cover
    import sys

    ap = argparse.ArgumentParser(description="build a feature cache")
    ap.add_argument("dataset", choices=("meld", "iemocap"))
    ap.add_argument("split")
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("cache"))
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(name)s: %(message)s")
    sys.exit(main(ap.parse_args()))
