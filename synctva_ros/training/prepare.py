"""What a training run needs before its first step: the splits, the datasets and the model.

:func:`prepare_data` reads the training split's cache, cuts the validation split from its dialogues
(:func:`~synctva_ros.training.split.split_by_dialogue`) and reads the report split's cache (the
dataset's own dev/valid split, scored once at the end). :func:`build_model` makes the
:class:`~synctva_ros.model.synctva.SyncTVA` and, with ``model.text_top_layers = K > 0``, attaches the
text encoder's pretrained top K layers (:func:`~synctva_ros.checkpoint.text_top_base.build_text_top`),
which then train with their own learning rate (``training.encoder_lr``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from synctva_ros.checkpoint import build_text_top, load_base_layers
from synctva_ros.checkpoint.text_top_lora import add_lora
from synctva_ros.config import SyncTVAConfig
from synctva_ros.core.modalities import MODALITIES
from synctva_ros.datasets.cache import CachedSplit
from synctva_ros.features.text import TextEncoder
from synctva_ros.model.synctva import SyncTVA
from synctva_ros.training.caches import load_split_cache
from synctva_ros.training.config import TrainingConfig
from synctva_ros.training.data import UtteranceDataset, class_counts
from synctva_ros.training.split import split_by_dialogue

__all__ = ["TrainingData", "prepare_data", "build_model", "CALIBRATION_TEXT_COUNT"]

_VISUAL_DIMS = {"resnet18": 512, "resnet34": 512}
#: Training transcripts used to calibrate the special-token states of the top layers.
CALIBRATION_TEXT_COUNT = 512


@dataclass
class TrainingData:
    """The data side of a run.

    Attributes:
        train_cache, report_cache: the caches read (``report_cache`` ``None`` without a report split).
        names: class names (the model's output order).
        identities: extractor identities of the training cache (the checkpoint's ``extractors``).
        active: ``{modality: bool}`` branches that train.
        dims: input width per modality (inactive ones 1, visual from the configured encoder).
        train_ds, valid_ds, report_ds: datasets of the training part, the validation part and the
            report split (``None`` without one).
        counts: training-part examples per class (``len(names)``).
        split: the validation split's record (:func:`~synctva_ros.training.split.split_by_dialogue`).
    """

    train_cache: CachedSplit
    report_cache: CachedSplit | None
    names: list[str]
    identities: dict[str, Any]
    active: dict[str, bool]
    dims: dict[str, int]
    train_ds: UtteranceDataset
    valid_ds: UtteranceDataset
    report_ds: UtteranceDataset | None
    counts: list[int]
    split: dict[str, Any] = field(default_factory=dict)


def _model_dims(cache_dims: dict[str, int], cfg: SyncTVAConfig) -> dict[str, int]:
    dims = dict(cache_dims)
    if not dims.get("visual"):
        dims["visual"] = _VISUAL_DIMS.get(cfg.features.visual_encoder, 2048)
    for m in MODALITIES:
        if not dims.get(m):
            dims[m] = 1
    return dims


def prepare_data(tcfg: TrainingConfig, cfg: SyncTVAConfig) -> TrainingData:
    """Caches, validation split, class names, extractor identities, active branches, dims and datasets.

    Args:
        tcfg: the run (splits, ``valid_fraction``, ``split_seed``, ``valid_dialogues``, limits, modalities).
        cfg: features and model configuration.

    Returns:
        :class:`TrainingData`.

    Raises:
        FileNotFoundError: missing cache. ValueError: cache classes differ from
        ``cfg.model.class_names``, no modality is active, or the training split has fewer than two
        dialogues.
    """
    train_c = load_split_cache(tcfg, cfg, tcfg.train_split, tcfg.limit)
    report_c = load_split_cache(tcfg, cfg, tcfg.report_split, tcfg.report_limit) if tcfg.report_split else None
    names = list(cfg.model.class_names)
    if train_c.header.get("class_names") and set(train_c.header["class_names"]) != set(names):
        raise ValueError(f"cache classes {train_c.header['class_names']} != model.class_names {names}")
    identities = train_c.identities
    active = {m: (m in tcfg.modalities and bool(train_c.dims.get(m)) and identities.get(m) is not None)
              for m in MODALITIES}
    if not any(active.values()):
        raise ValueError("no modality is active (check training.modalities and the cache)")
    dims = _model_dims(train_c.dims, cfg)
    k = cfg.model.context_turns
    train_items, valid_items, split = split_by_dialogue(train_c.items, tcfg.valid_fraction, tcfg.split_seed,
                                                        tcfg.valid_dialogues)
    report_ds = UtteranceDataset(report_c.items, dims, k, active) if report_c is not None else None
    return TrainingData(train_c, report_c, names, identities, active, dims,
                        UtteranceDataset(train_items, dims, k, active), UtteranceDataset(valid_items, dims, k, active),
                        report_ds, class_counts(train_items, len(names)), split)


def build_model(cfg: SyncTVAConfig, data: TrainingData, device: torch.device, lora_rank: int = 0,
                lora_alpha: float = 0.0) -> tuple[SyncTVA, list[torch.nn.Parameter], dict[str, torch.Tensor] | None]:
    """The model, its fine-tuned top-layer parameters and the pretrained weights of those layers.

    With ``cfg.model.text_top_layers = K > 0`` and an active text branch, the base encoder
    (``features.text_encoder``) is loaded once to read layers ``l .. l+K-1`` and calibrate their
    special-token states on up to :data:`CALIBRATION_TEXT_COUNT` training transcripts; its
    pretrained layer weights are returned so that saving needs no second read.

    Args:
        cfg: features and model configuration.
        data: what :func:`prepare_data` returned.
        device: where the model goes.
        lora_rank, lora_alpha: ``training.lora_rank`` > 0: LoRA factors on the top layers
            (:func:`~synctva_ros.checkpoint.text_top_lora.add_lora`); the trained parameters are then the factors
            and the special-token states.

    Returns:
        ``(model on device, top-layer parameters (empty when K = 0), {"encoder.layer.{i}...": Tensor} or None)``.

    Raises:
        ValueError: ``features.text_layer + K`` exceeds the encoder's depth. KeyError: the encoder is
        not BERT-style.
    """
    model = SyncTVA(cfg.model, data.dims, data.active)
    top_params: list[torch.nn.Parameter] = []
    base_state = None
    if cfg.model.text_top_layers and data.active["text"]:
        f = cfg.features
        enc = TextEncoder(f.text_encoder, max_tokens=f.text_max_tokens, layer=f.text_layer)
        texts = [u.meta.get("text", "") for u in data.train_ds.items[:CALIBRATION_TEXT_COUNT]]
        model.attach_text_top(build_text_top(enc, f.text_layer, cfg.model.text_top_layers, name=f.text_encoder,
                                             texts=texts, context_keys=f.text_context_states))
        _, _, base_state = load_base_layers(enc, f.text_layer, cfg.model.text_top_layers, f.text_encoder)
        if lora_rank > 0:
            add_lora(model.text_top, lora_rank, lora_alpha)
        top_params = [p for p in model.text_top.parameters() if p.requires_grad]
        del enc
    return model.to(device), top_params, base_state
