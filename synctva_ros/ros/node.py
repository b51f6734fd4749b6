"""The emotion node: a thin ROS 2 adapter around the ROS-free core.

It converts messages (:mod:`~synctva_ros.ros.conversions`), drives the utterance windower
(:mod:`~synctva_ros.ros.window_feed`), hands each closed window to the
:class:`~synctva_ros.ros.worker.InferenceWorker` thread that runs
:class:`~synctva_ros.pipeline.EmotionPipeline` (the executor never blocks on inference)
and publishes ``synctva_ros/EmotionState``. Parameters: :mod:`~synctva_ros.ros.parameters`;
``/diagnostics``: :mod:`~synctva_ros.ros.diagnostics`.

Lifecycle (design.ros2.org "Managed nodes", after ros2/demos ``lifecycle_py``): ``on_configure``
loads the checkpoint and creates the windower, worker, publishers, subscriptions and timers;
``on_activate``/``on_deactivate`` start/stop accepting input; ``on_cleanup``/``on_shutdown``
flush the pending windows and destroy everything. With ``autostart`` (default true) :func:`main`
configures and activates the node itself, so ``ros2 run synctva_ros emotion_node`` works
without a lifecycle manager.

Topics (relative names, so a namespace applies; names are parameters ``topics.*``):

====================  ===============================  ===================================
``camera/image_raw``  sensor_msgs/Image                in, ``topics.sensor_qos``
``audio``             synctva_ros/AudioChunk           in, ``topics.sensor_qos`` (or ``topics.audio_msg_type``)
``speech``            synctva_ros/Transcript           in, reliable (or ``topics.transcript_msg_type``)
``speech/text``       std_msgs/String                  in, reliable, stamped on arrival
``emotion_state``     synctva_ros/EmotionState         out, reliable (ids: :mod:`synctva_ros.core.persons`)
``/diagnostics``      diagnostic_msgs/DiagnosticArray  out, ``runtime.diagnostics_hz``
====================  ===============================  ===================================

ROS4HRI persons: :mod:`~.persons`; per-face ``hri_msgs/Expression`` (``output.expression_hz``): :mod:`~.expressions`.

Times: windows are cut in sensor time (header stamps; :mod:`synctva_ros.ros.window_feed`
drives the windower as the offline bag reader does); a timer also polls it with the node
clock, so ``use_sim_time`` with a bag's ``/clock`` closes the last window of a replay. Bad
input never stops the node: :class:`~synctva_ros.ros.counters.InputGate` drops it with a
throttled warning and counts it (``/diagnostics``: ``count.*``; ``windower.*`` for the
windower's stats). Camera frames that ``windowing.frame_keep_hz`` thins away are counted
but never decoded. With ``features.streaming`` the pipeline's streaming feature cache is
the windower's sink: audio descriptors and frame embeddings are computed in its own
thread while the utterance goes on.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecyclePublisher, LifecycleState, TransitionCallbackReturn
from rclpy.publisher import Publisher
from rclpy.signals import SignalHandlerOptions
from rclpy.subscription import Subscription
from rclpy.timer import Timer
from sensor_msgs.msg import Image
from std_msgs.msg import String

from synctva_ros.config import SyncTVAConfig
from synctva_ros.core.memory import HeapTrimmer, configure_allocator
from synctva_ros.core.persons import PersonRegistry, emotion_ids
from synctva_ros.msg import EmotionState
from synctva_ros.ros.conversions import (InputError, TranscriptFields, audio_msg_to_samples, image_msg_stamp,
                                         image_msg_to_rgb, result_to_msg, string_msg_to_fields,
                                         transcript_msg_to_fields)
from synctva_ros.ros.counters import Counters, InputGate
from synctva_ros.ros.diagnostics import diagnostic_array, emotion_status, status_values
from synctva_ros.ros.expressions import ExpressionOutput
from synctva_ros.ros.latency import LatencyStats
from synctva_ros.ros.log_bridge import RclpyLogHandler, bridge_core_logging, unbridge_core_logging
from synctva_ros.ros.persons import PersonSubscriptions
from synctva_ros.ros.parameters import AUTOSTART, apply_parameter_updates, declare_autostart, declare_config_parameters
from synctva_ros.ros.qos import reliable_qos, sensor_qos
from synctva_ros.ros.signals import stop_on_signals
from synctva_ros.ros.inputs import InputSubscriptions, import_optional_messages, input_type_problem, \
    missing_package_lines
from synctva_ros.ros.window_feed import WindowFeed
from synctva_ros.ros.worker import InferenceWorker
from synctva_ros.windowing.windower import UtteranceWindower

__all__ = ["EmotionNode", "POLL_HZ", "main"]

#: Rate (Hz) at which a timer polls the windower with the node clock.
POLL_HZ = 20.0
#: Longest wait for the worker to publish the pending windows at clean-up / shutdown, seconds.
_STOP_TIMEOUT_S = 30.0


def _default_pipeline(cfg: SyncTVAConfig) -> Any:
    # deferred: the pipeline imports torch and the feature extractors (seconds), not needed unconfigured
    from synctva_ros.pipeline import EmotionPipeline

    return EmotionPipeline.from_config(cfg)


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
        # handles first: destroy_node() must work even if the constructor fails half-way
        # (rclpy.try_shutdown() destroys every node registered with the context)
        self._counters = Counters(warn=lambda message: self.get_logger().warning(message))
        self.counters = self._counters.values
        self._gate = InputGate(self._counters, errors=(InputError,))  # shared path of the _on_* callbacks
        self._latency = LatencyStats()
        self._trimmer = HeapTrimmer()  # the worker's malloc_trim between windows; its counters in /diagnostics
        self._feed: WindowFeed | None = None  # the windower, driven by the callbacks
        self._pipeline: Any = None
        self._worker: InferenceWorker | None = None
        self._state_pub: LifecyclePublisher | None = None
        self._diag_pub: Publisher | None = None
        self._subs: list[Subscription] = []
        self._expressions: ExpressionOutput | None = None  # hri_msgs/Expression per tracked face
        self._poll_timer: Timer | None = None
        self._diag_timer: Timer | None = None
        self._log_handler: RclpyLogHandler | None = None
        super().__init__(node_name, **kwargs)
        self._log_handler = bridge_core_logging(self.get_logger())
        self._pipeline_factory = pipeline_factory or _default_pipeline
        self.cfg = declare_config_parameters(self)
        declare_autostart(self)
        self._optional_msgs = import_optional_messages()  # hri_msgs, audio_common_msgs, whisper_msgs if present
        self._persons = PersonRegistry()  # who is speaking (REP-155 persons), read as each window is emitted
        for line in missing_package_lines(self._optional_msgs):
            self.get_logger().info(line)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        # Steady no-op wake-up in every lifecycle state: returns control to Python so Ctrl-C is
        # seen within a second even while sim time is paused (main() installs no rclpy signal
        # handlers, so that pending windows can still be published on the way out).
        self._wake_timer = self.create_timer(1.0, lambda: None, clock=Clock(clock_type=ClockType.STEADY_TIME))

    def _on_set_parameters(self, params: list[Any]) -> SetParametersResult:
        result, applied = apply_parameter_updates(self.cfg, params)
        if "runtime.diagnostics_hz" in applied and self._diag_pub is not None:
            self._restart_diagnostics_timer()
        return result

    # ------------------------------------------------------------- lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load the checkpoint; create windower, worker, publishers, subscriptions, timers."""
        log = self.get_logger()
        problem = input_type_problem(self.cfg.topics, self._optional_msgs)
        if problem:  # before loading the model: a wrong input type fails at once
            log.error(f"configure failed: {problem}")
            return TransitionCallbackReturn.FAILURE
        try:
            t0 = time.monotonic()
            self._pipeline = self._pipeline_factory(self.cfg)
            # the pipeline's streaming cache (features.streaming) gets the kept audio and frames as they come,
            # and does its openSMILE / encoder work in its own thread (never in a ROS callback)
            stream = getattr(self._pipeline, "streaming", None)
            windower = UtteranceWindower(self.cfg.windowing, sample_rate=self.cfg.features.audio_sample_rate,
                                         sink=stream)
            if stream is not None:
                stream.annotate = self._persons.attribute  # its text stage at the transcript: the person, as at close
                stream.start()
        except Exception as exc:  # any load failure leaves the node unconfigured
            log.error(f"configure failed: {type(exc).__name__}: {exc}")
            self._pipeline = None
            return TransitionCallbackReturn.FAILURE
        log.info(f"model '{getattr(self._pipeline, 'name', '?')}' on backend "
                 f"'{getattr(self._pipeline, 'backend_name', '?')}' loaded in {time.monotonic() - t0:.1f} s "
                 f"(profile '{self.cfg.runtime.profile}')")

        t = self.cfg.topics
        sensor, reliable = sensor_qos(t.sensor_qos, t.qos_depth), reliable_qos(t.qos_depth)
        self._state_pub = self.create_lifecycle_publisher(EmotionState, t.emotion_state, reliable)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", reliable_qos(10))
        self._worker = InferenceWorker(predict=self._pipeline.predict, publish=self._publish_state,
                                       reject=self._counters.reject, published=self._on_published, idle=self._trimmer)
        self._worker.start()
        worker, persons = self._worker, self._persons
        self._feed = WindowFeed(windower, self._counters, submit=lambda w: worker.submit(persons.attribute(w)))
        self._subs = [
            self.create_subscription(Image, t.image, self._on_image, sensor),
            self.create_subscription(String, t.text, self._on_text, reliable),
        ]
        # microphone and speech-to-text in the types topics.audio_msg_type / transcript_msg_type choose
        InputSubscriptions(self, t, self._optional_msgs, sensor, reliable, audio=self._on_audio,
                           transcript=self._on_transcript, now=self._now_s, subs=self._subs).subscribe()
        PersonSubscriptions(self, t.persons_tracked, self._optional_msgs.get("hri_msgs", "IdsList"), persons, reliable,
                            self._subs).subscribe()
        self._expressions = ExpressionOutput(self, self.cfg.output, self._optional_msgs, self._pipeline, persons,
                                             self._gate)
        self._poll_timer = self.create_timer(1.0 / POLL_HZ, self._on_poll_timer)  # node clock: follows /clock
        self._restart_diagnostics_timer()
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Start accepting input (activates the lifecycle publisher)."""
        self._gate.active = True
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop accepting input; windows already queued are still processed."""
        self._gate.active = False
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Destroy what ``on_configure`` created (pending windows are discarded: the node is inactive)."""
        self._teardown(flush=False)
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Destroy everything (from any state); pending windows are published first when active."""
        self._teardown(flush=self._gate.active)
        return TransitionCallbackReturn.SUCCESS

    def autostart(self) -> bool:
        """Configure and activate (what a lifecycle manager would do). Returns success."""
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            return False
        return self.trigger_activate() == TransitionCallbackReturn.SUCCESS

    def _teardown(self, flush: bool) -> None:
        """Undo ``on_configure``: flush (optionally), stop the worker, destroy entities, close the pipeline."""
        if self._worker is None and self._feed is None:
            return
        self._gate.active = False
        if flush and self._feed is not None:
            try:
                self._feed.flush()  # the pending windows go to the worker, published before it stops
            except Exception as exc:
                self.get_logger().error(f"flush failed: {exc}")
        if self._worker is not None:
            if not self._worker.stop(_STOP_TIMEOUT_S):
                self.get_logger().error("worker did not finish its windows in time; abandoning them")
            self._worker = None
        for timer in (self._poll_timer, self._diag_timer):
            if timer is not None:
                self.destroy_timer(timer)
        for sub in self._subs:
            self.destroy_subscription(sub)
        if self._state_pub is not None:
            self.destroy_lifecycle_publisher(self._state_pub)
        if self._diag_pub is not None:
            self.destroy_publisher(self._diag_pub)
        if self._expressions is not None:
            self._expressions.close()
        self._subs = []
        self._poll_timer = self._diag_timer = self._state_pub = self._diag_pub = self._expressions = None
        if self._pipeline is not None and hasattr(self._pipeline, "close"):
            self._pipeline.close()
        self._feed = self._pipeline = None

    def destroy_node(self) -> None:
        """Flush (when active), tear down, detach the logging bridge, destroy the node."""
        self._teardown(flush=self._gate.active)
        if self._log_handler is not None:
            unbridge_core_logging(self._log_handler)
            self._log_handler = None
        super().destroy_node()

    # ------------------------------------------------------------- callbacks
    def _on_image(self, msg: Image) -> None:
        self._gate(msg, image_msg_stamp, lambda stamp: self._take_frame(msg, stamp))  # pixels not decoded yet

    def _take_frame(self, msg: Image, stamp: float) -> None:
        # ``now``: a header stamp of 0 (a driver that leaves it unset) is stamped on arrival by the windower,
        # for the thinning too. Frames the windower's thinning (windowing.frame_keep_hz) drops are never
        # decoded: at 30 fps 640x480 the decode is most of the node's sensor-side CPU time.
        feed, now = self._feed, self._now_s()
        self._persons.set_camera_frame(msg.header.frame_id)  # EmotionState.header.frame_id when a face is used
        if feed is None or feed.thin_frame(stamp, now):
            return
        self._gate(msg, image_msg_to_rgb,
                   lambda frame: self._add("image", frame[0], lambda w: w.add_frame(*frame, now=now), now))

    def _on_audio(self, msg: Any, convert: Callable[[Any], Any] = audio_msg_to_samples) -> None:
        now = self._now_s()
        self._gate(msg, convert,
                   lambda chunk: self._add("audio", chunk[0], lambda w: w.add_audio(*chunk, now=now), now))

    def _on_transcript(self, msg: Any, convert: Callable[[Any], Any] = transcript_msg_to_fields) -> None:
        self._gate(msg, convert, self._add_transcript)

    def _on_text(self, msg: String) -> None:
        self._gate(msg, lambda m: string_msg_to_fields(m, self._now_s()), self._add_transcript)

    def _add_transcript(self, fields: TranscriptFields) -> None:
        if fields.truncated:
            self._counters.reject("transcript_truncated",
                                  f"transcript longer than {len(fields.text)} characters: truncated")
        if fields.is_final and not fields.text.strip():
            # still added: the windower notes speech-to-text activity (VAD timeout) and makes no window
            self._counters.reject("empty_transcript", "final transcript is empty (no speech): no window")
        self._add("transcript", fields.stamp,
                  lambda w: w.add_transcript(**fields.windower_kwargs(), now=self._now_s()))

    def _add(self, stream: str, stamp: float, add: Callable[[UtteranceWindower], Any],
             now: float | None = None) -> None:
        feed = self._feed  # a 0 stamp is polled at the arrival time ``now`` (WindowFeed.add)
        if feed is not None:
            feed.add(stream, stamp, add, now)

    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_poll_timer(self) -> None:
        now = self._now_s()
        feed = self._feed
        if now > 0.0 and feed is not None:  # now 0: use_sim_time and no /clock yet
            feed.poll(now)

    # ------------------------------------------------- worker thread's output
    def _publish_state(self, window: Any, result: Any, latency_s: float) -> None:
        ids = emotion_ids(window, result.face_track_id, self.cfg.output.frame_id)  # the who-is-speaking policy
        self._state_pub.publish(result_to_msg(result, latency_s, dialogue_id=getattr(window, "dialogue_id", ""),
                                              **ids._asdict()))

    def _on_published(self, latency_s: float) -> None:
        self._counters.count("published")
        self._latency.add(latency_s)

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
        """Current status: level from the latency thresholds, values = counters and timings.

        See :mod:`synctva_ros.ros.diagnostics`; each call starts a new latency period.
        """
        latency, feed = self._latency.report(), self._feed
        values = status_values(self._counters.snapshot(), latency, self._worker.pending if self._worker else 0,
                               self._pipeline, feed.windower.stats if feed is not None else None, self._trimmer)
        rt = self.cfg.runtime
        return emotion_status(self.get_fully_qualified_name(), self._gate.active, latency, rt.latency_warn_s,
                              rt.latency_error_s, values)

    def _publish_diagnostics(self) -> None:
        if self._diag_pub is not None:
            self._diag_pub.publish(diagnostic_array(self.get_clock().now().to_msg(), [self.diagnostic_status()]))


def main(args: list[str] | None = None) -> int:
    """Console entry point ``emotion_node``: run the node until Ctrl-C or external shutdown.

    ROS arguments work as usual (``--ros-args -p runtime.backend:=onnxruntime --params-file config/emotion.yaml
    -r __ns:=/robot``). Returns the exit status: 0 on a normal stop, 1 when the node could not be created or configured.
    """
    # No rclpy signal handlers: they would shut the context down on Ctrl-C before the pending windows
    # are flushed and published; stop_on_signals() turns SIGINT and SIGTERM into KeyboardInterrupt.
    configure_allocator()  # before any thread starts: 2 glibc arenas, a fixed mmap threshold (core/memory.py)
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    with stop_on_signals():
        node: EmotionNode | None = None
        status = 0
        try:
            node = EmotionNode()
            if node.get_parameter(AUTOSTART).value and not node.autostart():
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
    return status


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
