"""The manifest block of a product of calibrated experts (:mod:`synctva_ros.model.experts`).

Stored under the manifest key :data:`FUSION_KEY` (``"expert_fusion"``) of a checkpoint's ``manifest.json``::

    "expert_fusion": {
        "experts": {"text":   {"temperature": 1.31, "weight": 1.0},
                    "visual": {"temperature": 0.87, "weight": 0.6, "fit": {"n": 200, "nll_after": 1.1}}},
        "prior": [0.47, 0.17, 0.12, 0.11, 0.07, 0.03, 0.03],
        "class_map": "face7->meld7"
    }

* ``experts``: one entry per modality name of :data:`~synctva_ros.core.modalities.MODALITIES`, each with
  ``temperature`` (finite, > 0) and ``weight`` (finite, >= 0); optional ``fit`` (a JSON object: how the
  values were fitted, e.g. a :class:`~synctva_ros.model.calibration.TemperatureFit` as a dict), kept as is.
  A modality absent here is not fused.
* ``prior``: the class prior over the checkpoint's classes (its ``class_names`` order), every entry > 0;
  stored normalised.
* ``class_map``: the name of a built-in map (:data:`~synctva_ros.model.class_maps.CLASS_MAPS`) from the
  **visual** expert's classes onto the checkpoint's classes, or ``null`` when they are the same classes in
  the same order (the only expert whose classes differ is the face expert; text and audio are trained on
  the checkpoint's classes). Its destination classes must be the checkpoint's ``class_names``.

Other keys are refused (a misspelt ``temprature`` would otherwise be silently ignored).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from synctva_ros.checkpoint.io import MANIFEST_FILE, CheckpointError, read_manifest
from synctva_ros.core.modalities import MODALITIES
from synctva_ros.model.class_maps import CLASS_MAPS
from synctva_ros.model.experts import ExpertFusion

__all__ = ["FUSION_KEY", "MAPPED_EXPERT", "fusion_block", "validate_fusion_block", "fusion_from_block",
           "read_fusion", "write_fusion"]

FUSION_KEY = "expert_fusion"
#: The expert the block's ``class_map`` applies to.
MAPPED_EXPERT = "visual"
_TOP = {"experts", "prior", "class_map"}
_EXPERT = {"temperature", "weight", "fit"}


def _number(value: Any, what: str, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or (value <= 0 if positive else value < 0):
        raise CheckpointError(f"{what} must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)


def validate_fusion_block(block: Any, class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Check a fusion block and return a normalised copy (floats, prior summing to 1, ``fit`` kept).

    Args:
        block: the parsed ``expert_fusion`` value.
        class_names: the checkpoint's classes (checks the prior's length and the class map's destination).

    Returns:
        A new dict with exactly the keys ``experts``, ``prior``, ``class_map``.

    Raises:
        CheckpointError: not an object, unknown or missing keys, unknown modality or class map, a temperature
            <= 0, a negative weight, a bad prior, a prior or class map that does not fit ``class_names``.
    """
    if not isinstance(block, Mapping):
        raise CheckpointError(f"{FUSION_KEY} must be a JSON object, got {type(block).__name__}")
    unknown = set(block) - _TOP
    if unknown or not {"experts", "prior"} <= set(block):
        raise CheckpointError(f"{FUSION_KEY} needs keys experts, prior (and optional class_map); "
                              f"unknown: {sorted(unknown)}, has: {sorted(block)}")
    experts = block["experts"]
    if not isinstance(experts, Mapping) or not experts:
        raise CheckpointError(f"{FUSION_KEY}.experts must be a non-empty object")
    out_experts: dict[str, dict[str, Any]] = {}
    for name, spec in experts.items():
        where = f"{FUSION_KEY}.experts.{name}"
        if name not in MODALITIES:
            raise CheckpointError(f"{where}: unknown modality (known: {MODALITIES})")
        if not isinstance(spec, Mapping) or set(spec) - _EXPERT or not {"temperature", "weight"} <= set(spec):
            raise CheckpointError(f"{where} must be an object with temperature, weight (and optional fit)")
        entry = {"temperature": _number(spec["temperature"], f"{where}.temperature", True),
                 "weight": _number(spec["weight"], f"{where}.weight", False)}
        if "fit" in spec:
            if not isinstance(spec["fit"], Mapping):
                raise CheckpointError(f"{where}.fit must be an object")
            entry["fit"] = json.loads(json.dumps(spec["fit"]))
        out_experts[name] = entry
    prior = block["prior"]
    if not isinstance(prior, Sequence) or isinstance(prior, str) or not prior:
        raise CheckpointError(f"{FUSION_KEY}.prior must be a non-empty list of numbers")
    pi = [_number(p, f"{FUSION_KEY}.prior[{i}]", True) for i, p in enumerate(prior)]
    if class_names is not None and len(pi) != len(class_names):
        raise CheckpointError(f"{FUSION_KEY}.prior has {len(pi)} entries; the checkpoint has {len(class_names)} "
                              f"classes {tuple(class_names)}")
    cmap = block.get("class_map")
    if cmap is not None:
        if cmap not in CLASS_MAPS:
            raise CheckpointError(f"{FUSION_KEY}.class_map {cmap!r} is unknown (known: {sorted(CLASS_MAPS)})")
        dst = CLASS_MAPS[cmap].dst
        if len(dst) != len(pi) or (class_names is not None and tuple(class_names) != dst):
            raise CheckpointError(f"{FUSION_KEY}.class_map {cmap!r} maps onto {dst}, not the checkpoint's "
                                  f"classes {tuple(class_names) if class_names is not None else len(pi)}")
    total = sum(pi)
    return {"experts": out_experts, "prior": [p / total for p in pi], "class_map": cmap}


