"""The manifest block of a product of calibrated experts (:mod:`synctva_ros.model.experts`).

Stored under the manifest key :data:`FUSION_KEY` (``"expert_fusion"``) of a checkpoint's ``manifest.json``::

    "expert_fusion": {
        "experts": {"model":  {"temperature": 1.31, "weight": 1.0},
                    "visual": {"temperature": 3.32, "weight": 0.6, "fit": {"n": 200, "nll_after": 1.1}}},
        "prior": [0.47, 0.17, 0.12, 0.11, 0.07, 0.03, 0.03],
        "class_map": null
    }

* ``experts``: one entry per expert of :data:`EXPERTS`: ``"model"`` (the Sync-TVA network's softmax over the
  modalities it was trained on, text and audio in the shipped checkpoints) and ``"visual"`` (the
  facial-expression expert's window evidence, :mod:`synctva_ros.features.faces.evidence`), each with
  ``temperature`` (finite, > 0) and ``weight`` (finite, >= 0); optional ``fit`` (a JSON object: how the
  values were fitted, e.g. a :class:`~synctva_ros.model.calibration.TemperatureFit` as a dict), kept as is.
  An expert absent here is not fused.
* ``prior``: the class prior over the checkpoint's classes (its ``class_names`` order), every entry > 0;
  stored normalised.
* ``class_map``: the name of a built-in map (:data:`~synctva_ros.model.class_maps.CLASS_MAPS`) from the
  **visual** expert's classes (MELD's seven in MELD's order, what the face evidence is given in) onto the
  checkpoint's classes, or ``null``: then chosen from the checkpoint's classes by :func:`visual_class_map`
  (none for MELD's classes in MELD's order, ``meld7->iemocap6`` for IEMOCAP's six). Its source must be
  MELD's seven and its destination the checkpoint's ``class_names``.

Other keys are refused (a misspelt ``temprature`` would otherwise be silently ignored).

Without a block, :func:`fusion_for_manifest` uses the defaults (:func:`default_fusion_block`): model ``T = 1,
w = 1``; visual ``T =`` :data:`VISUAL_TEMPERATURE` ``, w = 1``; a uniform prior (the shipped checkpoints
are trained with class-balanced losses, so their posteriors carry about a uniform prior).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from synctva_ros.checkpoint.io import MANIFEST_FILE, CheckpointError, read_manifest
from synctva_ros.model.class_maps import CLASS_MAPS, IEMOCAP6, MELD7, ClassMap, permutation_map
from synctva_ros.model.experts import ExpertFusion

__all__ = ["FUSION_KEY", "EXPERTS", "MAPPED_EXPERT", "VISUAL_TEMPERATURE", "fusion_block", "validate_fusion_block",
           "fusion_from_block", "read_fusion", "write_fusion", "visual_class_map", "default_fusion_block",
           "fusion_for_manifest"]

FUSION_KEY = "expert_fusion"
#: The experts a block may name: the Sync-TVA network, and the facial-expression expert.
EXPERTS = ("model", "visual")
#: The expert the block's ``class_map`` applies to.
MAPPED_EXPERT = "visual"
#: Default temperature of the visual expert: fitted (NLL) on half of the 1,495 scorable photographs of
#: ``../shared/data/faces`` (seed 0) by ``synctva_ros.evaluation.face_calibration.calibrate_face_temperature``
#: (MTCNN + face-api, largest face; issue 9). Refit with that function when the detector or expert changes.
VISUAL_TEMPERATURE = 3.32
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
        if name not in EXPERTS:
            raise CheckpointError(f"{where}: unknown expert (known: {EXPERTS})")
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
        src, dst = CLASS_MAPS[cmap].src, CLASS_MAPS[cmap].dst
        if src != MELD7:
            raise CheckpointError(f"{FUSION_KEY}.class_map {cmap!r} maps from {src}; the visual evidence is over "
                                  f"MELD's classes in MELD's order {MELD7}")
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
        temperatures: ``{expert: T}`` (experts of :data:`EXPERTS`): the experts to fuse.
        prior: ``(C,)`` class prior (probabilities or counts).
        weights: ``{expert: w}``; missing ones are 1.
        class_map: the visual expert's map name, or None.
        fits: ``{expert: fit summary}`` stored as ``fit``.

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
    cmap = CLASS_MAPS[b["class_map"]] if b["class_map"] is not None else \
        (visual_class_map(class_names) if class_names is not None else None)
    maps = {} if cmap is None else {MAPPED_EXPERT: cmap}
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


def visual_class_map(class_names: Sequence[str]) -> ClassMap | None:
    """The map from the visual evidence (MELD's seven, MELD's order) onto a checkpoint's classes.

    Returns:
        None for MELD's classes in MELD's order (identity); ``meld7->iemocap6`` for IEMOCAP's six in the
        project's order; a permutation map for MELD's seven in another order.

    Raises:
        CheckpointError: other classes (no stated relation to the face expert's; the caller turns the visual
            expert off).
    """
    names = tuple(class_names)
    if names == MELD7:
        return None
    if names == IEMOCAP6:
        return CLASS_MAPS["meld7->iemocap6"]
    if sorted(names) == sorted(MELD7):
        return ClassMap("meld7->" + ",".join(names), MELD7, names, permutation_map(MELD7, names, {c: c for c in MELD7}))
    raise CheckpointError(f"no class map from the face expert's classes {MELD7} onto {names}")


def default_fusion_block(class_names: Sequence[str]) -> dict[str, Any]:
    """The fusion used when a checkpoint has no block: model ``T = 1, w = 1``, visual ``T =``
    :data:`VISUAL_TEMPERATURE` ``, w = 1``, uniform prior, class map by :func:`visual_class_map`.

    Raises:
        CheckpointError: no class names.
    """
    n = len(class_names)
    if n == 0:
        raise CheckpointError("a checkpoint without class names cannot fuse experts")
    return validate_fusion_block({"experts": {"model": {"temperature": 1.0, "weight": 1.0},
                                              "visual": {"temperature": VISUAL_TEMPERATURE, "weight": 1.0}},
                                  "prior": [1.0 / n] * n, "class_map": None}, class_names)


def fusion_for_manifest(manifest: Mapping[str, Any]) -> tuple[ExpertFusion, dict[str, Any], bool]:
    """The runtime fusion of a loaded checkpoint: its block, else the defaults.

    Returns:
        ``(fusion, block, from_manifest)``: the :class:`~synctva_ros.model.experts.ExpertFusion`, the validated
        block it was built from, and whether that block is the manifest's.

    Raises:
        CheckpointError: a bad block, or classes the visual evidence cannot be mapped onto
            (:func:`visual_class_map`).
    """
    names = list(manifest.get("class_names") or [])
    block = read_fusion(manifest)
    found = block is not None
    block = block if found else default_fusion_block(names)
    return fusion_from_block(block, names), block, found
