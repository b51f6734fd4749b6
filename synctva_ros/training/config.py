"""Training configuration: a ``training:`` section plus the usual model/features sections.

A training YAML file looks like::

    training:
      name: meld_minilm
      dataset: meld
      train_split: train
      valid_split: dev
      cache_dir: cache
      out_dir: models/meld_minilm
      epochs: 30
    profile: demo          # features/model defaults come from this profile
    model:                 # optional overrides of ModelConfig
      hidden: 128

Overrides use the same ``key=value`` form as the rest of the project:
``training.epochs=5``, ``model.hidden=64``, ``features.audio_max_nodes=16``.

Errors: :class:`~synctva_ros.config.ConfigError` for unknown keys / bad values.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from synctva_ros.config import ConfigError, SyncTVAConfig, _coerce, load_config, parse_overrides

__all__ = ["TrainingConfig", "load_training_config"]


@dataclass
class TrainingConfig:
    """How a Sync-TVA checkpoint is trained (see :func:`synctva_ros.training.train.train`).

    Attributes:
        name: checkpoint name (manifest ``name``).
        dataset: ``meld`` or ``iemocap``.
        train_split, valid_split: split names (MELD: train/dev; IEMOCAP: train/valid).
        data_dir: dataset root ('' = ``$SYNCTVA_DATA`` or /work/shared/data).
        cache_dir: feature-cache directory (built on demand when ``build_cache`` is true).
        out_dir: checkpoint directory written at the end (and at each improvement).
        build_cache: build missing caches (slow: speech rendering + encoders) instead of failing.
        limit, valid_limit: first N utterances of each split (0 = all).
        epochs: most epochs; patience: epochs without weighted-F1 improvement before stopping.
        lr, weight_decay: AdamW settings; grad_clip: max gradient norm (0 = off).
        batch_size: utterances per step; eval_batch_size: for validation.
        seed: seeds python, numpy and torch; shuffling is derived from ``seed * 100003 + epoch``.
        modalities: branches trained (absent or uncached ones are inactive).
        device: torch device.
        num_threads: torch CPU threads (0 = library default).
        progress: tqdm progress bars.
    """

    name: str = "synctva"
    dataset: str = "meld"
    train_split: str = "train"
    valid_split: str = "dev"
    data_dir: str = ""
    cache_dir: str = "cache"
    out_dir: str = "out/train/synctva"
    build_cache: bool = False
    limit: int = 0
    valid_limit: int = 0
    epochs: int = 30
    patience: int = 6
    lr: float = 1e-3
    weight_decay: float = 1e-2
    grad_clip: float = 1.0
    batch_size: int = 32
    eval_batch_size: int = 128
    seed: int = 0
    modalities: list = field(default_factory=lambda: ["text", "audio", "visual"])
    device: str = "cpu"
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
        for k in ("patience", "limit", "valid_limit", "num_threads"):
            if getattr(self, k) < 0:
                raise ConfigError(f"'training.{k}' must be >= 0")
        if not self.lr > 0 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ConfigError("'training.lr' must be > 0, weight_decay and grad_clip >= 0")
        bad = set(self.modalities) - {"text", "audio", "visual"}
        if bad:
            raise ConfigError(f"'training.modalities' has unknown modalities {sorted(bad)}")
        return self

    def set(self, key: str, value: Any) -> None:
        """Set one field by name with the project's type coercion.

        Raises:
            ConfigError: unknown key or wrong type.
        """
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
