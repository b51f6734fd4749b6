"""The node's ROS4HRI person subscriptions (REP-155): who is speaking, and with which face.

``topics.persons_tracked`` (``hri_msgs/IdsList``, default ``/humans/persons/tracked``) lists the tracked
persons; for every id seen there the node subscribes to the person's latched ``std_msgs/String`` topics
``/humans/persons/<id>/voice_id`` and ``/humans/persons/<id>/face_id`` (reliable, transient-local, depth 1:
REP-155 publishes them latched, so the current value arrives on subscription). What they say goes into a
:class:`~synctva_ros.core.persons.PersonRegistry`, which attaches each emitted window to a person and the
policy of :mod:`synctva_ros.core.persons` turns into ``EmotionState.voice_id``, ``person_id`` and ``face_id``.

Subscriptions of persons no longer tracked are kept (their latched values stay valid), at most
:data:`~synctva_ros.core.persons.MAX_PERSONS`. Without ``hri_msgs`` (no ``IdsList``) or with
``topics.persons_tracked`` empty there are no person subscriptions: ``person_id`` stays empty and ``face_id``
falls back to the expert's face (the start-up lines of :func:`synctva_ros.ros.inputs.missing_package_lines`
say so).
"""

from __future__ import annotations

from typing import Any

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from synctva_ros.core.persons import MAX_PERSONS, PersonRegistry, person_topic

__all__ = ["LATCHED_QOS", "PersonSubscriptions"]

#: QoS of REP-155's latched per-person topics (``voice_id``, ``face_id``).
LATCHED_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)


class PersonSubscriptions:
    """Subscribes to the tracked persons and to each person's ``voice_id`` and ``face_id``.

    Args:
        node: the rclpy node (``create_subscription``, ``get_logger``).
        topic: ``topics.persons_tracked`` ('' = off).
        ids_list_type: ``hri_msgs/msg/IdsList`` (None: hri_msgs missing, off).
        registry: receives what the topics say (cleared by :meth:`subscribe`).
        reliable_qos: QoS of the tracked-list subscription.
        subs: the node's subscription list; every subscription made here is appended (destroyed by the node).
    """

    def __init__(self, node: Any, topic: str, ids_list_type: Any, registry: PersonRegistry, reliable_qos: Any,
                 subs: list) -> None:
        self._node, self._topic, self._type = node, topic, ids_list_type
        self._registry, self._reliable, self._subs = registry, reliable_qos, subs
        self.persons: dict[str, bool] = {}  # person id -> whether its topics are subscribed

    def subscribe(self) -> bool:
        """Forget what the registry knew and subscribe to the tracked list. Returns whether persons are on."""
        self._registry.clear()
        log = self._node.get_logger()
        if not self._topic or self._type is None:
            log.info("persons: off (" + ("topics.persons_tracked is ''" if not self._topic else "no hri_msgs")
                     + "): EmotionState.person_id stays empty, face_id is the expert's face")
            return False
        self._subs.append(self._node.create_subscription(self._type, self._topic, self._on_tracked, self._reliable))
        log.info(f"persons: tracked on '{self._topic}', each person's voice_id and face_id (latched)")
        return True

    def _on_tracked(self, msg: Any) -> None:
        ids = [str(i) for i in msg.ids if str(i)]
        self._registry.set_tracked(ids)
        for pid in ids:
            if pid in self.persons:
                continue
            if len(self.persons) >= MAX_PERSONS:
                self._node.get_logger().warning(f"more than {MAX_PERSONS} persons tracked: person '{pid}' ignored",
                                                throttle_duration_sec=10.0)
                continue
            try:
                for what, setter in (("voice_id", self._registry.set_voice), ("face_id", self._registry.set_face)):
                    self._subs.append(self._node.create_subscription(
                        String, person_topic(pid, what), lambda m, pid=pid, setter=setter: setter(pid, m.data),
                        LATCHED_QOS))
                self.persons[pid] = True
            except Exception as exc:  # an id that is not a valid ROS name token
                self._node.get_logger().warning(f"cannot subscribe to person '{pid}': {exc}",
                                                throttle_duration_sec=10.0)
                self.persons[pid] = False
