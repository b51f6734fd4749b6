"""Scoring a list of per-utterance predictions (used by ``synctva demo`` and ``synctva evaluate``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from synctva_ros.evaluation.metrics import classification_metrics, latency_stats
from synctva_ros.evaluation.report import format_table, make_report, write_report

__all__ = ["summarise_predictions", "modality_accuracies", "MODALITY_FIELDS"]


def summarise_predictions(rows: Sequence[Mapping[str, Any]], class_names: Sequence[str] | None = None,
                          out_dir: str | Path | None = None, title: str = "", stem: str = "report",
                          verbose: bool = True) -> dict[str, Any]:
    """Accuracy, weighted F1, per-class F1, latency and dropped windows of a prediction list.

    Args:
        rows: one mapping per ground-truth utterance with ``truth`` (class name),
            ``pred`` (class name, or ``None`` when no prediction arrived = dropped window)
            and ``latency_s`` (seconds from window close to result, or ``None``).
        class_names: class order (default: the order they first appear in ``truth``/``pred``).
        out_dir: when given, writes ``{stem}.json``, ``{stem}.txt`` and ``{stem}_confusion.png`` there.
        title: report title.
        verbose: print the table and summary line.

    Returns:
        The report dict (:func:`~synctva_ros.evaluation.report.make_report`) with extra keys
        ``utterances``, ``predicted``, ``dropped_windows`` and ``rows``.

    Raises:
        ValueError: no row has both a truth and a prediction.
    """
    names = list(class_names or [])
    for r in rows:
        for k in ("truth", "pred"):
            if r.get(k) is not None and r[k] not in names:
                names.append(r[k])
    scored = [r for r in rows if r.get("pred") is not None and r.get("truth") is not None]
    if not scored:
        raise ValueError("no utterance has both a ground-truth label and a prediction")
    metrics = classification_metrics([names.index(r["truth"]) for r in scored],
                                      [names.index(r["pred"]) for r in scored], names)
    lat = latency_stats([r["latency_s"] for r in scored if r.get("latency_s") is not None])
    dropped = sum(1 for r in rows if r.get("pred") is None)
    report = make_report(metrics, name=title, latency=lat,
                         extra={"utterances": len(rows), "predicted": len(scored), "dropped_windows": dropped,
                                "rows": [dict(r) for r in rows]})
    if out_dir is not None:
        paths = write_report(report, out_dir, stem=stem, class_names=names)
        report["files"] = {k: str(v) for k, v in paths.items()}
    if verbose:
        print(format_table(metrics, title=title))
        p50, p95 = lat.get("p50"), lat.get("p95")
        lat_txt = f"latency p50 {1000 * p50:.1f} ms, p95 {1000 * p95:.1f} ms" if p50 is not None else "latency n/a"
        print(f"SUMMARY: {len(scored)}/{len(rows)} utterances, accuracy {100 * metrics['accuracy']:.1f}%, "
              f"weighted F1 {100 * metrics['weighted_f1']:.1f}%, {lat_txt}, dropped windows {dropped}")
        if out_dir is not None and "png" in report.get("files", {}):
            print(f"confusion matrix: {report['files']['png']}")
    return report


#: EmotionState fields of each modality's own distribution (keys of a row's ``modality_probabilities``).
MODALITY_FIELDS = {"text": "text_probabilities", "audio": "audio_probabilities", "visual": "visual_probabilities"}


def modality_accuracies(rows: Sequence[Mapping[str, Any]], class_names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Accuracy of each modality's own distribution (arg-max against the truth) and of the fused one.

    Returns:
        ``{"text" | "audio" | "visual" | "fused": {"correct", "n", "accuracy"}}`` over the utterances where that
        distribution exists (``accuracy`` None when ``n`` is 0).
    """
    out = {}
    for m in (*MODALITY_FIELDS, "fused"):
        hits = []
        for r in rows:
            p = (None if r["pred"] is None else r["probabilities"] if m == "fused"
                 else r["modality_probabilities"].get(m))
            if p:
                hits.append(class_names[max(range(len(p)), key=p.__getitem__)] == r["truth"])
        out[m] = {"correct": sum(hits), "n": len(hits), "accuracy": sum(hits) / len(hits) if hits else None}
    return out

