"""The node's ``/diagnostics`` status: level from latency thresholds, values from counters and timings.

One ``diagnostic_msgs/DiagnosticStatus`` per report, as ROS diagnostics tools
(``rqt_robot_monitor``, the aggregator) read it; the thresholds are on the
window-close -> publish latency, as ROS4HRI nodes put them on processing time:

=======  =========================================================================
level    when
=======  =========================================================================
ERROR    the worst latency since the last report > ``runtime.latency_error_s``
WARN     it is > ``runtime.latency_warn_s``, or the node is not active
OK       otherwise
=======  =========================================================================

Values (``KeyValue``, strings): ``count.<name>`` (messages in, windows, published,
rejected by kind; sorted), ``latency.last_s``, ``latency.max_period_s``,
``latency.p50_s``/``latency.p95_s`` (once a window was published), ``queue``
(windows waiting for inference), ``model``, ``backend`` (with backend triton also ``backend.<counter>``:
``triton``, ``fallback``, ``failures``, ``bad_replies``, ``skipped``), ``windower.<stat>`` and
``streaming.<stat>`` / ``streaming.<info>`` (where each window's features came from), and once a
pipeline exists ``checkpoint.<outcome>`` (checkpoint loads in this process by integrity outcome:
``verified``, ``unrecorded``, ``refused``; :mod:`synctva_ros.checkpoint.integrity`) and
``engine_cache.<outcome>`` (cached ONNX/TensorRT files: ``hits``, ``builds``, ``rebuilt_mismatch``;
:mod:`synctva_ros.backends.engine_cache`), and with the worker's heap trimmer ``memory.trims``,
``memory.trims_skipped`` (calls within ``TRIM_INTERVAL_S`` of the last trim, or no glibc), ``memory.trim_s``
(the trims' total time, seconds) and ``memory.arena_max`` (the glibc malloc arena limit in effect: ``2`` as the
node's ``main`` sets it, the environment's ``MALLOC_ARENA_MAX``, or ``default``) and ``memory.mmap_threshold`` (bytes:
``524288`` as ``main`` fixes it, the environment's ``MALLOC_MMAP_THRESHOLD_``, or ``default``;
:mod:`synctva_ros.core.memory`).
"""

from __future__ import annotations

from typing import Any, Mapping

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from synctva_ros.backends.engine_cache import cache_counters
from synctva_ros.checkpoint.integrity import counters as integrity_counters
from synctva_ros.core.memory import arena_max, mmap_threshold
from synctva_ros.ros.latency import LatencySnapshot

__all__ = ["latency_level", "status_values", "emotion_status", "diagnostic_array"]


def latency_level(active: bool, worst_s: float, warn_s: float, error_s: float) -> tuple[bytes, str]:
    """Level and message of the status.

    Args:
        active: whether the node is in its *active* lifecycle state.
        worst_s: worst window-close -> publish latency of the period, seconds.
        warn_s: ``runtime.latency_warn_s``, seconds.
        error_s: ``runtime.latency_error_s``, seconds.

    Returns:
        ``(DiagnosticStatus.OK | WARN | ERROR, message)``: ``"inactive"``,
        ``"latency 1.234 s > 1.000 s"`` or ``"ok"``.
    """
    if not active:
        return DiagnosticStatus.WARN, "inactive"
    if worst_s > error_s:
        return DiagnosticStatus.ERROR, f"latency {worst_s:.3f} s > {error_s:.3f} s"
    if worst_s > warn_s:
        return DiagnosticStatus.WARN, f"latency {worst_s:.3f} s > {warn_s:.3f} s"
    return DiagnosticStatus.OK, "ok"


def status_values(counters: Mapping[str, int], latency: LatencySnapshot, queue: int, pipeline: Any,
                  windower_stats: Mapping[str, Any] | None = None, trimmer: Any = None) -> dict[str, str]:
    """The status's key/value pairs, in report order (see the module docstring).

    Args:
        counters: the node's counters.
        latency: this report's latencies.
        queue: windows waiting for the worker.
        pipeline: the pipeline, or None before configure: its ``name`` and
            ``backend_name`` (empty when absent), and its ``streaming`` cache, whose
            ``describe()`` gives a ``stats`` dict plus other information (None: no streaming).
        windower_stats: the windower's stats (None: not configured).
        trimmer: the inference worker's :class:`~synctva_ros.core.memory.HeapTrimmer` (its ``stats()``), or None:
            no ``memory.*`` values.

    Returns:
        ``{key: value}``, all strings; latencies with 4 decimals (seconds).
    """
    values = {f"count.{k}": str(v) for k, v in sorted(counters.items())}
    values["latency.last_s"] = f"{latency.last_s:.4f}"
    values["latency.max_period_s"] = f"{latency.worst_s:.4f}"
    if latency.p50_s is not None and latency.p95_s is not None:
        values["latency.p50_s"] = f"{latency.p50_s:.4f}"
        values["latency.p95_s"] = f"{latency.p95_s:.4f}"
    values["queue"] = str(queue)
    values["model"] = str(getattr(pipeline, "name", ""))
    values["backend"] = str(getattr(pipeline, "backend_name", ""))
    backend_counts = getattr(getattr(pipeline, "backend", None), "counters", None)
    if callable(backend_counts):  # backend triton: windows per answering backend, failures, refused replies
        for k, v in sorted(backend_counts().items()):
            values[f"backend.{k}"] = str(v)
    for k, v in (windower_stats or {}).items():
        values[f"windower.{k}"] = str(v)
    stream = getattr(pipeline, "streaming", None)
    if stream is not None:
        info = dict(stream.describe())
        for k, v in sorted(info.pop("stats").items()):
            values[f"streaming.{k}"] = str(v)
        for k, v in info.items():
            values[f"streaming.{k}"] = str(v)
    if pipeline is not None:
        for k, v in sorted(integrity_counters().items()):
            values[f"checkpoint.{k}"] = str(v)
        for k, v in sorted(cache_counters().items()):
            values[f"engine_cache.{k}"] = str(v)
    if trimmer is not None:
        for k, v in trimmer.stats().items():
            values[f"memory.{k}"] = f"{v:.4f}" if isinstance(v, float) else str(v)
        values["memory.arena_max"] = arena_max()
        values["memory.mmap_threshold"] = mmap_threshold()
    return values


def emotion_status(name: str, active: bool, latency: LatencySnapshot, warn_s: float, error_s: float,
                   values: Mapping[str, str]) -> DiagnosticStatus:
    """The node's ``DiagnosticStatus``.

    Args:
        name: the node's fully qualified name (the status is ``"<name>: emotion recognition"``).
        active: whether the node is active (inactive is WARN).
        latency: this report's latencies (``worst_s`` is judged).
        warn_s, error_s: the WARN and ERROR latency thresholds, seconds.
        values: :func:`status_values`.
    """
    level, message = latency_level(active, latency.worst_s, warn_s, error_s)
    return DiagnosticStatus(level=level, name=f"{name}: emotion recognition", message=message, hardware_id="",
                            values=[KeyValue(key=k, value=v) for k, v in values.items()])


def diagnostic_array(stamp: Time, statuses: list[DiagnosticStatus]) -> DiagnosticArray:
    """``diagnostic_msgs/DiagnosticArray`` stamped ``stamp`` (the node clock) with ``statuses``."""
    msg = DiagnosticArray()
    msg.header.stamp = stamp
    msg.status = list(statuses)
    return msg
