"""The node's ROS parameters: one per key of the configuration schema, with descriptors.

:mod:`synctva_ros.config` is the one schema (also YAML files and the ``synctva``
command line); here every ``section.key`` of :meth:`SyncTVAConfig.to_flat` becomes a
ROS parameter with a ``rcl_interfaces/msg/ParameterDescriptor`` (description, range,
read-only where a change needs a restart, choices). Read-only are all keys read only
where an object is built at configure (topics, model, backend, extractors, the
windower's buffers and VAD): rclpy refuses ``set_parameters`` on them with a reason
instead of accepting a change that would do nothing. ``runtime.profile`` is declared
first and the profile's values are the defaults of all the others, so a launch file
or ``--params-file`` overrides a profile key by key. Run-time changes are validated
against the schema before they are accepted.
"""

from __future__ import annotations

import copy
from typing import Any, Iterable

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult

from synctva_ros.config import ConfigError, SyncTVAConfig, load_config

__all__ = ["AUTOSTART", "parameter_descriptor", "declare_config_parameters", "declare_autostart",
           "apply_parameter_updates"]

#: Name of the node's one parameter outside the schema.
AUTOSTART = "autostart"


def parameter_descriptor(name: str, meta: dict[str, Any], value: Any) -> ParameterDescriptor:
    """ROS parameter descriptor for one config key: description, range, read-only, choices.

    ``rcl_interfaces/msg/ParameterDescriptor``; rclpy refuses values outside the range
    and changes of a read-only parameter.

    Args:
        name: ``section.key``.
        meta: :meth:`SyncTVAConfig.describe` entry (description, range, read_only, choices).
        value: the default, whose type chooses a floating-point or an integer range.

    Returns:
        The descriptor; a range only for float and int (not bool) values, choices as
        ``additional_constraints`` (``"one of: a, b"``).
    """
    desc = ParameterDescriptor(name=name, description=str(meta.get("description", "")),
                               read_only=bool(meta.get("read_only", False)))
    rng = meta.get("range")
    if rng is not None and not isinstance(value, bool):
        lo, hi = rng
        if isinstance(value, float):
            desc.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]
        elif isinstance(value, int):
            desc.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=1)]
    if meta.get("choices"):
        desc.additional_constraints = "one of: " + ", ".join(str(c) for c in meta["choices"])
    return desc


def _plain(value: Any) -> Any:
    """Parameter value -> config value (rclpy gives arrays as ``array.array`` or tuples)."""
    return list(value) if isinstance(value, (list, tuple)) or hasattr(value, "tolist") else value


def declare_config_parameters(node: Any) -> SyncTVAConfig:
    """Declare every configuration key on ``node`` and return the configuration they give.

    ``runtime.profile`` is declared (and read) first; the profile's values are the
    defaults of the others; overrides (``-p``, ``--params-file``) are then applied.

    Args:
        node: an ``rclpy`` node (``declare_parameter``, ``get_parameter``).

    Returns:
        The live :class:`SyncTVAConfig` (profile + parameter values).

    Raises:
        ConfigError, FileNotFoundError: ``runtime.profile`` names no profile, or a
            parameter value is invalid for the schema.
        rclpy.exceptions.InvalidParameterValueException: an override outside its range.
    """
    meta = SyncTVAConfig.describe()
    base = SyncTVAConfig()
    profile = node.declare_parameter(
        "runtime.profile", base.runtime.profile,
        parameter_descriptor("runtime.profile", meta["runtime.profile"], base.runtime.profile)).value
    cfg = load_config(profile or None)
    cfg.runtime.profile = str(profile)
    flat = cfg.to_flat()
    for name, value in flat.items():
        if name == "runtime.profile":
            continue
        node.declare_parameter(name, value, parameter_descriptor(name, meta[name], value))
    cfg.update({name: _plain(node.get_parameter(name).value) for name in flat})
    return cfg


def declare_autostart(node: Any) -> bool:
    """Declare the read-only ``autostart`` parameter (default true) on ``node``; returns its value."""
    return bool(node.declare_parameter(AUTOSTART, True, ParameterDescriptor(
        name=AUTOSTART, read_only=True,
        description="Configure and activate on start-up (false: wait for a lifecycle manager).")).value)


def apply_parameter_updates(cfg: SyncTVAConfig, params: Iterable[Any]) -> tuple[SetParametersResult, set[str]]:
    """Validate run-time parameter changes against the schema, then apply them to ``cfg`` in place.

    Read-only parameters are refused by rclpy itself before this is called; the
    others are read from ``cfg`` at every use, so they take effect where the core reads
    them next (e.g. the windower's next decision). Who may call the node's parameter
    services at all is a matter of SROS2 access control (docs/security.md).

    Args:
        cfg: the node's live configuration.
        params: the ``rclpy.parameter.Parameter`` objects of one set-parameters request;
            names outside the schema (``autostart``, ``use_sim_time``) are left alone.

    Returns:
        The result for rclpy (unsuccessful with the schema's message when a value is
        invalid; then nothing is applied) and the names applied.
    """
    flat = SyncTVAConfig().to_flat()
    updates = {p.name: (list(p.value) if isinstance(p.value, (list, tuple)) else p.value)
               for p in params if p.name in flat}
    if not updates:
        return SetParametersResult(successful=True), set()
    try:
        copy.deepcopy(cfg).update(updates)
    except ConfigError as exc:
        return SetParametersResult(successful=False, reason=str(exc)), set()
    cfg.update(updates)
    return SetParametersResult(successful=True), set(updates)
