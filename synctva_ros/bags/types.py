"""A ``rosbags`` typestore that knows the ROS 2 standard messages and ours.

Source: rosbags 0.11 (``rosbags.typesys``). The store is the newest ROS 2
store rosbags ships for the distribution we target (Kilted when present) plus
the ``msg/*.msg`` files of this package, parsed with ``get_types_from_msg`` and
registered as ``synctva_ros/msg/<Name>``. rosbags computes the same RIHS01 type
hashes as rosidl (checked in ``test/bags/test_types.py`` against the
``share/synctva_ros/msg/*.json`` files rosidl installs, when they exist).
"""

from __future__ import annotations

import functools
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from synctva_ros.config import package_root

__all__ = ["PACKAGE", "msg_dir", "custom_msgtypes", "get_synctva_typestore", "STORE"]

#: ROS package name of our interfaces.
PACKAGE = "synctva_ros"


def _pick_store() -> Stores:
    names = [s for s in Stores if s.name.startswith("ROS2_")]
    if hasattr(Stores, "ROS2_KILTED"):
        return Stores.ROS2_KILTED
    return names[-1]


#: The rosbags store used as the base (ROS2_KILTED, or the newest ROS 2 store).
STORE: Stores = _pick_store()


def msg_dir() -> Path:
    """Directory holding ``AudioChunk.msg`` etc.

    Searched: ``package_root()/msg`` (checkout or ``$SYNCTVA_HOME``), then this
    source tree's ``msg/``.

    Raises:
        FileNotFoundError: neither holds ``.msg`` files.
    """
    for cand in (package_root() / "msg", Path(__file__).resolve().parents[2] / "msg"):
        if cand.is_dir() and any(cand.glob("*.msg")):
            return cand
    raise FileNotFoundError(f"no msg/*.msg found under {package_root()}")


def custom_msgtypes() -> dict[str, str]:
    """``{"synctva_ros/msg/Name": msg text}`` for every ``msg/*.msg`` file."""
    return {f"{PACKAGE}/msg/{p.stem}": p.read_text(encoding="utf-8") for p in sorted(msg_dir().glob("*.msg"))}


@functools.lru_cache(maxsize=1)
def get_synctva_typestore() -> Typestore:
    """The shared typestore (cached): :data:`STORE` plus our message types.

    Raises:
        FileNotFoundError: the ``msg`` directory is missing.
        rosbags.typesys.TypesysError: a ``.msg`` file does not parse.
    """
    store = get_typestore(STORE)
    types = {}
    for name, text in custom_msgtypes().items():
        types.update(get_types_from_msg(text, name))
    store.register(types)
    return store
