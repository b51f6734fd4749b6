"""``synctva evaluate``: score a checkpoint offline, deterministically, with no ROS.

DATA may be
- a rosbag2 written by ``synctva make-bag`` (or recorded on a robot with a
  ``/ground_truth/emotion`` topic): windowed by the same
  :class:`~synctva_ros.windowing.windower.UtteranceWindower` the node uses
  (:func:`~synctva_ros.bags.reader.iter_windows_from_bag`), with the pipeline's
  streaming feature cache fed as the node feeds it, so the predictions equal the
  node's on a replay of the same bag;
- a MELD CSV or an IEMOCAP JSONL: each utterance becomes a window holding its
  transcript and its espeak-ng rendering (the audio the shipped checkpoints were
  trained on; no visual data exists for these files here).

Per-utterance latency offline is the pipeline's processing time (feature
extraction + fusion) of that window, in seconds.

Dialogue context (``features.text_context_turns``, a checkpoint's ``context_turns``): every window is
predicted by :meth:`~synctva_ros.pipeline.EmotionPipeline.predict`, which keeps the context per session
from the windows it predicted, as in the node: a MELD/IEMOCAP window carries its ``dialogue_id`` and its
speaker (``speaker_id``), so the turns are the file's previous utterances of the same dialogue (files
are in dialogue order); a bag's windows carry what the transcripts say, and a time reset of the
windower starts a new session in the windows after it (``UtteranceWindow.session``), at which the
pipeline resets the context, as in the node.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import numpy as np
from tqdm import tqdm

from synctva_ros.bags.reader import ground_truth_from_bag, is_bag, iter_windows_from_bag, match_label, match_truth
from synctva_ros.config import SyncTVAConfig
from synctva_ros.core.window import UtteranceWindow
from synctva_ros.datasets.rendering import render_utterance
from synctva_ros.datasets.splits import load_utterances
from synctva_ros.evaluation.stream import stream_windows
from synctva_ros.evaluation.summary import summarise_predictions
from synctva_ros.pipeline import EmotionPipeline
from synctva_ros.windowing.windower import UtteranceWindower

__all__ = ["evaluate", "dataset_windows", "bag_windows", "is_bag"]

log = logging.getLogger(__name__)


class _Span(NamedTuple):
    """A predicted row's window bounds (seconds) for :func:`match_truth`; it has no utterance id."""

    start: float
    end: float
    utterance_id: str = ""


def dataset_windows(path: Path, sample_rate: int = 16000,
                    limit: int | None = None) -> Iterator[tuple[UtteranceWindow, str]]:
    """Windows of a MELD CSV (``.csv``) or IEMOCAP JSONL (``.jsonl``) with their labels.

    Each window spans the rendered speech (:func:`~synctva_ros.datasets.rendering.render_utterance`):
    ``[0, len(audio) / sample_rate]`` seconds.

    Args:
        path: the ``.csv`` / ``.jsonl`` file.
        sample_rate: audio rate in Hz.
        limit: first N utterances only (``None`` or 0: all).

    Returns:
        ``(window, label name)`` per utterance, in file order.

    Raises:
        ValueError: unknown file type. FileNotFoundError: missing file.
        RuntimeError: espeak-ng is missing.
    """
    dataset = {".csv": "meld", ".jsonl": "iemocap"}.get(path.suffix)
    if dataset is None:
        raise ValueError(f"{path}: expected a bag, a MELD .csv or an IEMOCAP .jsonl")
    utts = load_utterances(dataset, str(path))
    for u in utts[:limit] if limit else utts:
        audio, sr = render_utterance(u, sample_rate)
        win = UtteranceWindow(start=0.0, end=len(audio) / sr, transcript=u.text, audio=audio, sample_rate=sr,
                              utterance_id=u.utterance_id, dialogue_id=u.dialogue_id, speaker_id=u.speaker,
                              closed_by="transcript")
        yield win, u.label


def bag_windows(bag: Path, cfg: SyncTVAConfig, pipe: EmotionPipeline
                ) -> tuple[Iterator[tuple[UtteranceWindow, str | None]], list[Any]]:
    """The windows of a bag with their ground-truth labels, windowed as the node windows them.

    The pipeline's streaming cache sees the bag's audio and frames as they come, and each window is meant
    to be predicted as soon as it is emitted (in the caller's thread: deterministic); a time reset of the
    windower starts a new session in the windows after it, and the pipeline then forgets the dialogue
    context, as in the node.

    Args:
        bag: a rosbag2 directory or file (:func:`is_bag`).
        cfg: the windowing, topics and audio rate.
        pipe: the pipeline whose streaming cache is fed.

    Returns:
        ``(pairs, truth)``: a generator of ``(window, label or None)`` and the bag's ground truth
        (:func:`~synctva_ros.bags.reader.ground_truth_from_bag`).
    """
    truth = ground_truth_from_bag(bag)
    by_id = {g.utterance_id: g for g in truth if g.utterance_id}
    windower = UtteranceWindower(cfg.windowing, sample_rate=cfg.features.audio_sample_rate, sink=pipe.streaming)
    windows = iter_windows_from_bag(bag, sample_rate=cfg.features.audio_sample_rate, topics=cfg.topics,
                                    windower=windower)
    return ((w, match_label(w, truth, by_id)) for w in windows), truth


