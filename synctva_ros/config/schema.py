"""The whole configuration (:class:`SyncTVAConfig`): flat and nested views, validated updates.

Errors: :class:`ConfigError` (a ``ValueError``) for unknown keys, wrong types or out-of-range
values, naming the offending key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from synctva_ros.config.sections import (FeaturesConfig, ModelConfig, OutputConfig, RuntimeConfig,
                                         TopicsConfig, TritonConfig, WindowingConfig)

__all__ = ["ConfigError", "SyncTVAConfig"]


class ConfigError(ValueError):
    """A configuration key is unknown, mistyped or out of range."""


@dataclass
class SyncTVAConfig:
    """The whole configuration: one section per concern."""

    topics: TopicsConfig = field(default_factory=TopicsConfig)
    windowing: WindowingConfig = field(default_factory=WindowingConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    triton: TritonConfig = field(default_factory=TritonConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    # ---------------------------------------------------------------- flat view
    def to_flat(self) -> dict[str, Any]:
        """``{"section.key": value}`` for every field (the ROS parameter names)."""
        out: dict[str, Any] = {}
        for sec in dataclasses.fields(self):
            obj = getattr(self, sec.name)
            for f in dataclasses.fields(obj):
                out[f"{sec.name}.{f.name}"] = getattr(obj, f.name)
        return out

    @staticmethod
    def describe() -> dict[str, dict[str, Any]]:
        """``{"section.key": metadata}`` with description, range, read_only, choices."""
        out: dict[str, dict[str, Any]] = {}
        for sec in dataclasses.fields(SyncTVAConfig):
            for f in dataclasses.fields(sec.default_factory()):  # type: ignore[misc]
                out[f"{sec.name}.{f.name}"] = dict(f.metadata)
        return out

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Nested plain-dict view (YAML / JSON serialisable)."""
        return dataclasses.asdict(self)

    def update(self, values: Mapping[str, Any]) -> "SyncTVAConfig":
        """Apply flat (``a.b``) or nested values in place, validating each; returns self.

        Raises:
            ConfigError: unknown key, wrong type, value out of range or not in choices.
        """
        for key, value in _flatten(values).items():
            self._set(key, value)
        return self

    def _set(self, key: str, value: Any) -> None:
        sec_name, _, name = key.partition(".")
        if not name or not hasattr(self, sec_name):
            raise ConfigError(f"unknown configuration key '{key}'")
        sec = getattr(self, sec_name)
        fields = {f.name: f for f in dataclasses.fields(sec)}
        if name not in fields:
            raise ConfigError(f"unknown configuration key '{key}' (known in '{sec_name}': "
                              f"{', '.join(sorted(fields))})")
        f = fields[name]
        current = getattr(sec, name)
        value = _coerce(key, value, type(current))
        meta = f.metadata
        if meta.get("range") is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
            lo, hi = meta["range"]
            if not lo <= value <= hi:
                raise ConfigError(f"'{key}' = {value} is outside [{lo}, {hi}]")
        if meta.get("choices") and value not in meta["choices"]:
            raise ConfigError(f"'{key}' = {value!r} is not one of {list(meta['choices'])}")
        setattr(sec, name, value)


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in values.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _coerce(key: str, value: Any, kind: type) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            return value.lower() in ("true", "1")
        raise ConfigError(f"'{key}' must be a boolean, got {value!r}")
    if kind is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"'{key}' must be a list, got {value!r}")
        return list(value)
    if kind in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"'{key}' must be a number, got {value!r}")
        try:
            num = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"'{key}' must be a number, got {value!r}") from None
        if kind is int:
            if num != int(num):
                raise ConfigError(f"'{key}' must be an integer, got {value!r}")
            return int(num)
        return num
    if kind is str:
        return str(value)
    return value
