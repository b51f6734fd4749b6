"""On-disk cache of exported ONNX files and TensorRT engines, keyed by what determines them.

A cached artefact is valid exactly as long as its key is: the key is a sha256 over a JSON
document of its *parts* (model weights hash, manifest, exporter and opset, TensorRT version,
GPU name, precision, optimisation-profile shapes, ...). Any change of a part gives a new
file name, so a stale file is never loaded; nothing is ever rebuilt while the key is unchanged.

Layout: ``<cache_dir>/<kind>/<stem>-<key16>.<suffix>`` plus ``<same>.json`` holding the parts
(for humans and for :func:`describe`). ``cache_dir`` is ``runtime.cache_dir`` or
``~/.cache/synctva`` (``$SYNCTVA_CACHE`` overrides the default). Files are written to a
temporary name and renamed, so a crashed build leaves no half-written artefact.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

__all__ = ["cache_root", "state_dict_sha256", "manifest_sha256", "cache_key", "CachedArtifact", "cached_build"]

log = logging.getLogger(__name__)

_LOCK = threading.Lock()


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The cache directory: ``cache_dir`` when non-empty, else ``$SYNCTVA_CACHE``, else ``~/.cache/synctva``.

    The directory is created. Raises ``OSError`` when it cannot be.
    """
    raw = str(cache_dir) if cache_dir else os.environ.get("SYNCTVA_CACHE", "") or "~/.cache/synctva"
    root = Path(os.path.expanduser(raw))
    root.mkdir(parents=True, exist_ok=True)
    return root


def state_dict_sha256(module: torch.nn.Module) -> str:
    """sha256 over a module's state dict (names, dtypes, shapes and bytes, sorted by name).

    Hashes what would be exported, whatever file the weights came from (safetensors,
    a Hugging Face directory, a torchvision state dict).
    """
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().to("cpu").contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        if t.dtype == torch.bfloat16:
            t = t.view(torch.int16)
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def manifest_sha256(manifest: Mapping[str, Any] | None) -> str:
    """sha256 of a checkpoint manifest without its volatile/private keys (``created``, ``_*``)."""
    if not manifest:
        return "none"
    return cache_key({k: v for k, v in manifest.items() if not str(k).startswith("_") and k != "created"})


def cache_key(parts: Mapping[str, Any]) -> str:
    """Hex sha256 of ``parts`` as canonical JSON (sorted keys); equal parts give equal keys."""
    blob = json.dumps(dict(parts), sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


class CachedArtifact:
    """Where one artefact lives for a given key.

    Args:
        root: cache root (see :func:`cache_root`).
        kind: sub-folder, e.g. ``"onnx"`` or ``"tensorrt"``.
        stem: readable file-name stem, e.g. ``"fusion"``.
        suffix: file suffix without the dot (``"onnx"``, ``"engine"``).
        parts: the key parts (see :func:`cache_key`).
    """

    def __init__(self, root: Path, kind: str, stem: str, suffix: str, parts: Mapping[str, Any]) -> None:
        self.parts = dict(parts)
        self.key = cache_key(self.parts)
        self.path = Path(root) / kind / f"{stem}-{self.key[:16]}.{suffix}"
        self.meta_path = self.path.with_name(self.path.name + ".json")

    def exists(self) -> bool:
        """True when the artefact and its metadata were completely written."""
        return self.path.is_file() and self.meta_path.is_file()

    def describe(self) -> dict[str, Any]:
        """The stored key parts (``{}`` when absent or unreadable)."""
        try:
            return json.loads(self.meta_path.read_text())
        except (OSError, ValueError):
            return {}


def cached_build(artifact: CachedArtifact, build: Callable[[Path], None]) -> tuple[Path, bool]:
    """Return ``artifact.path``, calling ``build(tmp_path)`` first when it is not cached yet.

    ``build`` must write the artefact to the path it is given; it is then renamed into place
    and the key parts are written next to it. Builds of the same artefact in one process are
    serialised.

    Returns:
        ``(path, built)``; ``built`` is False on a cache hit.

    Raises:
        Whatever ``build`` raises (nothing is left in the cache then).
    """
    with _LOCK:
        if artifact.exists():
            log.debug("cache hit %s", artifact.path)
            return artifact.path, False
        artifact.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=artifact.path.name + ".", suffix=".tmp", dir=artifact.path.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        try:
            build(tmp_path)
            os.replace(tmp_path, artifact.path)
            artifact.meta_path.write_text(json.dumps(artifact.parts, indent=2, sort_keys=True, default=str) + "\n")
        finally:
            if tmp_path.exists():
                tmp_path.unlink()
        log.info("cached %s", artifact.path)
        return artifact.path, True
