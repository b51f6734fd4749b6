"""Checkpoints and weight loading: the one place model weights come from.

* :mod:`.io`: a checkpoint directory, ``model.safetensors`` (weights) + ``manifest.json`` (what
  the weights mean, which extractors they were trained with); save, load, read the manifest.
* :mod:`.integrity`: the sha256 record of the weights and the manifest written at save and verified
  at load.
* :mod:`.text_top_base`: the base text encoder's pretrained top layers, read from a Hugging Face
  encoder, for fine-tuning inside the model (:class:`~synctva_ros.model.text_top.TextTopLayers`).
* :mod:`.text_top_deltas`: checkpoints of those fine-tuned layers as deltas to the base encoder,
  and their restoring.

The model package (:mod:`synctva_ros.model`) only defines layers; it never reads weights.
"""

from __future__ import annotations

from synctva_ros.checkpoint.io import (EXTRA_PREFIX, FORMAT, MANIFEST_FILE, WEIGHTS_FILE, CheckpointError,
                                       load_checkpoint, read_manifest, record_integrity, save_checkpoint)
from synctva_ros.checkpoint.text_top_base import (CALIBRATION_TEXTS, build_text_top, load_base_layers,
                                                  special_token_states)
from synctva_ros.checkpoint.text_top_deltas import (MANIFEST_KEY, load_text_top_checkpoint, restore_text_top,
                                                    save_text_top_checkpoint, text_top_deltas)

__all__ = ["FORMAT", "WEIGHTS_FILE", "MANIFEST_FILE", "EXTRA_PREFIX", "CheckpointError", "save_checkpoint",
           "load_checkpoint", "read_manifest", "record_integrity", "CALIBRATION_TEXTS", "load_base_layers",
           "special_token_states",
           "build_text_top", "MANIFEST_KEY", "text_top_deltas", "save_text_top_checkpoint", "restore_text_top",
           "load_text_top_checkpoint"]
