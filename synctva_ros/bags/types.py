"""A ``rosbags`` typestore that knows the ROS 2 standard messages and ours.

Source: rosbags 0.11 (``rosbags.typesys``). The store is the newest ROS 2
store rosbags ships for the distribution we target (Kilted when present) plus
the ``msg/*.msg`` files of this package, parsed with ``get_types_from_msg`` and
registered as ``synctva_ros/msg/<Name>``. rosbags computes the same RIHS01 type
hashes as rosidl (checked in ``test/bags/test_types.py`` against the
``share/synctva_ros/msg/*.json`` files rosidl installs, when they exist).

The store also knows the third-party types the node reads (:data:`THIRD_PARTY_PACKAGES`: ROS4HRI
``hri_msgs``, ``audio_common_msgs``, ``whisper_msgs``), so ``synctva make-bag`` can write them and bags
recorded without message definitions read back: their ``.msg`` files are taken from the first of
:func:`third_party_msg_dir`'s places that has them (an installed package, or this checkout's stand-ins in
``third_party_msgs/``). A package found nowhere is left out (its types then come only from a bag's own
definitions).
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from pathlib import Path

from rosbags.typesys import Stores, TypesysError, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from synctva_ros.config import package_root

__all__ = ["PACKAGE", "THIRD_PARTY_PACKAGES", "msg_dir", "custom_msgtypes", "third_party_msg_dir",
           "third_party_msgtypes", "get_synctva_typestore", "STORE"]

log = logging.getLogger(__name__)

#: ROS package name of our interfaces.
PACKAGE = "synctva_ros"
#: Packages of the third-party messages the node reads (see ``third_party_msgs/README.md``).
THIRD_PARTY_PACKAGES = ("hri_msgs", "audio_common_msgs", "whisper_msgs")


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


def third_party_msg_dir(package: str) -> Path | None:
    """The ``msg`` directory of ``package``, or None when it is nowhere.

    Searched in order: ``<prefix>/share/<package>/msg`` for each prefix of ``$AMENT_PREFIX_PATH`` (a ROS
    install), ``<sys.prefix>/share/<package>/msg`` (a venv the stand-ins were built into), then
    ``third_party_msgs/<package>/msg`` of :func:`~synctva_ros.config.package_root` and of this source tree.
    """
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p] + [sys.prefix]
    cands = [Path(p) / "share" / package / "msg" for p in prefixes]
    roots = (package_root(), Path(__file__).resolve().parents[2])
    cands += [root / "third_party_msgs" / package / "msg" for root in roots]
    return next((c for c in cands if c.is_dir() and any(c.glob("*.msg"))), None)


def third_party_msgtypes() -> dict[str, str]:
    """``{"pkg/msg/Name": msg text}`` for every message of the :data:`THIRD_PARTY_PACKAGES` found."""
    out: dict[str, str] = {}
    for pkg in THIRD_PARTY_PACKAGES:
        d = third_party_msg_dir(pkg)
        if d is not None:
            out.update({f"{pkg}/msg/{p.stem}": p.read_text(encoding="utf-8") for p in sorted(d.glob("*.msg"))})
    return out


@functools.lru_cache(maxsize=1)
def get_synctva_typestore() -> Typestore:
    """The shared typestore (cached): :data:`STORE` plus our message types and the third-party ones found.

    Raises:
        FileNotFoundError: the ``msg`` directory is missing.
        rosbags.typesys.TypesysError: a ``.msg`` file does not parse.
    """
    store = get_typestore(STORE)
    types = {}
    for name, text in custom_msgtypes().items():
        types.update(get_types_from_msg(text, name))
    store.register(types)
    extra = {}
    for name, text in third_party_msgtypes().items():
        try:
            extra.update(get_types_from_msg(text, name))
        except TypesysError as exc:  # a package of that name with a definition rosbags cannot parse
            log.warning("third-party message %s not registered: %s", name, exc)
    try:
        store.register(extra)
    except TypesysError as exc:  # e.g. the ros-drivers audio_common_msgs next to a type referring to mgonzs13's
        log.warning("third-party messages not registered: %s", exc)
    return store
