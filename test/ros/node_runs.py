"""What the cross-process node tests with a client script share (test_node_expressions, test_node_persons,
test_node_hri_inputs): the node's common parameters, one node run against one client process, and hiding an
optional message package from the node's import path."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple, Sequence

ROOT = Path(__file__).resolve().parents[2]


def tiny_node_args(checkpoint: Path | str, *more: str) -> list[str]:
    """ROS arguments of a node on the tiny checkpoint: sim time (the client publishes /clock), reliable camera
    and microphone, one torch thread; ``more`` appended."""
    return ["-p", "use_sim_time:=true", "-p", f"runtime.checkpoint:={checkpoint}", "-p", "topics.sensor_qos:=reliable",
            "-p", "runtime.threads:=1", *more]


class NodeRun(NamedTuple):
    """A node run against a client: the client's JSON, the node's log, whether the node was still alive when
    the client ended, and its exit status after SIGINT."""

    out: Any
    log: str
    alive: bool
    status: int | None


def run_node_with_client(node_process: Callable[[list[str]], Any], env: dict[str, str], node_args: Sequence[str],
                         client: Path, *client_args: str, timeout: float = 300.0) -> NodeRun:
    """Start the node (``node_process(node_args)``), run ``client`` with ``client_args`` in ``env`` until it
    exits (asserting exit 0; its stdout is JSON), and stop the node with SIGINT whatever happened."""
    node = node_process(list(node_args))
    try:
        res = subprocess.run([sys.executable, str(client), *client_args], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=timeout)
        assert res.returncode == 0, res.stderr[-4000:]
        out = json.loads(res.stdout)
        alive = node.alive()
    finally:
        status = node.stop()
    return NodeRun(out, node.output(), alive, status)


@contextlib.contextmanager
def hidden_package(env: dict[str, str], tmp_path: Path, name: str) -> Iterator[None]:
    """While inside, ``env``'s PYTHONPATH starts with a package ``name`` whose import fails: a child started
    then (it takes its environment at start) sees the package as missing."""
    (tmp_path / name).mkdir()
    (tmp_path / name / "__init__.py").write_text("raise ImportError('hidden for the test')\n")
    saved = env["PYTHONPATH"]
    env["PYTHONPATH"] = f"{tmp_path}:{saved}"
    try:
        yield
    finally:
        env["PYTHONPATH"] = saved