def evaluate(data: Path, cfg: SyncTVAConfig, out_dir: Path | None = None, limit: int | None = None,
             verbose: bool = True, stream: bool = False) -> dict[str, Any]:
    """Run the pipeline of ``cfg`` on every utterance of ``data`` and score it.

    Args:
        data: bag, MELD CSV or IEMOCAP JSONL (see module docstring).
        cfg: configuration (checkpoint in ``cfg.runtime.checkpoint``).
        out_dir: where to write ``report.json``, ``report.txt`` and ``report_confusion.png``.
        limit: first N utterances only.
        verbose: print the per-class table and the summary line.
        stream: MELD CSV / IEMOCAP JSONL only: play the utterances as one continuous microphone
            stream through the windower and the streaming cache (:mod:`synctva_ros.evaluation.stream`),
            as the node would hear them, and also run the batch extractors on every window: the report
            gets ``streaming_vs_batch`` (label agreement, probability differences, both scores).

    Returns:
        The report: accuracy, weighted F1, per-class F1, confusion matrix, latency percentiles
        (seconds), dropped windows, and one row per utterance (``rows``).

    Raises:
        FileNotFoundError, ValueError: bad ``data``; CheckpointError: bad checkpoint.
    """
    pipe = EmotionPipeline(cfg)
    bag = is_bag(data)
    if bag:
        pairs, truth = bag_windows(data, cfg, pipe)
        total = len(truth) or None
    else:
        pairs = dataset_windows(data, cfg.features.audio_sample_rate, limit)
        truth, total = None, None
    batch = None
    if stream and not bag:
        pairs = stream_windows(pairs, cfg.windowing, cfg.features.audio_sample_rate, pipe.streaming)
        batch_cfg = copy.deepcopy(cfg)
        batch_cfg.features.streaming = False
        batch = EmotionPipeline(batch_cfg)
    try:
        rows, batch_rows, seen = _predict_all(pipe, batch, pairs, total, limit, verbose)
    finally:  # ends the streaming cache's live openSMILE runs
        pipe.close()
        if batch is not None:
            batch.close()
    if truth is not None and not limit:
        by_id = {t.utterance_id: t for t in truth if t.utterance_id}
        for r in rows:  # a window without an utterance id (LiveSpeech) covers the utterance it overlaps most
            g = None if r["utterance_id"] else match_truth(_Span(r["start"], r["end"]), truth, by_id)
            seen.update([g.utterance_id] if g is not None else [])
        for t in truth:  # ground-truth utterances that produced no window count as dropped
            if t.utterance_id not in seen:
                rows.append({"utterance_id": t.utterance_id, "truth": t.label, "pred": None, "latency_s": None,
                             "start": t.start, "end": t.end})
    report = summarise_predictions(rows, class_names=pipe.class_names, out_dir=out_dir,
                                   title=f"{pipe.name} on {data.name} ({pipe.backend_name})", verbose=verbose)
    report["model"] = pipe.describe()
    if batch is not None:
        report["streaming_vs_batch"] = _agreement(rows, batch_rows, pipe, verbose)
    return report


def _predict_all(pipe: Any, batch: Any, pairs: Any, total: int | None, limit: int | None,
                 verbose: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]], set[str]]:
    """Predict every window of ``pairs`` (and with ``batch`` too, when given)."""
    rows: list[dict[str, Any]] = []
    batch_rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, (window, label) in enumerate(tqdm(pairs, total=total, desc="evaluate", disable=not verbose)):
        if limit and i >= limit:
            break
        res = pipe.predict(window)
        if batch is not None:
            ref = batch.predict(window)
            batch_rows.append({"utterance_id": window.utterance_id, "truth": label, "pred": ref.label,
                               "probabilities": ref.probabilities, "latency_s": sum(ref.stage_s.values()),
                               "dprob": float(np.abs(np.subtract(res.probabilities, ref.probabilities)).max())})
        seen.add(window.utterance_id)
        rows.append({"utterance_id": window.utterance_id, "truth": label, "pred": res.label,
                     "confidence": res.confidence, "probabilities": res.probabilities,
                     "start": window.start, "end": window.end, "transcript": res.transcript,
                     "voice_id": window.speaker_id, "person_id": window.person_id,
                     "modalities": [m for m, p in res.present.items() if p],
                     "active": [m for m, a in res.active.items() if a],
                     "latency_s": sum(res.stage_s.values())})
    return rows, batch_rows, seen


def _agreement(rows: list[dict[str, Any]], batch_rows: list[dict[str, Any]], pipe: Any,
               verbose: bool) -> dict[str, Any]:
    """Streaming vs batch predictions of the same windows (``synctva evaluate --stream``)."""
    ref = summarise_predictions(batch_rows, class_names=pipe.class_names, out_dir=None, title="batch",
                                verbose=False)
    dp = np.array([r["dprob"] for r in batch_rows]) if batch_rows else np.zeros(1)
    agree = float(np.mean([a["pred"] == b["pred"] for a, b in zip(rows, batch_rows)])) if batch_rows else float("nan")
    out = {"windows": len(batch_rows), "audio_mode": getattr(pipe.streaming, "audio_mode", None),
           "label_agreement": agree, "max_abs_dprob": float(dp.max()), "mean_abs_dprob": float(dp.mean()),
           "p95_abs_dprob": float(np.percentile(dp, 95)),
           "batch_accuracy": ref["metrics"].get("accuracy"), "batch_weighted_f1": ref["metrics"].get("weighted_f1"),
           "batch_latency_s": ref.get("latency_s"),
           "streaming": pipe.streaming.describe()["stats"] if pipe.streaming is not None else None}
    if verbose:
        print(f"streaming ({out['audio_mode']}) vs batch on {out['windows']} windows: labels agree "
              f"{100 * agree:.1f} %, max |dp| {out['max_abs_dprob']:.4f} (mean {out['mean_abs_dprob']:.5f}); "
              f"batch wF1 {100 * (out['batch_weighted_f1'] or 0):.1f}")
    return out
