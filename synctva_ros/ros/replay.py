"""Replay a rosbag2 bag onto live ROS 2 topics with its original timing (no ``ros2 bag`` needed).

``rosbag2_py`` and ``ros2 bag`` cannot be installed from PyPI (they come only with a ROS 2 install);
this player reads the bag with rosbags 0.11 and publishes each message's raw
CDR bytes (``Publisher.publish(bytes)``) on its topic, so nothing is decoded
and the message arrives byte-for-byte as recorded. Timing follows the bag's
log time scaled by ``1 / rate``; ``rosgraph_msgs/Clock`` on ``/clock`` carries
the bag time (before every message with a new time and at ``clock_hz`` while
waiting), so nodes with ``use_sim_time`` follow the bag, as with ``ros2 bag
play --clock``.

Durability follows the bag's recorded offered QoS: topics recorded from transient-local publishers
(REP-155's latched ``/humans/persons/<id>/voice_id`` etc.) are replayed transient-local, so a node that
subscribes after they were published (it learns the person ids from a tracked list first) still receives
them; everything else is reliable and volatile. The wait for subscribers leaves out the per-id ROS4HRI
topics (``/humans/voices/<id>/...``, ``/humans/persons/<id>/...``): nodes subscribe to those only after
hearing a tracked list, i.e. after the replay has started.

Message classes are imported from the type names stored in the bag
(``pkg/msg/Name`` -> ``pkg.msg.Name``); topics whose type cannot be imported
(e.g. ``synctva_ros/msg/*`` before the interfaces are built) are skipped with a
warning.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from pathlib import Path
from typing import Any, Iterable

import rclpy
from rclpy.context import Context
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rosbags.highlevel import AnyReader
from rosbags.interfaces import QosDurability

from synctva_ros.bags.types import get_synctva_typestore
from synctva_ros.core.hri_fields import voice_id_from_topic
from synctva_ros.core.persons import person_from_topic

__all__ = ["import_message_class", "recorded_latched", "replay_bag"]

log = logging.getLogger(__name__)


#: Wait after every subscriber is seen, before the first message (seconds): the subscribers' side of discovery.
_SETTLE_S = 0.5


def import_message_class(msgtype: str) -> type:
    """``"sensor_msgs/msg/Image"`` (or ``"sensor_msgs/Image"``) -> ``sensor_msgs.msg.Image``.

    Raises:
        ImportError: the package is not installed or has no such message.
        ValueError: malformed type name.
    """
    parts = msgtype.split("/")
    if len(parts) == 2:
        parts = [parts[0], "msg", parts[1]]
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"malformed message type name '{msgtype}'")
    pkg, kind, name = parts
    module = importlib.import_module(f"{pkg}.{kind}")
    try:
        return getattr(module, name)
    except AttributeError:
        raise ImportError(f"{pkg}.{kind} has no message '{name}'") from None


def recorded_latched(conn: Any) -> bool:
    """Whether a bag connection was recorded from a transient-local (latched) publisher (its offered QoS)."""
    profiles = getattr(getattr(conn, "ext", None), "offered_qos_profiles", None) or ()
    if isinstance(profiles, str):  # older rosbags / metadata: the YAML text
        return "durability: 1" in profiles or "transient_local" in profiles.lower()
    return any(getattr(q, "durability", None) == QosDurability.TRANSIENT_LOCAL for q in profiles)


def _per_id_hri_topic(topic: str) -> bool:
    """A REP-155 topic of one voice / person / face / body (subscribed only once a tracked list names it)."""
    return bool(voice_id_from_topic(topic)) or person_from_topic(topic) is not None or \
        (topic.startswith(("/humans/faces/", "/humans/bodies/")) and not topic.endswith("/tracked"))


def _failed(stats: dict[str, Any], topic: str, exc: Exception) -> None:
    """Count a message the middleware refused on ``topic``; warn at the first one per topic."""
    n = stats["failed"][topic] = stats["failed"].get(topic, 0) + 1
    if n == 1:
        log.warning("publishing on %s failed (%s): readers do not keep up; skipping such messages, counted", topic,
                    str(exc).splitlines()[0])


def replay_bag(bag_path: str | Path, rate: float = 1.0, topics: Iterable[str] | None = None,
               publish_clock: bool = True, loop: bool = False, wait_for_subscribers_s: float = 2.0,
               clock_hz: float = 100.0, qos_depth: int = 100, node: Any = None,
               stop_event: threading.Event | None = None) -> dict[str, Any]:
    """Publish a bag's messages on their topics with the recorded timing.

    Args:
        bag_path: rosbag2 directory (mcap or sqlite3).
        rate: playback speed factor (> 0; 2.0 = twice as fast).
        topics: replay only these topics (``None`` = all).
        publish_clock: publish the bag time on ``/clock`` (``rosgraph_msgs/Clock``).
        loop: start again at the end until ``stop_event`` is set (or Ctrl-C).
        wait_for_subscribers_s: before starting, wait up to this long (wall
            seconds) until every replayed topic has a subscriber (discovery takes
            about 0.7 s; ROS4HRI per-id topics are not waited for), then 0.5 s more for the
            subscribers to match this publisher too; it starts anyway after the wait, logging the topics
            nobody listens to.
        clock_hz: rate of ``/clock`` ticks while waiting between messages (Hz, > 0).
        qos_depth: history depth of the (reliable, volatile) publishers; latched topics keep their last message
            (transient-local, depth 1: :func:`recorded_latched`).
        node: an ``rclpy`` node to publish from; ``None`` creates one in a private
            context (initialised and shut down here).
        stop_event: set it (from another thread) to stop.

    Returns:
        ``{"published": {topic: n}, "failed": {topic: n}, "skipped_topics": {topic: reason}, "clock": n,
        "loops": n, "wall_s": s, "bag_s": s}``; ``failed`` counts messages the middleware refused to
        publish (a reliable writer whose readers do not keep up: its history stayed full past the
        writer's blocking time), logged once per topic and skipped.

    Raises:
        ValueError: ``rate`` or ``clock_hz`` not positive. FileNotFoundError: no bag.
        ImportError: ``publish_clock`` without ``rosgraph_msgs`` installed.
    """
    if not rate > 0 or not clock_hz > 0:
        raise ValueError(f"rate and clock_hz must be positive, got {rate}, {clock_hz}")
    path = Path(bag_path)
    if not path.exists():
        raise FileNotFoundError(f"bag {path} does not exist")
    wanted = None if topics is None else set(topics)
    stop = stop_event or threading.Event()

    own = node is None
    ctx = None
    if own:
        ctx = Context()
        rclpy.init(context=ctx)
        node = rclpy.create_node("synctva_bag_replay", context=ctx)
    stats: dict[str, Any] = {"published": {}, "failed": {}, "skipped_topics": {}, "clock": 0, "loops": 0,
                             "wall_s": 0.0, "bag_s": 0.0}
    publishers: dict[str, Any] = {}
    pubs_to_destroy = []
    try:
        qos = QoSProfile(depth=int(qos_depth), reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)
        latched_qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.TRANSIENT_LOCAL)
        clock_pub = clock_cls = time_cls = None
        if publish_clock:
            # deferred: rosgraph_msgs is optional (only /clock needs it); ImportError documented above
            from builtin_interfaces.msg import Time
            from rosgraph_msgs.msg import Clock

            clock_cls, time_cls = Clock, Time
            clock_pub = node.create_publisher(Clock, "/clock", QoSProfile(depth=10))
            pubs_to_destroy.append(clock_pub)
        with AnyReader([path], default_typestore=get_synctva_typestore()) as reader:
            conns = []
            for c in reader.connections:
                if wanted is not None and c.topic not in wanted:
                    continue
                if c.topic not in publishers and c.topic not in stats["skipped_topics"]:
                    try:
                        publishers[c.topic] = node.create_publisher(import_message_class(c.msgtype), c.topic,
                                                                    latched_qos if recorded_latched(c) else qos)
                        pubs_to_destroy.append(publishers[c.topic])
                        stats["published"][c.topic] = 0
                    except (ImportError, ValueError) as e:
                        stats["skipped_topics"][c.topic] = f"{c.msgtype}: {e}"
                        log.warning("skipping %s (%s cannot be imported: %s)", c.topic, c.msgtype, e)
                        continue
                if c.topic in publishers:
                    conns.append(c)
            if not conns:
                log.warning("nothing to replay from %s", path)
                return stats
            deadline = time.monotonic() + max(0.0, wait_for_subscribers_s)
            while time.monotonic() < deadline and not stop.is_set():
                if all(p.get_subscription_count() > 0 for t, p in publishers.items() if not _per_id_hri_topic(t)):
                    break
                time.sleep(0.05)
            lonely = [t for t, p in publishers.items()
                      if p.get_subscription_count() == 0 and not _per_id_hri_topic(t)]
            if lonely:
                log.warning("no subscribers on %s after %.1f s; replaying anyway", lonely, wait_for_subscribers_s)
            elif wait_for_subscribers_s > 0:
                # discovery is asymmetric: a publisher counts a subscription before that subscription has matched
                # the publisher, and what is published in between is lost to a volatile reader (its first audio
                # chunks: a shifted voice-activity frame grid)
                stop.wait(_SETTLE_S)

            def send_clock(ns: int) -> None:
                sec, nsec = divmod(int(ns), 1_000_000_000)
                clock_pub.publish(clock_cls(clock=time_cls(sec=sec, nanosec=nsec)))
                stats["clock"] += 1

            wall_start = time.monotonic()
            period = 1.0 / clock_hz
            while not stop.is_set():
                t0 = None
                wall0 = time.monotonic()
                last_clock = None
                for conn, ts, raw in reader.messages(connections=conns):
                    if stop.is_set():
                        break
                    if t0 is None:
                        t0 = ts
                    target = wall0 + (ts - t0) * 1e-9 / rate
                    while True:
                        now = time.monotonic()
                        if now >= target or stop.is_set():
                            break
                        if clock_pub is not None:
                            bag_now = t0 + int((now - wall0) * rate * 1e9)
                            if last_clock is None or bag_now - last_clock >= period * rate * 1e9:
                                send_clock(bag_now)
                                last_clock = bag_now
                        time.sleep(min(target - now, period))
                    if clock_pub is not None and (last_clock is None or ts > last_clock):
                        send_clock(ts)
                        last_clock = ts
                    try:
                        publishers[conn.topic].publish(bytes(raw))
                    except RuntimeError as exc:  # rclpy's RCLError: a reliable writer whose history stayed full
                        _failed(stats, conn.topic, exc)
                        continue
                    stats["published"][conn.topic] += 1
                    if t0 is not None:
                        stats["bag_s"] = max(stats["bag_s"], (ts - t0) * 1e-9)
                stats["loops"] += 1
                if not loop:
                    break
            stats["wall_s"] = time.monotonic() - wall_start
            # give reliable transport a moment to deliver the tail before the publishers go
            time.sleep(0.2)
        return stats
    finally:
        for p in pubs_to_destroy:
            node.destroy_publisher(p)
        if own:
            node.destroy_node()
            ctx.try_shutdown()
