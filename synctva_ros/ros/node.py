"""The emotion node: a thin ROS 2 adapter around the ROS-free core.

It converts messages (:mod:`synctva_ros.ros.conversions`), feeds the
:class:`~synctva_ros.windowing.windower.UtteranceWindower`, hands each closed
utterance window to one worker thread that runs
:class:`~synctva_ros.pipeline.EmotionPipeline`, and publishes
``synctva_ros/EmotionState``. The executor never blocks on inference.

Lifecycle (managed node, design.ros2.org "Managed nodes"; after ros2/demos ``lifecycle_py``):
``on_configure`` loads the checkpoint and creates the windower, subscriptions,
publishers, timers and worker; ``on_activate`` starts accepting input;
``on_deactivate`` stops it; ``on_cleanup``/``on_shutdown`` flush the pending
windows and destroy everything. With ``autostart`` (default true) :func:`main`
configures and activates the node itself, so ``ros2 run synctva_ros emotion_node``
works without a lifecycle manager.

Topics (relative names, so a namespace applies; names are parameters ``topics.*``):

==================  ===========================  ====================================
``camera/image_raw``  sensor_msgs/Image          in, ``topics.sensor_qos``
``audio``             synctva_ros/AudioChunk     in, ``topics.sensor_qos``
``speech``            synctva_ros/Transcript     in, reliable
``speech/text``       std_msgs/String            in, reliable, stamped on arrival
``emotion_state``     synctva_ros/EmotionState   out, reliable
``/diagnostics``      diagnostic_msgs/DiagnosticArray  out, ``runtime.diagnostics_hz``
==================  ===========================  ====================================

Parameters: every key of :meth:`SyncTVAConfig.to_flat` (``section.key``) with a
descriptor (description, range, read-only, choices); ``runtime.profile`` is read
first and the profile's values are the defaults. Plus ``autostart`` (bool).

Times: windows are cut in sensor time (header stamps): each message is added to
the windower, which is then polled with ``now`` = its stamp (as the offline bag
reader does); a timer also polls with the node clock, so ``use_sim_time`` with a
bag's ``/clock`` closes the last window of a replay. Bad input never stops the
node: it is dropped with a throttled warning and counted (``/diagnostics``:
``count.*`` for what the node rejects, ``windower.*`` for the windower's stats).

Streaming (``features.streaming``): the pipeline's
:class:`~synctva_ros.streaming.StreamingFeatureCache` is the windower's sink and runs in
its own thread, so openSMILE low-level descriptors and frame embeddings are computed
while the utterance goes on; ``/diagnostics`` reports where each window's features came
from (``streaming.audio_cache``, ``streaming.audio_batch:<reason>``, ``streaming.visual_*``).
Camera frames that ``windowing.frame_keep_hz`` thins away are counted but never decoded.
"""

from __future__ import annotations

import copy
import faulthandler
import logging
import math
import queue
import signal
import threading
import time
from collections import deque
from typing import Any, Callable

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.signals import SignalHandlerOptions
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import String

from synctva_ros.config import ConfigError, SyncTVAConfig, load_config
from synctva_ros.msg import AudioChunk, EmotionState, Transcript
from synctva_ros.ros.conversions import (InputError, audio_msg_to_samples, image_msg_stamp, image_msg_to_rgb,
                                         result_to_msg,
                                         string_msg_to_fields, transcript_msg_to_fields)

__all__ = ["EmotionNode", "RclpyLogHandler", "parameter_descriptor", "main"]

#: Windower counters it does not log itself; the node warns (throttled) when they move.
_SILENT_WINDOWER_COUNTERS = {
    "out_of_order": "stamp older than the previous message of the stream (inserted in order)",
}
#: Windower counters compared before/after each message.
_WATCHED_WINDOWER_COUNTERS = ("time_resets", *_SILENT_WINDOWER_COUNTERS)
#: Rate (Hz) at which a timer polls the windower with the node clock.
POLL_HZ = 20.0
#: Most windows waiting for the worker; beyond it the oldest is dropped (counted).
MAX_PENDING_WINDOWS = 16
#: Minimum seconds between two warnings of the same kind.
WARN_PERIOD_S = 5.0

_STOP = object()
_RESET = object()

_LEVELS = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning", logging.ERROR: "error",
           logging.CRITICAL: "fatal"}


