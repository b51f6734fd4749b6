"""Build the configured feature extractors and their identities (for checkpoint manifests)."""

from __future__ import annotations

import logging
from typing import Any, Mapping

from synctva_ros.config import FeaturesConfig
from synctva_ros.features.base import FeatureExtractor
from synctva_ros.core.modalities import MODALITIES

#: ``features.visual_encoder`` values served by the face-expression networks (:mod:`.faces.embedding`).
FACE_ENCODERS = ("face_api", "fer", "fer+face_api")

__all__ = ["build_extractors", "extractor_identities", "build_extractor"]

log = logging.getLogger(__name__)


def build_extractor(modality: str, cfg: FeaturesConfig, device: str = "cpu") -> FeatureExtractor | None:
    """One modality's extractor from ``cfg``.

    Returns ``None`` for the visual modality when no weight file is configured
    (``features.visual_weights`` empty or missing): that branch stays off. A ``features.visual_encoder``
    of :data:`FACE_ENCODERS` (``face_api``, ``fer``, ``fer+face_api``) needs no such file: its nodes are
    face-expression embeddings (:class:`~synctva_ros.features.faces.embedding.FaceEmbeddingVisual`).

    Raises:
        ValueError: unknown modality or invalid setting; OSError: a text model cannot be loaded;
        VisualWeightsUnavailable is never raised (mapped to ``None``); FaceWeightsMissing: a face encoder's
        weights are not installed.
    """
    if modality == "text":
        # deferred: features.text imports torch and transformers, which the other branches do not need
        from synctva_ros.features.text import TextEncoder

        return TextEncoder(cfg.text_encoder, max_tokens=cfg.text_max_tokens, layer=cfg.text_layer, device=device,
                           context_turns=cfg.text_context_turns, context_max_tokens=cfg.text_context_max_tokens,
                           context_states=cfg.text_context_states)
    if modality == "audio":
        # deferred: OpenSmileAudio imports opensmile (1-3 s) when built; keeps torch-only callers lean
        from synctva_ros.features.audio import OpenSmileAudio

        return OpenSmileAudio(cfg.audio_feature_set, sample_rate=cfg.audio_sample_rate,
                              max_nodes=cfg.audio_max_nodes, level=cfg.audio_level)
    if modality == "visual":
        if cfg.visual_encoder in FACE_ENCODERS:
            # deferred: the face networks import torch and cv2 and read their weight files
            from synctva_ros.features.faces.embedding import FaceEmbeddingVisual

            return FaceEmbeddingVisual(cfg.visual_encoder, fps=cfg.visual_fps, max_frames=cfg.max_frames,
                                       policy=cfg.face_policy)
        # deferred: features.visual imports torch (and cv2, torchvision when built)
        from synctva_ros.features.visual import ResNetVisual, visual_weights_available

        if not visual_weights_available(cfg.visual_weights):
            log.info("visual branch off: no weights file (features.visual_weights=%r)", cfg.visual_weights)
            return None
        return ResNetVisual(cfg.visual_encoder, cfg.visual_weights, fps=cfg.visual_fps,
                            max_frames=cfg.max_frames, face_crop=cfg.face_crop, image_size=cfg.image_size,
                            device=device)
    raise ValueError(f"unknown modality '{modality}' (known: {MODALITIES})")


def build_extractors(cfg: FeaturesConfig, modalities: tuple[str, ...] = MODALITIES,
                     device: str = "cpu") -> dict[str, FeatureExtractor | None]:
    """``{modality: extractor or None}`` for every modality in :data:`MODALITIES` order.

    Modalities not in ``modalities`` map to ``None`` (not built). See :func:`build_extractor`.
    """
    return {m: (build_extractor(m, cfg, device) if m in modalities else None) for m in MODALITIES}


def extractor_identities(extractors: Mapping[str, FeatureExtractor | None]) -> dict[str, dict[str, Any] | None]:
    """``{modality: identity dict or None}`` for a checkpoint manifest / cache key."""
    return {m: (extractors[m].identity() if extractors.get(m) is not None else None) for m in MODALITIES}
