"""FLOPs per stage of a pipeline on one window, for ``synctva bench``'s compute lower bounds (FLOPs / peak).

Counted with ``torch.utils.flop_counter.FlopCounterMode`` on torch, whatever backend serves the stage: matrix
products and convolutions only (element-wise work, resizing and openSMILE's C++ are not counted), so a bound is a
lower bound. Stages: the text stage as the pipeline runs it (:func:`text_stage_flops`), the visual trunk, the face
stage (:func:`face_stage_flops`: the face networks run in torch) and the network at close.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode

from synctva_ros.backends.text_top_serving import TorchTextTop, apply_text_top
from synctva_ros.core.batch import collate
from synctva_ros.core.window import UtteranceWindow
from synctva_ros.features.faces.evidence import build_face_evidence
from synctva_ros.streaming.text_prefetch import text_job

__all__ = ["stage_flops", "text_stage_flops", "face_stage_flops"]


def stage_flops(pipe: Any, window: UtteranceWindow, context: Sequence[UtteranceWindow] = ()) -> dict[str, Any]:
    """FLOPs of each stage of ``pipe`` on ``window`` (``torch.utils.flop_counter.FlopCounterMode``).

    Args:
        pipe: the pipeline.
        window: the window counted.
        context: the windows before it in its dialogue: the text stage reads their transcripts as context, as it
            did for the timed windows (the pipeline's dialogue context is reset before and after).

    Returns:
        ``text`` (:func:`text_stage_flops`) and ``visual`` (``flops`` for all sampled ``frames``) when those branches
        are active, ``audio`` (``flops: None``: openSMILE is C++) and ``fusion`` (``flops`` of the network stage as
        the pipeline runs it: ``model.forward_subsets`` on the collated window for the subsets of
        ``EmotionPipeline.subsets``, ``subsets`` of them); ``face`` (:func:`face_stage_flops`) when the pipeline
        has a face stage.
    """
    out: dict[str, Any] = {}
    feats, _ = pipe.extract(window)
    if pipe.extractors.get("text") is not None and pipe.active.get("text"):
        out["text"] = text_stage_flops(pipe, window, context)
    vis = pipe.extractors.get("visual")
    if vis is not None and pipe.active.get("visual") and feats.visual is not None:
        x = torch.zeros(1, 3, vis.image_size, vis.image_size, device=vis.device)
        with FlopCounterMode(display=False) as fc, torch.inference_mode():
            vis.model(x)
        n = int(feats.visual.x.shape[0])
        out["visual"] = {"flops": int(fc.get_total_flops()) * n, "frames": n}
    out["audio"] = {"flops": None, "note": "openSMILE (C++): not counted"}
    face = face_stage_flops(pipe, window)
    if face is not None:
        out["face"] = face
    batch = collate([feats], pipe.dims, context_turns=pipe.context_turns,
                    contexts=[[]] if pipe.context_turns else None)
    keep, _ = pipe.subsets(feats)
    dev = next(pipe.model.parameters()).device
    b = batch.to(dev)
    with FlopCounterMode(display=False) as fc, torch.inference_mode():
        pipe.model.forward_subsets(torch.as_tensor(keep, device=dev), b.text, b.text_mask, b.text_time, b.audio,
                                   b.audio_mask, b.audio_time, b.visual, b.visual_mask, b.visual_time, b.context,
                                   b.context_mask, b.text_prefix, b.text_prefix_mask)
    out["fusion"] = {"flops": int(fc.get_total_flops()), "subsets": int(len(keep))}
    return out


def text_stage_flops(pipe: Any, window: UtteranceWindow, context: Sequence[UtteranceWindow] = ()) -> dict[str, Any]:
    """FLOPs of the text stage as the pipeline runs it on ``window`` after ``context`` (its encoder on the
    ``context | utterance`` sequence, then the fine-tuned layers split off the network, ``features.split_text_top``),
    counted on torch whatever serves it.

    Args:
        pipe: the :class:`~synctva_ros.pipeline.EmotionPipeline` (its dialogue context is reset before and after; its
            extractor's served encoder is set aside for the count and put back).
        window: the window counted.
        context: the windows before it in its dialogue, oldest first.

    Returns:
        ``{"flops", "tokens" (word pieces of utterance and context the layers read, special tokens not counted),
        "context_turns"[, "top_flops" (the split-off layers' share of ``flops``)]}``.
    """
    text = pipe.extractors["text"]
    pipe.reset_dialogue()
    for w in context:
        pipe.dialogue.add_window(w, None)
    served = getattr(text, "runner", None)
    if served is not None:
        text.runner = None  # torch, so that the counter sees the operations
    try:
        turns = pipe.dialogue.turns(window.dialogue_id)
        _, job = text_job(text, window, turns, pipe.context_turns > 0)
        with FlopCounterMode(display=False) as fc, torch.inference_mode():
            raw, _ = job()
        k = int(getattr(text, "context_turns", 0) or 0)
        out: dict[str, Any] = {"flops": int(fc.get_total_flops()), "context_turns": min(k, len(turns)), "tokens": 0}
        if raw is not None:
            out["tokens"] = int(raw.x.shape[0] + (0 if raw.prefix is None else raw.prefix.shape[0]))
        top = getattr(pipe, "text_top", None)
        if top is not None and raw is not None:
            with FlopCounterMode(display=False) as fc:
                apply_text_top(raw, TorchTextTop(top, str(next(top.parameters()).device)))
            out["top_flops"] = int(fc.get_total_flops())
            out["flops"] += out["top_flops"]
    finally:
        if served is not None:
            text.runner = served
        pipe.reset_dialogue()
    return out


def face_stage_flops(pipe: Any, window: UtteranceWindow) -> dict[str, Any] | None:
    """FLOPs of the face stage on ``window`` (``EmotionPipeline.faces``: detection, tracking and the expression
    networks on the frames it samples), counted on a copy of the stage built with the same settings and
    ``runtime="torch"`` (the configured one exports the same networks to onnxruntime).

    Returns:
        ``{"flops", "frames" (frames of the window)}``, or ``None`` when the pipeline has no face stage (or the copy
        finds no face weights). Raises ``ValueError`` for face settings out of range
        (:func:`~synctva_ros.features.faces.evidence.build_face_evidence`).
    """
    if getattr(pipe, "faces", None) is None:
        return None
    f = pipe.cfg.features
    stage = build_face_evidence(f.face_expert, f.face_fps, f.face_policy, detect_every=f.face_detect_every,
                                min_face_frac=f.face_min_size, runtime="torch")
    if stage is None:
        return None
    with FlopCounterMode(display=False) as fc, torch.inference_mode():
        stage(window)
    return {"flops": int(fc.get_total_flops()), "frames": len(window.frames)}
