"""The node's per-face output: ``hri_msgs/Expression`` on ``/humans/faces/<face_id>/expression`` (REP-155).

Like ROS4HRI's ``hri_emotion_recognizer``, the node publishes the expression of every tracked face
continuously, not only of the face an utterance window used. The faces are the node's own: the face stage of
the pipeline's streaming cache detects, tracks and classifies every face of every processed camera frame
(``features.face_fps``); :class:`~synctva_ros.streaming.face_expressions.ExpressionFeed` picks frames at
``output.expression_hz`` (sensor time) and gives the message fields
(:mod:`synctva_ros.streaming.face_expressions` documents each field). Face ids are ``face_<track id>``
(:func:`~synctva_ros.core.persons.track_face_id`), the strings ``EmotionState.face_id`` carries; the header is
the frame's stamp and the newest camera image's ``frame_id``.

======================================  =======================  ==========================================
``/humans/faces/<face_id>/expression``  ``hri_msgs/Expression``  out, reliable, depth 10; one per face per
                                                                 due frame; made when the face first shows,
                                                                 destroyed 5 s after it was last seen
``/humans/faces/tracked``               ``hri_msgs/IdsList``     out, reliable, depth 10; only with
                                                                 ``output.faces_tracked`` (default off)
======================================  =======================  ==========================================

REP-155 makes the face *detector* publish ``/humans/faces/tracked`` and the required ``roi`` and ``cropped``
per face. The node is no full ROS4HRI face detector (it publishes neither ``roi`` nor ``cropped``), and on a
robot whose ROS4HRI pipeline runs ``hri_face_detect`` that node owns ``/humans/faces/tracked`` with its own
ids: hence ``output.faces_tracked`` is off by default; turn it on where the node is the only face tracker, so
that ROS4HRI consumers (libhri's ``HRIListener``) discover the node's faces. The node does not read the ROS4HRI
face detector's regions: its face ids name its own tracks, not ``hri_face_detect``'s.

Threading: the face stage calls :meth:`ExpressionOutput._on_observed` from the streaming thread; the records
due are queued (at most :data:`MAX_QUEUED`, the oldest dropped) and a guard condition wakes the executor,
whose thread creates publishers and publishes (no rclpy entity is created outside the executor).

The output is off, with one start-up line saying why, when ``output.expression_hz`` is 0, when ``hri_msgs`` is
not installed, or when no face stage runs while frames arrive (``features.face_expert`` off or its weights
missing, or ``features.streaming`` off: then faces are only looked at when a window closes).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from std_msgs.msg import Header

from synctva_ros.ros.conversions import seconds_to_time
from synctva_ros.ros.inputs import OptionalMessages
from synctva_ros.ros.qos import reliable_qos
from synctva_ros.streaming.face_expressions import ExpressionFeed, FaceExpressionFields, FrameExpressions

__all__ = ["FACES_TRACKED_TOPIC", "MAX_QUEUED", "MAX_FACES", "expression_topic", "ExpressionOutput"]

#: REP-155's list of tracked faces.
FACES_TRACKED_TOPIC = "/humans/faces/tracked"
#: Due frames waiting for the executor at most (the oldest is dropped beyond, counted in ``dropped``).
MAX_QUEUED = 16
#: Face publishers alive at most (a face beyond gets none until another is forgotten).
MAX_FACES = 64


def expression_topic(face_id: str) -> str:
    """``/humans/faces/<face_id>/expression`` (REP-155)."""
    return f"/humans/faces/{face_id}/expression"


class ExpressionOutput:
    """Publishes every tracked face's ``hri_msgs/Expression`` (see the module).

    Args:
        node: the rclpy node (``create_publisher``, ``create_guard_condition``, ``get_logger``).
        output: the ``output`` configuration section (``expression_hz``, ``faces_tracked``).
        opt: the optional message modules (``hri_msgs``'s ``Expression`` and ``IdsList``).
        pipeline: the loaded pipeline (its ``streaming.face`` face cache, its ``fusion.temperatures``).
        camera_frame: an object whose ``camera_frame`` is the newest camera image's ``frame_id``
            (:class:`~synctva_ros.core.persons.PersonRegistry`).
        gate: an object whose ``active`` says whether the node is active (nothing is published otherwise).

    Attributes:
        on: whether the output runs. published: messages published. dropped: due frames dropped (queue full).
    """

    def __init__(self, node: Any, output: Any, opt: OptionalMessages, pipeline: Any, camera_frame: Any,
                 gate: Any) -> None:
        self._node, self._camera, self._gate = node, camera_frame, gate
        self._expression, self._ids_list = opt.get("hri_msgs", "Expression"), opt.get("hri_msgs", "IdsList")
        self._qos = reliable_qos(10)
        self._pubs: dict[str, Any] = {}
        self._tracked_pub: Any = None
        self._queue: deque[FrameExpressions] = deque()
        self._lock = threading.Lock()
        self._guard: Any = None
        self.published = self.dropped = 0
        stream = getattr(pipeline, "streaming", None)
        self._cache = getattr(stream, "face", None)
        hz = float(output.expression_hz)
        why = ("output.expression_hz is 0" if hz <= 0 else "no hri_msgs" if self._expression is None else
               "the facial-expression expert is off (features.face_expert, its weights, or the checkpoint)"
               if getattr(pipeline, "faces", None) is None else
               "features.streaming is off (faces are only seen when a window closes)" if self._cache is None else "")
        self.on = not why
        log = node.get_logger()
        if not self.on:
            log.info(f"expressions: off ({why}): no hri_msgs/Expression on /humans/faces/<id>/expression")
            return
        fusion = getattr(pipeline, "fusion", None)
        temperature = float(getattr(fusion, "temperatures", {}).get("visual", 1.0))
        fps = float(self._cache.ext.fps)
        self._feed = ExpressionFeed(min(hz, fps), temperature)
        self._guard = node.create_guard_condition(self._drain)
        if output.faces_tracked and self._ids_list is not None:
            self._tracked_pub = node.create_publisher(self._ids_list, FACES_TRACKED_TOPIC, self._qos)
        self._cache.on_observed = self._on_observed
        log.info(f"expressions: hri_msgs/Expression of every tracked face on /humans/faces/face_<track>/expression "
                 f"at {min(hz, fps):g} Hz" + (f" (output.expression_hz {hz:g} > features.face_fps {fps:g})"
                                              if hz > fps else "")
                 + f", confidence at the visual temperature {temperature:g}; {FACES_TRACKED_TOPIC}: "
                 + ("published" if self._tracked_pub is not None else "not published (output.faces_tracked)"))

    # ------------------------------------------------------------- streaming thread
    def _on_observed(self, stamp: float, observations: list) -> None:
        """The face stage processed a frame: queue its expressions when due, wake the executor."""
        frame = self._feed.offer(stamp, observations)
        if frame is None:
            return
        with self._lock:
            if self._guard is None:
                return
            if len(self._queue) >= MAX_QUEUED:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(frame)
            self._guard.trigger()

    # ------------------------------------------------------------- executor thread
    def _drain(self) -> None:
        with self._lock:
            frames = list(self._queue)
            self._queue.clear()
        active = bool(getattr(self._gate, "active", True))
        for frame in frames:
            for face_id in frame.gone:
                pub = self._pubs.pop(face_id, None)
                if pub is not None:
                    self._node.destroy_publisher(pub)
            if active:
                self._publish(frame)

    def _publish(self, frame: FrameExpressions) -> None:
        header = Header(stamp=seconds_to_time(frame.stamp), frame_id=self._camera.camera_frame)
        for f in frame.faces:
            pub = self._pubs.get(f.face_id)
            if pub is None:
                if len(self._pubs) >= MAX_FACES:
                    self._node.get_logger().warning(f"more than {MAX_FACES} faces tracked: no expression for "
                                                    f"'{f.face_id}'", throttle_duration_sec=10.0)
                    continue
                pub = self._pubs[f.face_id] = self._node.create_publisher(self._expression,
                                                                          expression_topic(f.face_id), self._qos)
            pub.publish(self._message(f, header))
            self.published += 1
        if self._tracked_pub is not None:
            self._tracked_pub.publish(self._ids_list(header=header, ids=frame.face_ids))

    def _message(self, f: FaceExpressionFields, header: Header) -> Any:
        return self._expression(header=header, expression=f.expression, valence=f.valence, arousal=f.arousal,
                                confidence=f.confidence)

    def close(self) -> None:
        """Stop listening to the face stage and destroy the publishers (call from the executor's thread)."""
        if self._cache is not None and self._cache.on_observed == self._on_observed:
            self._cache.on_observed = None
        with self._lock:
            guard, self._guard = self._guard, None
            self._queue.clear()
        if guard is not None:
            self._node.destroy_guard_condition(guard)
        for pub in [*self._pubs.values(), self._tracked_pub]:
            if pub is not None:
                self._node.destroy_publisher(pub)
        self._pubs, self._tracked_pub = {}, None