def fusion_block(temperatures: Mapping[str, float], prior: Sequence[float] | np.ndarray,
                 weights: Mapping[str, float] | None = None, class_map: str | None = None,
                 fits: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Build a validated fusion block.

    Args:
        temperatures: ``{modality: T}``: the experts to fuse.
        prior: ``(C,)`` class prior (probabilities or counts).
        weights: ``{modality: w}``; missing ones are 1.
        class_map: the visual expert's map name, or None.
        fits: ``{modality: fit summary}`` stored as ``fit``.

    Returns:
        The block (see the module).

    Raises:
        CheckpointError: as :func:`validate_fusion_block`; a weight or fit for an expert without temperature.
    """
    extra = (set(weights or {}) | set(fits or {})) - set(temperatures)
    if extra:
        raise CheckpointError(f"weights or fits for experts without a temperature: {sorted(extra)}")
    experts = {k: {"temperature": t, "weight": (weights or {}).get(k, 1.0)} for k, t in temperatures.items()}
    for k, f in (fits or {}).items():
        experts[k]["fit"] = dict(f)
    return validate_fusion_block({"experts": experts, "prior": [float(p) for p in np.asarray(prior).ravel()],
                                  "class_map": class_map})


def fusion_from_block(block: Mapping[str, Any], class_names: Sequence[str] | None = None) -> ExpertFusion:
    """The runtime :class:`~synctva_ros.model.experts.ExpertFusion` of a block (validated first).

    Raises:
        CheckpointError: as :func:`validate_fusion_block`.
    """
    b = validate_fusion_block(block, class_names)
    maps = {} if b["class_map"] is None else {MAPPED_EXPERT: CLASS_MAPS[b["class_map"]]}
    return ExpertFusion(prior=np.asarray(b["prior"]),
                        temperatures={k: v["temperature"] for k, v in b["experts"].items()},
                        weights={k: v["weight"] for k, v in b["experts"].items()}, class_maps=maps)


def read_fusion(source: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, Any] | None:
    """The validated fusion block of a checkpoint directory or a manifest dict, None when it has none.

    Raises:
        CheckpointError: unreadable manifest (:func:`~synctva_ros.checkpoint.io.read_manifest`) or bad block.
    """
    man = source if isinstance(source, Mapping) else read_manifest(source)
    if man.get(FUSION_KEY) is None:
        return None
    return validate_fusion_block(man[FUSION_KEY], man.get("class_names"))


def write_fusion(directory: str | os.PathLike[str], block: Mapping[str, Any] | None) -> Path:
    """Store ``block`` in the ``manifest.json`` of checkpoint ``directory`` (None removes it).

    The manifest is read and checked first; the new one is written to a temporary file and renamed, so a
    failure leaves the old manifest in place. Weights are untouched.

    Returns:
        The manifest's path.

    Raises:
        CheckpointError: unreadable manifest, or a block that does not fit the checkpoint's classes.
    """
    man = read_manifest(directory)
    if block is None:
        man.pop(FUSION_KEY, None)
    else:
        man[FUSION_KEY] = validate_fusion_block(block, man.get("class_names"))
    path = Path(directory) / MANIFEST_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(man, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)
    return path
