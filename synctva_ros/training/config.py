"""Training configuration: a ``training:`` section plus the usual model/features sections.

A training YAML file looks like::

    training:
      name: meld_minilm
      dataset: meld
      train_split: train
      valid_fraction: 0.1    # validation = 10 % of the training dialogues (selection only)
      split_seed: 0
      report_split: dev      # evaluated once with the selected model; never used for a decision
      cache_dir: cache
      out_dir: models/meld_minilm
      epochs: 30
      loss: logit_adjusted   # '' = model.loss
    profile: demo          # features/model defaults come from this profile
    model:                 # optional overrides of ModelConfig
      hidden: 128

Overrides use the same ``key=value`` form as the rest of the project:
``training.epochs=5``, ``model.hidden=64``, ``features.audio_max_nodes=16``.
The old keys ``training.valid_split`` / ``training.valid_limit`` (the dataset's dev split, once
used for early stopping) are read as ``report_split`` / ``report_limit`` with a warning.

Errors: :class:`~synctva_ros.config.ConfigError` for unknown keys / bad values.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from synctva_ros.config import ConfigError, SyncTVAConfig, load_config, parse_overrides
from synctva_ros.config.schema import _coerce
from synctva_ros.datasets.iemocap_release import IEMOCAP_RELEASE_SPLITS

__all__ = ["TrainingConfig", "load_training_config", "SELECT_METRICS", "RENAMED_KEYS"]

log = logging.getLogger(__name__)

#: Metrics model selection may maximise (on the validation split).
SELECT_METRICS = ("weighted_f1", "macro_f1", "accuracy")
#: Old key -> new key (read with a warning).
RENAMED_KEYS = {"valid_split": "report_split", "valid_limit": "report_limit"}
_LOSSES = ("", "ce", "weighted_ce", "focal", "logit_adjusted")  # synctva_ros.model.losses.LOSSES + '' (= model.loss)


@dataclass
class TrainingConfig:
    """How a Sync-TVA checkpoint is trained (see :func:`synctva_ros.training.train.train`).

    Attributes:
        name: checkpoint name (manifest ``name``).
        dataset: ``meld`` or ``iemocap``.
        train_split: split the model learns from; its validation part is cut from it.
        valid_fraction: share of the training split's **dialogues** held out as the validation
            split (early stopping and the best epoch are chosen on it), in (0, 0.5].
        split_seed: seed of that dialogue draw (the split is a function of the dialogue ids and
            this seed only, not of ``seed``).
        valid_dialogues: shell-style pattern over dialogue ids that names the validation split instead of
            the draw ('' = the draw): ``Ses04*`` holds out IEMOCAP session 4 (unseen speakers).
        report_split: the dataset's own dev/valid split (MELD ``dev``, IEMOCAP ``valid``): scored once
            with the selected model and written as ``report``; '' = none.
        report_each_epoch: also score the report split after every epoch (history only; never used
            for a decision).
        data_dir: dataset root ('' = ``$SYNCTVA_DATA`` or /work/shared/data).
        cache_dir: feature-cache directory (built on demand when ``build_cache`` is true).
        out_dir: checkpoint directory written at the end (and at each improvement).
        build_cache: build missing caches (slow: speech rendering + encoders) instead of failing.
        raw_dir: recordings: a MELD.Raw folder (``{split}_sent_emo.csv`` + ``train_splits/`` ...,
            :mod:`synctva_ros.datasets.meld_raw`) or, with ``dataset: iemocap``, an IEMOCAP release folder
            (``Session{n}/``, :mod:`synctva_ros.datasets.iemocap_release`; splits ``train`` = sessions 1-4,
            ``test`` = session 5, ``all``, ``session1`` .. ``session5``): the caches are those built from
            its recordings (audio, and frames for the visual branch) instead of rendered transcripts
            ('' = transcripts).
        feature_pickle: a literature feature pickle (MMGCN/M3Net, SDT, GraphSmile layouts) read instead of the
            caches; ``train_split``/``report_split`` then name its dialogue lists (``train``, ``test``, ``all``)
            (:mod:`synctva_ros.training.pickle_source`). pickle_layout: its layout ('' = detected);
            pickle_text_field: ``text`` .. ``text4`` (the 4-layer layouts' RoBERTa layers).
        limit, report_limit: first N utterances of the training / report split (0 = all).
        epochs: most epochs; patience: epochs without improvement of ``select_metric`` before stopping.
        select_metric: validation metric that picks the epoch (``weighted_f1``, ``macro_f1``, ``accuracy``).
        lr, weight_decay: AdamW settings; grad_clip: max gradient norm (0 = off).
        encoder_lr: AdamW learning rate of the fine-tuned text top layers (``model.text_top_layers > 0``).
        lora_rank: > 0: train LoRA factors of that rank on the text top layers' linear maps instead of the layers
            in full, and store only the factors (:mod:`synctva_ros.checkpoint.text_top_lora`); lora_alpha: LoRA's
            α (0: 2 x rank).
        lr_schedule: ``constant``, or ``linear``: linear warm-up over the first ``warmup_fraction`` of
            all steps (``epochs`` x batches), then linear decay to 0 at the last epoch (the BERT fine-tuning
            recipe, Devlin et al. 2019; ``transformers.get_linear_schedule_with_warmup``), for every group.
        ema_decay: > 0: validate, select and save an exponential moving average of the weights, updated after
            every step with this decay (``torch.optim.swa_utils.get_ema_multi_avg_fn``; Polyak and Juditsky 1992),
            instead of the weights themselves; 0 = off. 0.995 averages over about 200 steps.
        delta_dtype: storage dtype of the text top layers' deltas (``float16`` or ``float32``).
        max_checkpoint_mb: largest checkpoint (weights, MB = 1e6 bytes) that may be saved.
        loss: training loss overriding ``model.loss`` ('' = ``model.loss``): ``ce``, ``weighted_ce``
            (power ``model.class_weight_power``), ``focal`` (``model.focal_gamma``) or ``logit_adjusted``.
        logit_tau: temperature of the logit adjustment (Menon et al. 2021).
        batch_size: utterances per step; eval_batch_size: for evaluation.
        group_by_length: batch training utterances of similar text length (context included) to cut padding
            (:func:`~synctva_ros.training.data.make_loader`); changes the batches' make-up, so a recipe's figures
            move within seed noise; off by default.
        seed: seeds python, numpy and torch; shuffling is derived from ``seed * 100003 + epoch``.
        modalities: branches trained (absent or uncached ones are inactive).
        device: torch device (``cpu``, ``cuda``, ``cuda:N``) of training and of the encoders that build caches.
        precision: ``fp32``, ``bf16`` (autocast, CPU or CUDA) or ``fp16`` (autocast + loss scaling, CUDA only);
            :mod:`synctva_ros.training.precision`.
        num_threads: torch CPU threads (0 = library default).
        progress: tqdm progress bars.
    """

    name: str = "synctva"
    dataset: str = "meld"
    train_split: str = "train"
    valid_fraction: float = 0.1
    split_seed: int = 0
    valid_dialogues: str = ""
    report_split: str = "dev"
    report_each_epoch: bool = False
    data_dir: str = ""
    cache_dir: str = "cache"
    out_dir: str = "out/train/synctva"
    build_cache: bool = False
    raw_dir: str = ""
    feature_pickle: str = ""
    pickle_layout: str = ""
    pickle_text_field: str = "text"
    limit: int = 0
    report_limit: int = 0
    epochs: int = 30
    patience: int = 6
    select_metric: str = "weighted_f1"
    lr: float = 1e-3
    weight_decay: float = 1e-2
    grad_clip: float = 1.0
    encoder_lr: float = 3e-5
    lora_rank: int = 0
    lora_alpha: float = 0.0
    lr_schedule: str = "constant"
    warmup_fraction: float = 0.06
    ema_decay: float = 0.0
    delta_dtype: str = "float16"
    max_checkpoint_mb: float = 30.0
    loss: str = ""
    logit_tau: float = 1.0
    batch_size: int = 32
    eval_batch_size: int = 128
    group_by_length: bool = False
    seed: int = 0
    modalities: list = field(default_factory=lambda: ["text", "audio", "visual"])
    device: str = "cpu"
    precision: str = "fp32"
    num_threads: int = 0
    progress: bool = True

    def validate(self) -> "TrainingConfig":
        """Check ranges; returns self.

        Raises:
            ConfigError: a value out of range or an unknown dataset / modality.
        """
        if self.dataset not in ("meld", "iemocap"):
            raise ConfigError(f"'training.dataset' = {self.dataset!r} is not meld or iemocap")
        for k in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, k) < 1:
                raise ConfigError(f"'training.{k}' must be >= 1")
        for k in ("patience", "limit", "report_limit", "num_threads", "split_seed", "lora_rank", "lora_alpha"):
            if getattr(self, k) < 0:
                raise ConfigError(f"'training.{k}' must be >= 0")
        if not self.lr > 0 or not self.encoder_lr > 0 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ConfigError("'training.lr' and 'training.encoder_lr' must be > 0, weight_decay and grad_clip >= 0")
        if self.lr_schedule not in ("constant", "linear") or not 0.0 <= self.warmup_fraction < 1.0:
            raise ConfigError(f"'training.lr_schedule' = {self.lr_schedule!r} is not constant or linear, or "
                              f"'training.warmup_fraction' = {self.warmup_fraction} is not in [0, 1)")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"'training.ema_decay' = {self.ema_decay} is not in [0, 1)")
        if not 0.0 < self.valid_fraction <= 0.5:
            raise ConfigError(f"'training.valid_fraction' = {self.valid_fraction} is not in (0, 0.5]")
        for k, allowed in (("select_metric", SELECT_METRICS), ("loss", _LOSSES),
                           ("delta_dtype", ("float16", "float32"))):
            if getattr(self, k) not in allowed:
                raise ConfigError(f"'training.{k}' = {getattr(self, k)!r} is not one of {list(allowed)}")
        if self.logit_tau < 0 or not self.max_checkpoint_mb > 0:
            raise ConfigError("'training.logit_tau' must be >= 0 and 'training.max_checkpoint_mb' > 0")
        if self.feature_pickle and (self.raw_dir or self.build_cache):
            raise ConfigError("'training.feature_pickle' replaces the caches: unset training.raw_dir and "
                              "training.build_cache")
        if self.raw_dir and self.dataset == "iemocap":
            # (a folder of labelled bags has one subfolder per split, any names: synctva_ros.bags.recordings)
            bad_splits = [s for s in (self.train_split, self.report_split) if s and s not in IEMOCAP_RELEASE_SPLITS
                          and not (Path(self.raw_dir).expanduser() / s).is_dir()]
            if bad_splits:
                raise ConfigError(f"'training.raw_dir' is an IEMOCAP release: splits {bad_splits} are not among "
                                  f"{list(IEMOCAP_RELEASE_SPLITS)} (train = sessions 1-4, test = session 5)")
        if not re.fullmatch(r"cpu|cuda(:\d+)?", self.device):
            raise ConfigError(f"'training.device' = {self.device!r} is not cpu, cuda or cuda:N")
        if self.precision not in ("fp32", "bf16", "fp16") or (self.precision == "fp16" and self.device == "cpu"):
            raise ConfigError(f"'training.precision' = {self.precision!r} is not fp32, bf16 or fp16 (fp16 needs "
                              f"training.device cuda)")
        bad = set(self.modalities) - {"text", "audio", "visual"}
        if bad:
            raise ConfigError(f"'training.modalities' has unknown modalities {sorted(bad)}")
        return self

    def set(self, key: str, value: Any) -> None:
        """Set one field by name with the project's type coercion.

        Raises:
            ConfigError: unknown key or wrong type.
        """
        if key in RENAMED_KEYS:
            log.warning("'training.%s' is now 'training.%s' (scored once, never used for selection; the "
                        "validation split is cut from the training dialogues, see training.valid_fraction)",
                        key, RENAMED_KEYS[key])
            key = RENAMED_KEYS[key]
        names = {f.name for f in dataclasses.fields(self)}
        if key not in names:
            raise ConfigError(f"unknown configuration key 'training.{key}' (known: {', '.join(sorted(names))})")
        setattr(self, key, _coerce(f"training.{key}", value, type(getattr(self, key))))


def load_training_config(path: str | os.PathLike[str] | None = None,
                         overrides: Mapping[str, Any] | Iterable[str] | None = None
                         ) -> tuple[TrainingConfig, SyncTVAConfig]:
    """Read a training YAML (see module docstring) and apply ``key=value`` overrides.

    Returns:
        ``(TrainingConfig, SyncTVAConfig)``; the second comes from the file's ``profile``
        (default ``demo``) with the file's other sections and the non-``training.`` overrides on top.

    Raises:
        ConfigError: unknown keys / bad values; FileNotFoundError: missing file or profile.
    """
    data: dict[str, Any] = {}
    if path is not None:
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path}: expected a mapping")
    data = dict(data)
    tsec = dict(data.pop("training", {}) or {})
    profile = data.pop("profile", "demo")
    flat: dict[str, Any] = {}
    if overrides:
        items = overrides if isinstance(overrides, Mapping) else parse_overrides(overrides)
        for k, v in items.items():
            if k.startswith("training."):
                tsec[k[len("training."):]] = v
            elif k == "profile":
                profile = v
            else:
                flat[k] = v
    tcfg = TrainingConfig()
    for k, v in tsec.items():
        tcfg.set(k, v)
    cfg = load_config(profile)
    cfg.update(data)
    if flat:
        cfg.update(flat)
    return tcfg.validate(), cfg
