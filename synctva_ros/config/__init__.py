"""One configuration schema, used three ways.

The same dataclasses back (1) ROS 2 parameters of the node (flattened with dots,
e.g. ``windowing.max_window_s``, each with the description and range in
:mod:`.sections`), (2) the YAML profiles in ``config/profiles/`` and the ROS params file
``config/emotion.yaml``, and (3) the ``synctva`` command line (``--set
section.key=value`` overrides). Units follow REP-103: seconds, hertz.

Modules: :mod:`.sections` (the section dataclasses and their field metadata), :mod:`.schema`
(:class:`SyncTVAConfig`, validation, :class:`ConfigError`), :mod:`.loading` (profiles and
overrides), :mod:`.paths` (package root, user paths). Every public name is importable from here.

Errors: :class:`ConfigError` (a ``ValueError``) for unknown keys, wrong types or
out-of-range values, naming the offending key.
"""

from __future__ import annotations

from synctva_ros.config.loading import load_config, parse_overrides
from synctva_ros.config.paths import PROFILES_DIR, package_root, resolve_path
from synctva_ros.config.schema import ConfigError, SyncTVAConfig
from synctva_ros.config.sections import (FeaturesConfig, ModelConfig, OutputConfig, RuntimeConfig,
                                         TopicsConfig, TritonConfig, WindowingConfig)

__all__ = [
    "ConfigError",
    "TopicsConfig",
    "WindowingConfig",
    "FeaturesConfig",
    "ModelConfig",
    "RuntimeConfig",
    "TritonConfig",
    "OutputConfig",
    "SyncTVAConfig",
    "load_config",
    "parse_overrides",
    "resolve_path",
    "package_root",
    "PROFILES_DIR",
]
