"""Integrity record of a checkpoint: what the weights and the manifest were when they were saved.

:func:`~synctva_ros.checkpoint.io.save_checkpoint` stores, under the manifest key :data:`INTEGRITY_KEY`::

    "integrity": {
      "algorithm": "sha256",
      "weights_sha256": "<hex sha256 of the bytes of model.safetensors>",
      "manifest_sha256": "<hex sha256 of the canonical manifest, see below>",
      "manifest_keys": {"<top-level key>": "<first 16 hex digits of that key's canonical sha256>", ...}
    }

and :func:`~synctva_ros.checkpoint.io.load_checkpoint` compares them with the files it reads
(:func:`integrity_problems`). A bit flip in the weights, two class names swapped by hand, a renamed
class or an edited architecture then refuse to load, naming the manifest keys that differ, instead of
loading and publishing confidently wrong labels.

Canonical manifest: the manifest without :data:`UNSEALED_KEYS` and without private keys (``_*``, added
in memory by the loader), serialised as JSON with sorted keys, ``(",", ":")`` separators and ASCII
escapes; its sha256 therefore does not depend on indentation or key order in the file. Unsealed are the
record itself and ``expert_fusion``, a block written after training by
:func:`~synctva_ros.checkpoint.fusion.write_fusion`, which validates it against the class names itself.

Checkpoints saved before this record existed have none: they load with a logged, counted warning
(:func:`counters`). Hashing is sha256 (FIPS 180-4) through :mod:`hashlib`.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from typing import Any, Mapping

__all__ = ["INTEGRITY_KEY", "UNSEALED_KEYS", "canonical_manifest_sha256", "manifest_key_digests",
           "integrity_record", "integrity_problems", "counters", "count"]

INTEGRITY_KEY = "integrity"
#: Manifest keys the manifest hash does not cover (see the module docstring).
UNSEALED_KEYS = (INTEGRITY_KEY, "expert_fusion")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_LOCK = threading.Lock()
_COUNTS = {"verified": 0, "unrecorded": 0, "refused": 0}


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str).encode()


def _sealed(manifest: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in manifest.items() if k not in UNSEALED_KEYS and not str(k).startswith("_")}


def canonical_manifest_sha256(manifest: Mapping[str, Any]) -> str:
    """Hex sha256 of the canonical manifest (without :data:`UNSEALED_KEYS` and ``_*`` keys).

    Args:
        manifest: a manifest dict as read from ``manifest.json`` (or about to be written).

    Returns:
        64 hex digits.
    """
    return hashlib.sha256(_canonical(_sealed(manifest))).hexdigest()


def manifest_key_digests(manifest: Mapping[str, Any]) -> dict[str, str]:
    """``{top-level key: first 16 hex digits of the sha256 of its canonical value}`` of the sealed keys.

    Used only to *name* the keys that changed when the manifest hash differs.
    """
    return {k: hashlib.sha256(_canonical(v)).hexdigest()[:16] for k, v in sorted(_sealed(manifest).items())}


def integrity_record(manifest: Mapping[str, Any], weights_sha256: str) -> dict[str, Any]:
    """The :data:`INTEGRITY_KEY` block for ``manifest`` and weights with hash ``weights_sha256``.

    Args:
        manifest: the manifest as it will be written (its own integrity block, if any, is ignored).
        weights_sha256: hex sha256 of the ``model.safetensors`` file as written.

    Returns:
        ``{"algorithm", "weights_sha256", "manifest_sha256", "manifest_keys"}``.
    """
    return {"algorithm": "sha256", "weights_sha256": str(weights_sha256),
            "manifest_sha256": canonical_manifest_sha256(manifest), "manifest_keys": manifest_key_digests(manifest)}


def _record_problems(rec: Any) -> list[str]:
    if not isinstance(rec, Mapping):
        return [f"'{INTEGRITY_KEY}' must be an object, got {type(rec).__name__}"]
    out = []
    if rec.get("algorithm") != "sha256":
        out.append(f"'{INTEGRITY_KEY}.algorithm' is {rec.get('algorithm')!r}, only 'sha256' is known")
    for k in ("weights_sha256", "manifest_sha256"):
        if not isinstance(rec.get(k), str) or not _HEX64.match(rec[k]):
            out.append(f"'{INTEGRITY_KEY}.{k}' is not 64 lower-case hex digits: {rec.get(k)!r}")
    return out


def integrity_problems(manifest: Mapping[str, Any], weights_sha256: str | None = None) -> list[str] | None:
    """What differs between a checkpoint's files and its integrity record.

    Args:
        manifest: the manifest as read from ``manifest.json``.
        weights_sha256: hex sha256 of ``model.safetensors`` as read now; ``None`` checks the manifest only.

    Returns:
        ``None`` when the manifest has no record (a checkpoint saved before records existed), else the
        list of problems (empty = verified): a malformed record, the manifest keys whose content changed
        (or were added or removed) since it was saved, or the weights hash recorded and found.
    """
    rec = manifest.get(INTEGRITY_KEY)
    if rec is None:
        return None
    problems = _record_problems(rec)
    if problems:
        return problems
    now = canonical_manifest_sha256(manifest)
    if now != rec["manifest_sha256"]:
        have, was = manifest_key_digests(manifest), rec.get("manifest_keys")
        if isinstance(was, Mapping):
            keys = sorted(k for k in set(have) | set(was) if have.get(k) != was.get(k))
            what = f"in the keys {keys}" if keys else "(the per-key digests match: the record itself was edited)"
        else:
            what = "(the record lists no per-key digests)"
        problems.append(f"manifest.json differs from the manifest that was saved {what}: canonical sha256 "
                        f"{now[:16]}... != recorded {rec['manifest_sha256'][:16]}...")
    if weights_sha256 is not None and weights_sha256 != rec["weights_sha256"]:
        problems.append(f"model.safetensors has sha256 {weights_sha256[:16]}... but {rec['weights_sha256'][:16]}... "
                        "was recorded at save: the weights were changed or corrupted after saving")
    return problems


def count(outcome: str) -> None:
    """Add one to the counter ``outcome`` (``verified``, ``unrecorded`` or ``refused``)."""
    with _LOCK:
        _COUNTS[outcome] = _COUNTS.get(outcome, 0) + 1


def counters() -> dict[str, int]:
    """Checkpoint loads in this process by integrity outcome: ``verified``, ``unrecorded``, ``refused``."""
    with _LOCK:
        return dict(_COUNTS)
