"""The emotion node as a child process and a recorder of what it publishes: what ``synctva demo``
(:mod:`synctva_ros.ros.demo`) and the soak (:mod:`synctva_ros.ros.soak`) share.

* :func:`ros_env`: the children's environment (a ``ROS_DOMAIN_ID`` of its own unless one is set,
  ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``: Kilted ignores ``ROS_LOCALHOST_ONLY``);
* :func:`console_bin`: a console script of this venv (``emotion_node``, ``synctva``);
* :func:`node_process`: the node started with its output in ``<out_dir>/node.log`` and stopped with SIGINT
  (it publishes its pending windows), SIGKILL if it hangs;
* :class:`Recorder`: ``/emotion_state`` and ``/diagnostics`` in this process (a private rclpy context and
  an executor thread), and :meth:`Recorder.wait_for_node`.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

__all__ = ["ros_env", "console_bin", "node_process", "Recorder"]


def ros_env() -> dict[str, str]:
    """This process's environment for ROS children: ``ROS_DOMAIN_ID`` kept if set (else random in 1..100),
    discovery on localhost only, unbuffered Python output."""
    env = dict(os.environ)
    env.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 100)))
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def console_bin(name: str) -> str:
    """The console script ``name`` next to this interpreter (the venv's), else ``name`` on ``PATH``."""
    cand = Path(sys.executable).with_name(name)
    return str(cand) if cand.exists() else name


@contextlib.contextmanager
def node_process(cmd: Sequence[str], env: Mapping[str, str], log_path: Path,
                 stop_timeout_s: float = 30.0) -> Iterator[subprocess.Popen]:
    """Run ``cmd`` (the node) in its own session with stdout and stderr in ``log_path``; on exit SIGINT its
    process group and wait ``stop_timeout_s`` (then SIGKILL)."""
    log = open(log_path, "w")
    proc = subprocess.Popen(list(cmd), env=dict(env), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(stop_timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        log.close()


#: Variables of :func:`ros_env` a recorder in this process needs to see the children.
_DISCOVERY_VARS = ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE")


class Recorder:
    """``/emotion_state`` and ``/diagnostics`` received in this process, until :meth:`close`.

    Args:
        on_state: called with every ``synctva_ros/EmotionState`` (in the executor thread, under :attr:`lock`).
        name: the recorder node's name.
        env: the children's environment (:func:`ros_env`): its ``ROS_DOMAIN_ID`` and
            ``ROS_AUTOMATIC_DISCOVERY_RANGE`` are set in this process's environment first (they stay set), so the
            recorder, and a replay from its :attr:`node`, join the children's domain; ``None``: left as they are.

    Attributes:
        diag: the key/values of the node's last ``/diagnostics`` status (its name contains ``emotion``).
        lock: held while ``on_state`` runs and while :attr:`diag` is replaced.
        node: the rclpy node (e.g. to replay a bag from it).
    """

    def __init__(self, on_state: Callable[[Any], None], name: str = "synctva_recorder",
                 env: Mapping[str, str] | None = None) -> None:
        # deferred: rclpy and the generated messages need a ROS environment
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        from synctva_ros.msg import EmotionState

        if env is not None:
            os.environ.update({k: env[k] for k in _DISCOVERY_VARS})
        self.diag: dict[str, str] = {}
        self.lock = threading.Lock()
        self._ctx = Context()
        rclpy.init(context=self._ctx)
        self.node = rclpy.create_node(name, context=self._ctx)

        def state(msg: Any) -> None:
            with self.lock:
                on_state(msg)

        def diagnostics(msg: Any) -> None:
            for st in msg.status:
                if "emotion" in st.name:
                    with self.lock:
                        self.diag = {kv.key: kv.value for kv in st.values}

        self.node.create_subscription(EmotionState, "/emotion_state", state,
                                      QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE))
        self.node.create_subscription(DiagnosticArray, "/diagnostics", diagnostics, 10)
        self._executor = SingleThreadedExecutor(context=self._ctx)
        self._executor.add_node(self.node)
        threading.Thread(target=self._executor.spin, daemon=True).start()

    def wait_for_node(self, proc: subprocess.Popen, timeout_s: float, log_path: Path) -> float:
        """Wait until the node publishes ``/emotion_state`` (it has loaded its model); returns the seconds waited.

        Raises:
            RuntimeError: the node exited (the message ends with its log's tail) or did not come up in time.
        """
        t0 = time.monotonic()
        while self.node.count_publishers("/emotion_state") == 0:
            if proc.poll() is not None:
                raise RuntimeError("emotion node exited early:\n" + Path(log_path).read_text()[-3000:])
            if time.monotonic() - t0 > timeout_s:
                raise RuntimeError(f"emotion node did not come up within {timeout_s:.0f} s; see {log_path}")
            time.sleep(0.2)
        return time.monotonic() - t0

    def close(self) -> None:
        """Stop the executor and shut the private context down."""
        self._executor.shutdown()
        self.node.destroy_node()
        self._ctx.try_shutdown()
