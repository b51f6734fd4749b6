"""Helpers for node tests: every ROS participant is a separate process of the venv's Python.

Each test module gets its own ROS_DOMAIN_ID (random in 1..100 per run) and
ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST (Kilted ignores ROS_LOCALHOST_ONLY), exported
to the children, so parallel runs on one machine do not cross.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLIENT = Path(__file__).with_name("ros_client.py")
NODE_FQN = "/emotion_node"


class NodeProcess:
    """The emotion node (``python -m synctva_ros.ros.node``, what the console entry runs)."""

    def __init__(self, env: dict[str, str], ros_args: list[str], ignore_sigint: bool = False) -> None:
        self.log = tempfile.NamedTemporaryFile("w+", prefix="emotion_node_", suffix=".log", delete=False)
        self.cmd = [sys.executable, "-m", "synctva_ros.ros.node", "--ros-args", *ros_args]
        # ignore_sigint: start it as a shell's background job would (SIGINT inherited as ignored)
        pre = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint else None
        self.proc = subprocess.Popen(self.cmd, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     preexec_fn=pre)

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return Path(self.log.name).read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGINT (Ctrl-C) and wait; kill if it hangs. Returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGUSR1)  # the node dumps its threads' stacks into its log
                time.sleep(1.0)
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()
        return self.proc.returncode


@pytest.fixture(scope="module")
def ros_env() -> dict[str, str]:
    """Environment for ROS child processes, with a domain id of this module's own."""
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(random.SystemRandom().randint(1, 100))
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.setdefault("OMP_NUM_THREADS", "1")
    env["RCUTILS_COLORIZED_OUTPUT"] = "0"
    env["RCUTILS_LOGGING_BUFFERED_STREAM"] = "0"  # node logs reach the log file at once
    return env


@pytest.fixture
def start_node(ros_env) -> Iterator[Any]:
    """Factory ``start_node(*ros_args) -> NodeProcess``; every node is stopped at teardown."""
    started: list[NodeProcess] = []

    def start(*ros_args: str, ignore_sigint: bool = False) -> NodeProcess:
        node = NodeProcess(ros_env, list(ros_args), ignore_sigint=ignore_sigint)
        started.append(node)
        return node

    yield start
    for node in started:
        node.stop()


def _run_client(env: dict[str, str], *args: str, timeout: float = 120.0) -> Any:
    res = subprocess.run([sys.executable, str(CLIENT), *args], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=timeout)
    if res.returncode != 0:
        pytest.fail(f"client {' '.join(args[:2])} failed ({res.returncode}):\n{res.stderr[-4000:]}")
    return json.loads(res.stdout)


@pytest.fixture(scope="module")
def run_client(ros_env) -> Any:
    """``run_client(*args, timeout=120) -> JSON`` of ``ros_client.py`` (fails the test with its stderr)."""
    return lambda *args, timeout=120.0: _run_client(ros_env, *args, timeout=timeout)


@pytest.fixture(scope="module")
def node_process(ros_env) -> Any:
    """``node_process(ros_args) -> NodeProcess`` for module-scoped fixtures (caller stops it)."""
    return lambda ros_args: NodeProcess(ros_env, list(ros_args))
