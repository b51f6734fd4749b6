"""Checkpoints: ``model.safetensors`` (weights) + ``manifest.json`` (what the weights mean).

Manifest keys (format 1):

``format`` (int, :data:`FORMAT`), ``name`` (str), ``architecture`` (:class:`ModelConfig` as a
dict), ``dims`` (input width per modality), ``class_names`` (output order), ``active``
(``{text, audio, visual: bool}``: which branches have trained weights), ``extractors``
(``{modality: identity dict or None}``, from ``FeatureExtractor.identity()``), ``training``
(dict: data, epochs, seed, ...), ``metrics`` (dict), ``code_version`` (package version),
``created`` (ISO 8601 UTC), ``integrity`` (sha256 of the weights file and of the canonical manifest,
see :mod:`synctva_ros.checkpoint.integrity`).

Rules:

* Loading compares the stored extractor identity of every *active* branch with the
  configured one (``expected_extractors``) and refuses a difference with
  :class:`CheckpointError` naming the modality and the differing keys: features from another
  encoder, revision, openSMILE set, image size or frame rate would silently give wrong
  predictions.
* Loading verifies the ``integrity`` record: a manifest edited after saving (e.g. two class names
  swapped) or weights changed after saving (a flipped bit) is refused with :class:`CheckpointError`
  naming the manifest keys or the file that differ. A checkpoint saved before records existed loads
  with a logged warning (``manifest["_integrity"] == "unrecorded"``); :func:`record_integrity` adds one.
  Weights with NaN or infinite values are refused, naming the tensors.
* A branch that is inactive is never run: :class:`~synctva_ros.model.synctva.SyncTVA` masks it,
  and its MSDE weights are not even written (they would be untrained).
* Extra tensors whose names start with ``"text_encoder."`` (e.g. the fine-tuned text-encoder
  deltas of :mod:`synctva_ros.checkpoint.text_top_deltas`) may be stored next to the model;
  :func:`load_checkpoint` returns them in ``manifest["_extra_tensors"]`` (a ``{name: Tensor}``
  dict, empty when there are none). Any other unknown tensor is an error.

Weights are written with the ``safetensors`` library (no pickle: loading cannot run code).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_bytes, save as save_bytes

from synctva_ros import __version__
from synctva_ros.checkpoint.integrity import INTEGRITY_KEY, count, integrity_problems, integrity_record
from synctva_ros.config import ModelConfig
from synctva_ros.core.hashing import file_sha256
from synctva_ros.core.modalities import MODALITIES
from synctva_ros.model.synctva import SyncTVA

__all__ = ["FORMAT", "WEIGHTS_FILE", "MANIFEST_FILE", "EXTRA_PREFIX", "CheckpointError", "save_checkpoint",
           "load_checkpoint", "read_manifest", "record_integrity"]

logger = logging.getLogger(__name__)

FORMAT = 1
WEIGHTS_FILE = "model.safetensors"
MANIFEST_FILE = "manifest.json"
EXTRA_PREFIX = "text_encoder."
_REQUIRED = ("format", "name", "architecture", "dims", "class_names", "active", "extractors")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, of another format, or does not fit the configured extractors."""


def _code_version() -> str:
    return str(__version__)


def _inactive_prefixes(active: Mapping[str, bool]) -> tuple[str, ...]:
    return tuple(f"msde.{m}." for m in MODALITIES if not active.get(m, True))


