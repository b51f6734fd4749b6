"""Where the package's files are: the package root (``config/``, ``models/``) and user paths."""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["package_root", "resolve_path", "PROFILES_DIR"]


def package_root() -> Path:
    """Directory that holds ``config/`` and ``models/``, searched in this order.

    ``$SYNCTVA_HOME`` when set and non-empty (returned as given, unchecked); the parent of this
    package's directory (the source checkout) if it has ``config/profiles/``;
    ``<sys.prefix>/share/synctva_ros`` if it has ``config/profiles/``; ``<prefix>/share/synctva_ros``
    (where colcon installs config/models) for each ``<prefix>`` of ``$AMENT_PREFIX_PATH`` if it has
    ``config/``. Raises nothing: the parent of this package's directory is the last resort.
    """
    env = os.environ.get("SYNCTVA_HOME")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parents[1]  # the synctva_ros package directory
    for candidate in (here.parent, Path(sys.prefix) / "share" / "synctva_ros"):
        if (candidate / "config" / "profiles").is_dir():
            return candidate
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        share = Path(prefix) / "share" / "synctva_ros"
        if prefix and (share / "config").is_dir():
            return share
    return here.parent


PROFILES_DIR = "config/profiles"


def resolve_path(path: str | os.PathLike[str]) -> Path:
    """Resolve a user path: absolute, relative to the working directory, or to :func:`package_root`.

    Raises:
        FileNotFoundError: when none of the candidates exists.
    """
    p = Path(os.path.expanduser(str(path)))
    if p.is_absolute():
        if p.exists():
            return p
        raise FileNotFoundError(f"{p} does not exist")
    for base in (Path.cwd(), package_root()):
        if (base / p).exists():
            return base / p
    raise FileNotFoundError(f"'{path}' not found in {Path.cwd()} or {package_root()}")
