"""On-disk cache of exported ONNX files and TensorRT engines, keyed by what determines them.

A cached artefact is valid exactly as long as its key is: the key is a sha256 over a JSON
document of its *parts* (model weights hash, manifest, the source of the code that defines the graph
(:func:`graph_source_sha256`), exporter and opset, TensorRT version, GPU name, precision,
optimisation-profile shapes, ...). Any change of a part gives a new file name, so a stale file is never loaded.

A file of the right name is not trusted for its name: at build time the sha256 of its content is
recorded in a sidecar ``<artefact>.sha256`` (``sha256sum`` format, so ``sha256sum -c`` checks it
too), and every reuse first compares the file with it. A file that differs (a flipped bit, a
truncated copy, another file put in its place) or has no sidecar (built before sidecars existed)
is deleted and rebuilt, with a logged warning, and counted (:func:`cache_counters`).

Layout: ``<cache_dir>/<kind>/<stem>-<key16>.<suffix>`` plus ``<same>.json`` holding the parts
(for humans and for :func:`describe`) and ``<same>.sha256``. ``cache_dir`` is ``runtime.cache_dir`` or
``~/.cache/synctva`` (``$SYNCTVA_CACHE`` overrides the default). Files are written to a
temporary name and renamed, so a crashed build leaves no half-written artefact.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from synctva_ros.core.hashing import file_sha256

__all__ = ["cache_root", "state_dict_sha256", "manifest_sha256", "cache_key", "CachedArtifact", "cached_build",
           "cache_counters", "graph_source_sha256", "GRAPH_SOURCES"]

log = logging.getLogger(__name__)

_LOCK = threading.Lock()
_COUNTS = {"hits": 0, "builds": 0, "rebuilt_mismatch": 0}


def cache_counters() -> dict[str, int]:
    """Cache outcomes in this process: ``hits`` (verified reuse), ``builds`` (all builds, rebuilds included),
    ``rebuilt_mismatch`` (a cached file that failed its content check and was rebuilt)."""
    with _LOCK:
        return dict(_COUNTS)


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The cache directory: ``cache_dir`` when non-empty, else ``$SYNCTVA_CACHE``, else ``~/.cache/synctva``.

    The directory is created. Raises ``OSError`` when it cannot be.
    """
    raw = str(cache_dir) if cache_dir else os.environ.get("SYNCTVA_CACHE", "") or "~/.cache/synctva"
    root = Path(os.path.expanduser(raw))
    root.mkdir(parents=True, exist_ok=True)
    return root


def state_dict_sha256(module: torch.nn.Module, exclude: tuple[str, ...] = ()) -> str:
    """sha256 over a module's state dict (names, dtypes, shapes and bytes, sorted by name).

    Hashes what would be exported, whatever file the weights came from (safetensors,
    a Hugging Face directory, a torchvision state dict). Entries whose names start with one of
    ``exclude`` are left out (weights that cannot change the outputs, e.g. an inactive branch's).
    """
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        if exclude and name.startswith(exclude):
            continue
        t = t.detach().to("cpu").contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        if t.dtype == torch.bfloat16:
            t = t.view(torch.int16)
        h.update(t.numpy().tobytes())
    return h.hexdigest()


#: The package's modules whose code defines the graphs this package exports (relative to ``synctva_ros/``): the
#: network (every module of ``model/``) and the export wrappers.
GRAPH_SOURCES = ("model/*.py", "backends/export.py", "backends/text_top_serving.py")


@functools.lru_cache(maxsize=1)
def graph_source_sha256() -> str:
    """sha256 over the source of :data:`GRAPH_SOURCES` (file names and bytes, sorted), part of every exported graph's
    cache key: a change of the network's code (a faster layout of the same function, a fixed bug) exports again
    instead of serving the graph cached from the old code. Falls back to the package version where the sources are
    not readable (a zipped or bytecode-only install). Raises nothing."""
    root = Path(__file__).resolve().parents[1]
    files = sorted({f for pattern in GRAPH_SOURCES for f in root.glob(pattern)})
    h = hashlib.sha256()
    try:
        for f in files:
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
    except OSError:
        files = []
    if not files:
        from synctva_ros import __version__

        return f"version-{__version__}"
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
        self.hash_path = self.path.with_name(self.path.name + ".sha256")

    def exists(self) -> bool:
        """True when the artefact and its metadata were completely written."""
        return self.path.is_file() and self.meta_path.is_file()

    def content_problem(self) -> str | None:
        """Compare the artefact's sha256 with the one recorded at build time.

        Returns:
            ``None`` when they are equal, else why the file cannot be trusted (no or unreadable
            sidecar, or the two hashes).
        """
        try:
            recorded = self.hash_path.read_text().split()[0]
        except (OSError, ValueError, IndexError):
            return f"no readable content hash {self.hash_path.name} (built before hashes were recorded?)"
        try:
            actual = file_sha256(self.path)
        except OSError as exc:
            return f"unreadable: {exc}"
        if actual != recorded:
            return f"content sha256 {actual[:16]}... differs from {recorded[:16]}... recorded at build time"
        return None

    def _record_content(self) -> None:
        tmp = self.hash_path.with_name(self.hash_path.name + ".tmp")
        tmp.write_text(f"{file_sha256(self.path)}  {self.path.name}\n")
        os.replace(tmp, self.hash_path)

    def _remove(self) -> None:
        for p in (self.meta_path, self.hash_path, self.path):
            p.unlink(missing_ok=True)

    def describe(self) -> dict[str, Any]:
        """The stored key parts (``{}`` when absent or unreadable)."""
        try:
            return json.loads(self.meta_path.read_text())
        except (OSError, ValueError):
            return {}


def cached_build(artifact: CachedArtifact, build: Callable[[Path], None]) -> tuple[Path, bool]:
    """Return ``artifact.path``, calling ``build(tmp_path)`` first when it is not cached yet.

    ``build`` must write the artefact to the path it is given; it is then renamed into place
    and its content hash and the key parts are written next to it. A cached file is reused only
    when its content matches the recorded hash; otherwise it is deleted and rebuilt (a logged
    warning, counted in :func:`cache_counters`). Builds of the same artefact in one process are
    serialised.

    Returns:
        ``(path, built)``; ``built`` is False on a cache hit.

    Raises:
        Whatever ``build`` raises (nothing is left in the cache then).
    """
    with _LOCK:
        if artifact.exists():
            problem = artifact.content_problem()
            if problem is None:
                _COUNTS["hits"] += 1
                log.debug("cache hit %s", artifact.path)
                return artifact.path, False
            _COUNTS["rebuilt_mismatch"] += 1
            log.warning("cached %s is not used: %s; rebuilding it", artifact.path, problem)
            artifact._remove()
        artifact.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=artifact.path.name + ".", suffix=".tmp", dir=artifact.path.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        try:
            build(tmp_path)
            os.replace(tmp_path, artifact.path)
            artifact._record_content()
            artifact.meta_path.write_text(json.dumps(artifact.parts, indent=2, sort_keys=True, default=str) + "\n")
        finally:
            if tmp_path.exists():
                tmp_path.unlink()
        _COUNTS["builds"] += 1
        log.info("cached %s", artifact.path)
        return artifact.path, True