class RclpyLogHandler(logging.Handler):
    """Python ``logging`` -> rclpy logger bridge, so warnings of the core show in ROS logs.

    Records of the ``synctva_ros`` logger tree are forwarded to ``ros_logger``
    (an ``RcutilsLogger``) with the same severity and the logger name as prefix.
    """

    def __init__(self, ros_logger: Any) -> None:
        super().__init__(logging.DEBUG)
        self._ros_logger = ros_logger

    def emit(self, record: logging.LogRecord) -> None:  # noqa: D102 (logging API)
        try:
            text = f"[{record.name}] {self.format(record)}"
            level = max(k for k in _LEVELS if k <= max(record.levelno, logging.DEBUG))
            getattr(self._ros_logger, _LEVELS[level])(text)
        except Exception:  # a log call must never raise into the core
            self.handleError(record)


def parameter_descriptor(name: str, meta: dict[str, Any], value: Any) -> ParameterDescriptor:
    """ROS parameter descriptor for one config key (``rcl_interfaces/msg/ParameterDescriptor``: description, range, read-only).

    Args:
        name: ``section.key``.
        meta: :meth:`SyncTVAConfig.describe` entry (description, range, read_only, choices).
        value: the default, whose type chooses a floating-point or an integer range.
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


def _sensor_qos(kind: str, depth: int) -> QoSProfile:
    if kind == "sensor_data":
        qos = copy.copy(qos_profile_sensor_data)
        qos.depth = depth
        return qos
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def _reliable_qos(depth: int) -> QoSProfile:
    return _sensor_qos("reliable", depth)


class EmotionNode(LifecycleNode):
    """Sync-TVA emotion recognition as a managed ROS 2 node.

    Args:
        node_name: ROS node name (default ``emotion_node``).
        pipeline_factory: builds the pipeline from the configuration; default
            :meth:`synctva_ros.pipeline.EmotionPipeline.from_config`.
        **kwargs: passed to :class:`rclpy.lifecycle.LifecycleNode` (``namespace``,
            ``parameter_overrides``, ``context``, ...).

    Raises:
        ConfigError, FileNotFoundError: ``runtime.profile`` names no profile, or a
            parameter value is invalid for the configuration schema.
        rclpy.exceptions.InvalidParameterValueException: an override outside its range.

    Attributes:
        cfg: the live :class:`SyncTVAConfig` (parameters applied).
        counters: diagnostics counters (messages in, windows, published, rejected by kind).
    """

    def __init__(self, node_name: str = "emotion_node", *,
                 pipeline_factory: Callable[[SyncTVAConfig], Any] | None = None, **kwargs: Any) -> None:
        # state first: destroy_node() must work even if the constructor fails half-way
        # (rclpy.try_shutdown() destroys every node registered with the context)
        self.counters: dict[str, int] = {}
        self._counter_lock = threading.Lock()
        self._warned_at: dict[str, float] = {}
        self._lock = threading.RLock()  # windower
        self._active = False
        self._windower: Any = None
        self._pipeline: Any = None
        self._queue: queue.Queue = queue.Queue()
        self._worker: threading.Thread | None = None
        self._latencies: deque[float] = deque(maxlen=256)
        self._period_latencies: list[float] = []
        self._last_latency = float("nan")
        self._subs: list[Any] = []
        self._my_timers: list[Any] = []
        self._state_pub: Any = None
        self._diag_pub: Any = None
        self._diag_timer: Any = None
        self._log_handler = None
        super().__init__(node_name, **kwargs)
        self._log_handler = RclpyLogHandler(self.get_logger())
        self._core_logger = logging.getLogger("synctva_ros")
        self._core_logger.addHandler(self._log_handler)
        self._core_logger.setLevel(logging.INFO)
        self._core_logger.propagate = False
        self._pipeline_factory = pipeline_factory
        self.cfg = self._declare_config_parameters()
        self.declare_parameter("autostart", True, ParameterDescriptor(
            name="autostart", read_only=True,
            description="Configure and activate on start-up (false: wait for a lifecycle manager)."))
        self.add_on_set_parameters_callback(self._on_set_parameters)
        # Steady no-op wake-up in every lifecycle state: returns control to Python so Ctrl-C is
        # seen within a second even while sim time is paused (main() installs no rclpy signal
        # handlers, so that pending windows can still be published on the way out).
        self._wake_timer = self.create_timer(1.0, lambda: None, clock=Clock(clock_type=ClockType.STEADY_TIME))


    # ------------------------------------------------------------ parameters
    def _declare_config_parameters(self) -> SyncTVAConfig:
        meta = SyncTVAConfig.describe()
        base = SyncTVAConfig()
        profile = self.declare_parameter(
            "runtime.profile", base.runtime.profile,
            parameter_descriptor("runtime.profile", meta["runtime.profile"], base.runtime.profile)).value
        cfg = load_config(profile or None)
        cfg.runtime.profile = str(profile)
        flat = cfg.to_flat()
        for name, value in flat.items():
            if name == "runtime.profile":
                continue
            self.declare_parameter(name, value, parameter_descriptor(name, meta[name], value))
        values = {name: self.get_parameter(name).value for name in flat}
        values = {k: (list(v) if isinstance(v, (list, tuple)) or hasattr(v, "tolist") else v)
                  for k, v in values.items()}
        cfg.update(values)
        return cfg

    def _on_set_parameters(self, params: list[Any]) -> SetParametersResult:
        """Validate run-time changes against the schema, then apply them to ``cfg`` in place.

        Read-only parameters are refused by rclpy itself; the others take effect
        where the core reads them next (e.g. the windower's next decision).
        """
        flat = SyncTVAConfig().to_flat()
        updates = {p.name: (list(p.value) if isinstance(p.value, (list, tuple)) else p.value)
                   for p in params if p.name in flat}
        if not updates:
            return SetParametersResult(successful=True)
        try:
            copy.deepcopy(self.cfg).update(updates)
        except ConfigError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        self.cfg.update(updates)
        if "runtime.diagnostics_hz" in updates and self._diag_pub is not None:
            self._restart_diagnostics_timer()
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------- lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load the checkpoint; create windower, subscriptions, publishers, timers, worker."""
        from synctva_ros.windowing.windower import UtteranceWindower

        log = self.get_logger()
        try:
            factory = self._pipeline_factory
            if factory is None:
                from synctva_ros.pipeline import EmotionPipeline

                factory = EmotionPipeline.from_config
            t0 = time.monotonic()
            self._pipeline = factory(self.cfg)
            # the pipeline's streaming cache (features.streaming) gets the kept audio and frames as they come,
            # and does its openSMILE / encoder work in its own thread (never in a ROS callback)
            stream = getattr(self._pipeline, "streaming", None)
            self._windower = UtteranceWindower(self.cfg.windowing, sample_rate=self.cfg.features.audio_sample_rate,
                                               sink=stream)
            if stream is not None:
                stream.start()
        except Exception as exc:  # any load failure leaves the node unconfigured
            log.error(f"configure failed: {type(exc).__name__}: {exc}")
            self._pipeline = self._windower = None
            return TransitionCallbackReturn.FAILURE
        log.info(f"model '{getattr(self._pipeline, 'name', '?')}' on backend "
                 f"'{getattr(self._pipeline, 'backend_name', '?')}' loaded in {time.monotonic() - t0:.1f} s "
                 f"(profile '{self.cfg.runtime.profile}')")

        t = self.cfg.topics
        sensor = _sensor_qos(t.sensor_qos, t.qos_depth)
        reliable = _reliable_qos(t.qos_depth)
        self._state_pub = self.create_lifecycle_publisher(EmotionState, t.emotion_state, reliable)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", _reliable_qos(10))
        self._subs = [
            self.create_subscription(Image, t.image, self._on_image, sensor),
            self.create_subscription(AudioChunk, t.audio, self._on_audio, sensor),
            self.create_subscription(Transcript, t.transcript, self._on_transcript, reliable),
            self.create_subscription(String, t.text, self._on_text, reliable),
        ]
        self._my_timers = [
            self.create_timer(1.0 / POLL_HZ, self._on_poll_timer),  # node clock: follows /clock
        ]
        self._restart_diagnostics_timer()
        self._queue = queue.Queue()
        self._worker = threading.Thread(target=self._worker_loop, name="synctva_worker", daemon=True)
        self._worker.start()
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Start accepting input (activates the lifecycle publisher)."""
        self._active = True
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop accepting input; windows already queued are still processed."""
        self._active = False
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Destroy what ``on_configure`` created (pending windows are discarded: the node is inactive)."""
        self._teardown(flush=False)
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Destroy everything (from any state); pending windows are published first when active."""
        self._teardown(flush=self._active)
        return TransitionCallbackReturn.SUCCESS

    def autostart(self) -> bool:
        """Configure and activate (what a lifecycle manager would do). Returns success."""
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            return False
        return self.trigger_activate() == TransitionCallbackReturn.SUCCESS

    def _teardown(self, flush: bool, timeout_s: float = 30.0) -> None:
        if self._worker is None and self._windower is None:
            return
        self._active = False
        if flush and self._windower is not None:
            with self._lock:
                try:
                    pending = list(self._windower.flush())
                except Exception as exc:
                    self.get_logger().error(f"flush failed: {exc}")
                    pending = []
            for window in pending:
                self._enqueue(window)
        if self._worker is not None:
            self._queue.put(_STOP)
            self._worker.join(timeout_s)
            if self._worker.is_alive():
                self.get_logger().error("worker did not finish its windows in time; abandoning them")
            self._worker = None
        for timer in self._my_timers + ([self._diag_timer] if self._diag_timer else []):
            self.destroy_timer(timer)
        for sub in self._subs:
            self.destroy_subscription(sub)
        if self._state_pub is not None:
            self.destroy_lifecycle_publisher(self._state_pub)
        if self._diag_pub is not None:
            self.destroy_publisher(self._diag_pub)
        self._my_timers, self._subs = [], []
        self._diag_timer = self._state_pub = self._diag_pub = None
        if self._pipeline is not None and hasattr(self._pipeline, "close"):
            self._pipeline.close()
        self._windower = self._pipeline = None

    def destroy_node(self) -> None:
        """Flush (when active), tear down, detach the logging bridge, destroy the node."""
        self._teardown(flush=self._active)
        if self._log_handler is not None:
            self._core_logger.removeHandler(self._log_handler)
            self._core_logger.propagate = True
            self._log_handler = None
        super().destroy_node()

    # -------------------------------------------------------------- counters
    def _count(self, key: str, n: int = 1) -> None:
        with self._counter_lock:
            self.counters[key] = self.counters.get(key, 0) + n

    def _reject(self, kind: str, message: str) -> None:
        """Count a rejected input (``count.<kind>``) and warn, throttled per kind."""
        self._count(kind)
        self._warn_throttled(kind, f"{message} [{kind}: {self.counters.get(kind, 0)} so far]")

    def _warn_throttled(self, kind: str, message: str) -> None:
        """Warn at most every :data:`WARN_PERIOD_S` seconds per ``kind``."""
        now = time.monotonic()
        last = self._warned_at.get(kind)
        if last is None or now - last >= WARN_PERIOD_S:
            self._warned_at[kind] = now
            self.get_logger().warning(message)

    # ------------------------------------------------------------- callbacks
    def _feed(self, stream: str, stamp: float, add: Callable[[], Any]) -> None:
        """``add()`` into the windower, then poll with ``now`` = the message stamp.

        This is exactly how :func:`synctva_ros.bags.reader.windows_from_bag` drives the
        windower, so live topics and a bag read offline give the same windows. The
        windower handles order, duplicates and time resets itself (counted in its
        stats, reported as ``windower.*`` in /diagnostics); the node adds a throttled
        warning for the counters the windower does not log.
        """
        with self._lock:
            if self._windower is None:
                return
            w = self._windower
            before = {key: w.count(key) for key in _WATCHED_WINDOWER_COUNTERS}
            try:
                add()
            except ValueError as exc:  # the windower does not raise for bad data; be safe anyway
                self._reject(f"bad_{stream}", f"{stream} rejected by the windower: {exc}")
                return
            self._count(f"{stream}_in")
            if w.count("time_resets") > before["time_resets"]:
                self._queue.put(_RESET)  # a new session: forget the dialogue context too
            for key, what in _SILENT_WINDOWER_COUNTERS.items():
                n = w.count(key)
                if n > before[key]:
                    self._warn_throttled(f"windower.{key}", f"{stream} at {stamp:.3f} s: {what} [windower.{key}: "
                                                            f"{n} so far]")
            self._poll_locked(stamp)

    def _on_image(self, msg: Image) -> None:
        if not self._active:
            return
        try:
            stamp = image_msg_stamp(msg)  # layout checked, pixels not decoded yet
        except InputError as exc:
            self._reject(exc.kind, str(exc))
            return
        # Frames the windower's thinning (windowing.frame_keep_hz) drops are never decoded: at 30 fps
        # 640x480 the decode is most of the node's sensor-side CPU time.
        with self._lock:
            if self._windower is None:
                return
            if self._windower.thin_frame(stamp):  # counted by the windower as thinned_frames
                self._count("image_in")
                self._poll_locked(stamp)
                return
        try:
            stamp, rgb = image_msg_to_rgb(msg)
        except InputError as exc:
            self._reject(exc.kind, str(exc))
            return
        self._feed("image", stamp, lambda: self._windower.add_frame(stamp, rgb))

    def _on_audio(self, msg: AudioChunk) -> None:
        if not self._active:
            return
        try:
            stamp, samples, rate = audio_msg_to_samples(msg)
        except InputError as exc:
            self._reject(exc.kind, str(exc))
            return
        self._feed("audio", stamp, lambda: self._windower.add_audio(stamp, samples, rate))

    def _on_transcript(self, msg: Transcript) -> None:
        if not self._active:
            return
        try:
            fields = transcript_msg_to_fields(msg)
        except InputError as exc:
            self._reject(exc.kind, str(exc))
            return
        self._add_transcript(fields)

    def _on_text(self, msg: String) -> None:
        if not self._active:
            return
        try:
            fields = string_msg_to_fields(msg, self._now_s())
        except InputError as exc:
            self._reject(exc.kind, str(exc))
            return
        self._add_transcript(fields)

    def _add_transcript(self, fields: Any) -> None:
        if fields.truncated:
            self._reject("transcript_truncated", f"transcript longer than {len(fields.text)} characters: truncated")
        if fields.is_final and not fields.text.strip():
            # still added: the windower notes speech-to-text activity (VAD timeout) and makes no window
            self._reject("empty_transcript", "final transcript is empty (no speech): no window")
        self._feed("transcript", fields.stamp, lambda: self._windower.add_transcript(**fields.windower_kwargs()))

    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_poll_timer(self) -> None:
        now = self._now_s()
        if now <= 0.0:  # use_sim_time and no /clock yet
            return
        with self._lock:
            if self._windower is not None:
                self._poll_locked(now)

    def _poll_locked(self, now: float) -> None:
        try:
            windows = self._windower.poll(now)
        except Exception as exc:
            self._reject("windower_errors", f"windower poll failed: {type(exc).__name__}: {exc}")
            return
        for window in windows:
            self._enqueue(window)

    def _enqueue(self, window: Any) -> None:
        self._count("windows")
        while self._queue.qsize() >= MAX_PENDING_WINDOWS:
            try:
                dropped = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(dropped, tuple):
                self._reject("windows_dropped", f"inference is {MAX_PENDING_WINDOWS} windows behind: "
                                                "oldest window dropped")
        self._queue.put((window, time.monotonic()))

    # ---------------------------------------------------------------- worker
    def _worker_loop(self) -> None:
        pipeline = self._pipeline
        publisher = self._state_pub
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if item is _RESET:
                if hasattr(pipeline, "reset_dialogue"):
                    pipeline.reset_dialogue()
                continue
            window, closed_at = item
            try:
                result = pipeline.predict(window)
                latency = time.monotonic() - closed_at
                msg = result_to_msg(result, latency, dialogue_id=getattr(window, "dialogue_id", ""))
                publisher.publish(msg)
            except Exception as exc:
                self._reject("pipeline_errors", f"window [{window.start:.3f}, {window.end:.3f}] s failed: "
                                                f"{type(exc).__name__}: {exc}")
                continue
            self._count("published")
            with self._counter_lock:
                self._last_latency = latency
                self._latencies.append(latency)
                self._period_latencies.append(latency)

    # ----------------------------------------------------------- diagnostics
    def _restart_diagnostics_timer(self) -> None:
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = None
        hz = self.cfg.runtime.diagnostics_hz
        if hz > 0.0:
            # steady clock: diagnostics keep coming while sim time is paused
            self._diag_timer = self.create_timer(1.0 / hz, self._publish_diagnostics,
                                                 clock=Clock(clock_type=ClockType.STEADY_TIME))

    def diagnostic_status(self) -> DiagnosticStatus:
        """Current status: level from latency thresholds, values = counters and timings.

        Level: ERROR when the worst window-close -> publish latency since the last
        report exceeds ``runtime.latency_error_s``, WARN above ``runtime.latency_warn_s``
        or while the node is not active, else OK.
        """
        with self._counter_lock:
            counters = dict(self.counters)
            period = self._period_latencies
            self._period_latencies = []
            last = self._last_latency
            recent = sorted(self._latencies)
        worst = max(period) if period else (last if math.isfinite(last) else 0.0)
        rt = self.cfg.runtime
        if not self._active:
            level, message = DiagnosticStatus.WARN, "inactive"
        elif worst > rt.latency_error_s:
            level, message = DiagnosticStatus.ERROR, f"latency {worst:.3f} s > {rt.latency_error_s:.3f} s"
        elif worst > rt.latency_warn_s:
            level, message = DiagnosticStatus.WARN, f"latency {worst:.3f} s > {rt.latency_warn_s:.3f} s"
        else:
            level, message = DiagnosticStatus.OK, "ok"
        values = {f"count.{k}": str(v) for k, v in sorted(counters.items())}
        values["latency.last_s"] = f"{last:.4f}"
        values["latency.max_period_s"] = f"{worst:.4f}"
        if recent:
            values["latency.p50_s"] = f"{recent[len(recent) // 2]:.4f}"
            values["latency.p95_s"] = f"{recent[min(len(recent) - 1, int(0.95 * len(recent)))]:.4f}"
        values["queue"] = str(self._queue.qsize())
        values["model"] = str(getattr(self._pipeline, "name", ""))
        values["backend"] = str(getattr(self._pipeline, "backend_name", ""))
        if self._windower is not None:
            for k, v in self._windower.stats.items():
                values[f"windower.{k}"] = str(v)
        stream = getattr(self._pipeline, "streaming", None)
        if stream is not None:
            info = stream.describe()
            for k, v in sorted(info.pop("stats").items()):
                values[f"streaming.{k}"] = str(v)
            for k, v in info.items():
                values[f"streaming.{k}"] = str(v)
        return DiagnosticStatus(level=level, name=f"{self.get_fully_qualified_name()}: emotion recognition",
                                message=message, hardware_id="",
                                values=[KeyValue(key=k, value=v) for k, v in values.items()])

    def _publish_diagnostics(self) -> None:
        if self._diag_pub is None:
            return
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.status = [self.diagnostic_status()]
        self._diag_pub.publish(msg)


def main(args: list[str] | None = None) -> int:
    """Console entry point ``emotion_node``: run the node until Ctrl-C or external shutdown.

    ROS arguments work as usual (``--ros-args -p runtime.backend:=onnxruntime
    --params-file config/emotion.yaml -r __ns:=/robot``). Returns the exit status:
    0 on a normal stop, 1 when the node could not be created or configured.
    """
    # No rclpy signal handlers: they would shut the context down on Ctrl-C before the pending
    # windows are flushed and published. SIGINT raises KeyboardInterrupt; SIGTERM (launch's
    # escalation) does the same.
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    # Explicitly, as rclpy's own handlers would: a parent that ignores SIGINT (a shell's background job
    # without job control) passes SIG_IGN on, and Python then installs no KeyboardInterrupt handler, so
    # `ros2 launch`'s or a test's SIGINT would be ignored and the node killed without flushing.
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    previous_term = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    if hasattr(signal, "SIGUSR1"):  # `kill -USR1 <pid>`: every thread's Python stack to stderr (a hang)
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    node: EmotionNode | None = None
    status = 0
    try:
        node = EmotionNode()
        if node.get_parameter("autostart").value and not node.autostart():
            node.get_logger().fatal("could not configure/activate; exiting (set autostart:=false to use "
                                    "a lifecycle manager)")
            status = 1
        else:
            executor = SingleThreadedExecutor()
            executor.add_node(node)
            executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as exc:  # parameter / profile errors at start-up
        rclpy.logging.get_logger("emotion_node").fatal(f"{type(exc).__name__}: {exc}")
        status = 1
    finally:
        if node is not None:
            try:
                node.destroy_node()
            except Exception as exc:
                rclpy.logging.get_logger("emotion_node").error(f"shutdown: {exc}")
        rclpy.try_shutdown()
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGINT, previous_int)
    return status


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
