"""Loading a configuration: a profile (YAML) plus ``section.key=value`` overrides."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import yaml

from synctva_ros.config.paths import PROFILES_DIR, resolve_path
from synctva_ros.config.schema import ConfigError, SyncTVAConfig

__all__ = ["load_config", "parse_overrides"]


def load_config(profile: str | os.PathLike[str] | None = "demo",
                overrides: Mapping[str, Any] | Iterable[str] | None = None) -> SyncTVAConfig:
    """Build a config from a profile (name in ``config/profiles`` or a YAML path) plus overrides.

    Args:
        profile: profile name (``demo``, ``paper``, ...) or path to a YAML file with
            nested sections; ``None`` gives the dataclass defaults.
        overrides: mapping of ``section.key`` to value, or ``"section.key=value"``
            strings as typed on the command line (values parsed as YAML scalars).

    Raises:
        ConfigError: unknown key or invalid value; FileNotFoundError: missing profile.
    """
    cfg = SyncTVAConfig()
    if profile:
        p = Path(str(profile))
        if p.suffix not in (".yaml", ".yml"):
            p = resolve_path(f"{PROFILES_DIR}/{profile}.yaml")
        else:
            p = resolve_path(p)
        data = yaml.safe_load(p.read_text()) or {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"{p}: expected a mapping of sections")
        cfg.update(data)
        if cfg.runtime.profile != str(profile) and p.stem == str(profile):
            cfg.runtime.profile = str(profile)
    if overrides:
        cfg.update(overrides if isinstance(overrides, Mapping) else parse_overrides(overrides))
    return cfg


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["section.key=value", ...]`` (the command line's ``--set``) -> ``{"section.key": value}``.

    Values are parsed as YAML (``0.3`` -> float, ``[a, b]`` -> list, empty -> ``""``); a key given
    twice keeps its last value.

    Raises:
        ConfigError: an item without ``=``.
    """
    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, raw = str(item).partition("=")
        if not sep:
            raise ConfigError(f"override '{item}' is not key=value")
        parsed[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
    return parsed