def save_checkpoint(directory: str | os.PathLike[str], model: SyncTVA, manifest: Mapping[str, Any] | None = None,
                    extra_tensors: Mapping[str, torch.Tensor] | None = None) -> Path:
    """Write ``model.safetensors`` and ``manifest.json`` into ``directory`` (created if needed).

    The architecture, dims, class names, active branches, format, code version and creation
    time are taken from ``model`` (values in ``manifest`` for those keys are overwritten);
    ``name``, ``extractors``, ``training`` and ``metrics`` come from ``manifest`` (defaults:
    directory name, all ``None``, ``{}``, ``{}``); ``integrity`` is computed from the files as
    written. Files are written to temporaries and renamed.

    Args:
        directory: checkpoint directory.
        model: the model to save.
        manifest: the descriptive keys above; other keys are kept as given (JSON-serialisable).
        extra_tensors: ``{"text_encoder.<name>": Tensor}`` stored alongside.

    Returns:
        The directory path.

    Raises:
        ValueError: an extra tensor name without the ``text_encoder.`` prefix, or an extractor
            entry for an unknown modality.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    man = dict(manifest or {})
    extractors = dict(man.get("extractors") or {})
    unknown = set(extractors) - set(MODALITIES)
    if unknown:
        raise ValueError(f"extractors for unknown modalities {sorted(unknown)}")
    man.update({
        "format": FORMAT,
        "name": man.get("name") or out.name,
        "architecture": model.architecture(),
        "dims": dict(model.dims),
        "class_names": list(model.class_names),
        "active": dict(model.active),
        "extractors": {m: extractors.get(m) for m in MODALITIES},
        "training": dict(man.get("training") or {}),
        "metrics": dict(man.get("metrics") or {}),
        "code_version": _code_version(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    })
    skip = _inactive_prefixes(model.active)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items() if not k.startswith(skip)}
    for k, v in (extra_tensors or {}).items():
        if not k.startswith(EXTRA_PREFIX):
            raise ValueError(f"extra tensor '{k}' must start with '{EXTRA_PREFIX}'")
        tensors[k] = v.detach().to("cpu").contiguous()
    tmp_w = out / (WEIGHTS_FILE + ".tmp")
    tmp_m = out / (MANIFEST_FILE + ".tmp")
    data = save_bytes(tensors, metadata={"format": str(FORMAT), "producer": "synctva_ros"})
    tmp_w.write_bytes(data)
    _write_manifest(tmp_m, man, hashlib.sha256(data).hexdigest())  # hashed as written, no re-read
    os.replace(tmp_w, out / WEIGHTS_FILE)
    os.replace(tmp_m, out / MANIFEST_FILE)
    return out


def _write_manifest(path: Path, man: Mapping[str, Any], weights_sha256: str) -> None:
    """Write ``man`` with its integrity record to ``path``; the record is computed from the JSON as written."""
    doc = json.loads(json.dumps({k: v for k, v in man.items() if k != INTEGRITY_KEY}, default=str))
    doc[INTEGRITY_KEY] = integrity_record(doc, weights_sha256)
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def record_integrity(directory: str | os.PathLike[str], overwrite: bool = False) -> dict[str, Any]:
    """Add the ``integrity`` record to a checkpoint saved before records existed (weights untouched).

    Records the files as they are now: run it only on a checkpoint you trust. The manifest is
    rewritten in the layout :func:`save_checkpoint` uses (2-space indent, sorted keys) via a
    temporary file and a rename.

    Args:
        directory: checkpoint directory.
        overwrite: replace an existing record (else an existing record is an error).

    Returns:
        The record written.

    Raises:
        CheckpointError: unreadable manifest, no weights file, or a record already present.
    """
    d = Path(directory)
    man = read_manifest(d)
    if man.get(INTEGRITY_KEY) is not None and not overwrite:
        raise CheckpointError(f"{d / MANIFEST_FILE} already has an integrity record (pass overwrite=True)")
    if not (d / WEIGHTS_FILE).is_file():
        raise CheckpointError(f"checkpoint {d} has no {WEIGHTS_FILE}")
    tmp = d / (MANIFEST_FILE + ".tmp")
    _write_manifest(tmp, man, file_sha256(d / WEIGHTS_FILE))
    os.replace(tmp, d / MANIFEST_FILE)
    return dict(json.loads((d / MANIFEST_FILE).read_text())[INTEGRITY_KEY])


def _verify(d: Path, man: Mapping[str, Any], weights_sha256: str | None) -> str:
    """Check the integrity record (manifest only when ``weights_sha256`` is None); returns the status."""
    problems = integrity_problems(man, weights_sha256)
    if problems is None:
        if weights_sha256 is not None:
            count("unrecorded")
            logger.warning("checkpoint %s has no integrity record (saved before records existed): loaded "
                           "unverified; synctva_ros.checkpoint.record_integrity(dir) adds one", d)
        return "unrecorded"
    if problems:
        count("refused")
        raise CheckpointError(f"checkpoint {d} fails its integrity check: " + "; ".join(problems))
    if weights_sha256 is not None:
        count("verified")
    return "verified"


def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate ``manifest.json`` of a checkpoint directory (no weights loaded).

    Raises:
        CheckpointError: missing directory or file, invalid JSON, wrong ``format``, missing keys.
    """
    d = Path(directory)
    path = d / MANIFEST_FILE
    if not d.is_dir():
        raise CheckpointError(f"checkpoint directory {d} does not exist")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {d} has no {MANIFEST_FILE}")
    try:
        man = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(man, dict):
        raise CheckpointError(f"{path} must hold a JSON object")
    if man.get("format") != FORMAT:
        raise CheckpointError(f"{path} has format {man.get('format')!r}; this code reads format {FORMAT}")
    missing = [k for k in _REQUIRED if k not in man]
    if missing:
        raise CheckpointError(f"{path} lacks the keys {missing}")
    return man


def _config_from(arch: Mapping[str, Any], where: Path) -> ModelConfig:
    names = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(arch) - names)
    if unknown:
        raise CheckpointError(f"{where}: architecture has keys this code does not know: {unknown}")
    return ModelConfig(**dict(arch))


def _check_extractors(man: Mapping[str, Any], expected: Mapping[str, dict | None], where: Path) -> None:
    stored_all = man.get("extractors") or {}
    for m, want in expected.items():
        if m not in MODALITIES:
            raise CheckpointError(f"expected extractor for unknown modality '{m}'")
        if want is None or not man["active"].get(m, False):
            continue  # nothing configured, or the branch is off anyway
        have = stored_all.get(m)
        if have is None:
            raise CheckpointError(f"{where}: the {m} branch is active but the checkpoint records no {m} extractor")
        keys = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))
        if keys:
            diff = ", ".join(f"{k}: checkpoint={have.get(k)!r} configured={want.get(k)!r}" for k in keys)
            raise CheckpointError(f"{where}: {m} extractor differs from the one the checkpoint was trained with "
                                  f"in {keys} ({diff})")


def load_checkpoint(directory: str | os.PathLike[str], expected_extractors: Mapping[str, dict | None] | None = None,
                    map_location: str | torch.device = "cpu") -> tuple[SyncTVA, dict[str, Any]]:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Args:
        directory: checkpoint directory.
        expected_extractors: ``{modality: identity dict or None}`` of the configured extractors;
            each active branch's stored identity must equal it (``None`` = not checked).
        map_location: device for the model.

    Returns:
        ``(model in eval mode, manifest)``; ``manifest["_extra_tensors"]`` holds the
        ``text_encoder.*`` tensors (possibly empty).

    Raises:
        CheckpointError: missing files, corrupt or truncated weights, wrong format, missing or
            unexpected tensors, shape mismatch, non-finite weights, an extractor identity that
            differs, or files that differ from their integrity record (the message names what).
    """
    d = Path(directory)
    man = read_manifest(d)
    _verify(d, man, None)  # an edited manifest is named before anything is built from it
    if expected_extractors:
        _check_extractors(man, expected_extractors, d)
    cfg = _config_from(man["architecture"], d)
    if list(man["class_names"]) != list(cfg.class_names):
        raise CheckpointError(f"{d}: class_names {man['class_names']} differ from the architecture's "
                              f"{cfg.class_names}")
    try:
        model = SyncTVA(cfg, {m: int(v) for m, v in man["dims"].items()}, man["active"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{d}: cannot build the model from the manifest: {exc}") from exc
    wpath = d / WEIGHTS_FILE
    if not wpath.is_file():
        raise CheckpointError(f"checkpoint {d} has no {WEIGHTS_FILE}")
    try:  # one read: the same bytes are hashed for the integrity check and deserialised
        data = wpath.read_bytes()
        weights_sha256 = hashlib.sha256(data).hexdigest()
        tensors = load_bytes(data)
        del data
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{wpath} is corrupt or truncated: {exc}") from exc
    extra = {k: v for k, v in tensors.items() if k.startswith(EXTRA_PREFIX)}
    state = {k: v for k, v in tensors.items() if not k.startswith(EXTRA_PREFIX)}
    skip = _inactive_prefixes(model.active)
    want = model.state_dict()
    missing = sorted(k for k in want if k not in state and not k.startswith(skip))
    unexpected = sorted(k for k in state if k not in want)
    if missing or unexpected:
        raise CheckpointError(f"{wpath}: tensors do not match the architecture; missing {missing[:10]}"
                              f"{' ...' if len(missing) > 10 else ''}, unexpected {unexpected[:10]}"
                              f"{' ...' if len(unexpected) > 10 else ''}")
    bad = [k for k, v in state.items() if tuple(v.shape) != tuple(want[k].shape)]
    if bad:
        raise CheckpointError(f"{wpath}: tensor shapes differ from the architecture for {bad[:10]}")
    status = _verify(d, man, weights_sha256)
    nonfinite = sorted(k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all()))
    if nonfinite:
        raise CheckpointError(f"{wpath}: {len(nonfinite)} tensors hold NaN or infinite values: {nonfinite[:10]}"
                              f"{' ...' if len(nonfinite) > 10 else ''}")
    model.load_state_dict(state, strict=False)
    model.to(map_location).eval()
    man["_extra_tensors"] = extra
    man["_integrity"] = status
    return model, man
