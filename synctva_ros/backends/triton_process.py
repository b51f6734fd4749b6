"""A Triton server as a child process on free localhost ports, and the clean-up after a server that died.

:class:`TritonServerProcess` runs :func:`~synctva_ros.backends.triton_server.serve` (``python -m
synctva_ros.backends.triton_server``), ``synctva serve`` or a test server script in its own session, waits until its
models are ready, stops it, or kills the ``tritonserver`` binary alone (a crashed server, as the tests need).
:func:`reap_leftovers` removes what a dead ``tritonserver`` leaves behind (Python-backend stubs, ``/dev/shm``
regions); :func:`server_env` puts the interpreter's ``libpython`` first on the loader path for the stub.

Errors: :class:`~synctva_ros.backends.triton_server.TritonServerError` (not ready in time, or exited).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

__all__ = ["free_port", "server_env", "reap_leftovers", "TritonServerProcess", "TritonServerError"]


class TritonServerError(RuntimeError):
    """The Triton server could not start or stopped (the message says why and where its log is)."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the OS picks it; another process may take it before it is used)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default ``os.environ``) with this interpreter's ``LIBDIR`` first on ``LD_LIBRARY_PATH``, so the
    Python backend's stub loads the venv's ``libpython`` (see the module docstring)."""
    out = dict(os.environ if env is None else env)
    libdir = str(sysconfig.get_config_var("LIBDIR") or "")
    if libdir and any(Path(libdir).glob("libpython3*.so*")):
        rest = [p for p in out.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p and p != libdir]
        out["LD_LIBRARY_PATH"] = os.pathsep.join([libdir, *rest])
    return out


def _kids(pid: int) -> list[int]:
    """The children of ``pid`` (``/proc/<pid>/task/*/children``; ``[]`` once it is gone)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def _children(pid: int) -> list[int]:
    """Every descendant of ``pid``, depth first."""
    return [d for k in _kids(pid) for d in (k, *_children(k))]


def reap_leftovers(pid: int) -> list[int]:
    """Clean up after the server that the process ``pid`` ran (PyTriton's shared-memory prefix ``pytrtion<pid>-``).

    A ``tritonserver`` that died (killed, crashed) leaves its Python-backend stubs running, with their tensor-store
    manager, and its shared-memory regions in ``/dev/shm``. The stubs started for ``pid`` (their command line
    names the prefix) are killed, their descendants sent SIGTERM (the multiprocessing resource tracker then
    unlinks the tensor store's segments) and ``/dev/shm/pytrtion<pid>-*`` removed. Returns the pids signalled.
    """
    prefix = f"pytrtion{pid}-".encode()
    stubs = []
    for cmd in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmd.read_bytes().split(b"\0")
        except OSError:
            continue
        if args and args[0].endswith(b"triton_python_backend_stub") and any(a.startswith(prefix) for a in args):
            stubs.append(int(cmd.parent.name))
    signalled = []
    for stub in stubs:
        kids = _children(stub)
        for target, sig in ((stub, signal.SIGKILL), *((k, signal.SIGTERM) for k in kids)):
            try:
                os.kill(target, sig)
                signalled.append(target)
            except OSError:
                pass
    for f in Path("/dev/shm").glob(f"pytrtion{pid}-*"):
        f.unlink(missing_ok=True)
    return signalled


def _group(pgid: int) -> list[int]:
    """Live processes of the process group ``pgid``."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 3 and int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


class TritonServerProcess:
    """A Triton server as a child process on free localhost ports (its own process group).

    Args:
        repository: the model repository (for the default command).
        threads: onnxruntime threads per instance (default command).
        extra_args: more arguments of the command.
        command: the command before its port arguments (``--grpc-port``, ``--http-port``); default ``python -m
            synctva_ros.backends.triton_server --repository R --threads T --metrics-port M --ready-file F``;
            e.g. ``[synctva, serve, --checkpoint, DIR, --host, 127.0.0.1]`` or a test server script.
        models: model names whose readiness :meth:`wait_ready` checks when the command writes no ready file.
        env: environment (default ``os.environ``; :func:`server_env` is applied).

    Attributes:
        grpc_port, http_port: its ports; ``log_path``: its output.
    """

    def __init__(self, repository: str | Path | None = None, threads: int = 1, extra_args: Sequence[str] = (),
                 command: Sequence[str] | None = None, models: Sequence[str] = ("synctva_fusion",),
                 env: dict[str, str] | None = None) -> None:
        self.grpc_port, self.http_port, self.metrics_port = free_port(), free_port(), free_port()
        self.models = list(models)
        self._dir = Path(tempfile.mkdtemp(prefix="synctva_triton_"))
        self.ready_file = self._dir / "ready.json"
        self.log_path = self._dir / "server.log"
        if command is None:
            command = [sys.executable, "-m", "synctva_ros.backends.triton_server", "--threads", str(threads),
                       "--metrics-port", str(self.metrics_port), "--ready-file", str(self.ready_file),
                       *([] if repository is None else ["--repository", str(repository)])]
        cmd = [*command, "--grpc-port", str(self.grpc_port), "--http-port", str(self.http_port), *extra_args]
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, env=server_env(env), stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def url(self, protocol: str = "grpc") -> str:
        """``host:port`` of ``protocol`` (``grpc`` or ``http``)."""
        return f"127.0.0.1:{self.grpc_port if protocol == 'grpc' else self.http_port}"

    def output(self) -> str:
        """The server's log so far."""
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def _models_ready(self) -> bool:
        """Whether every model in :attr:`models` is ready (gRPC health check)."""
        import tritonclient.grpc as grpcclient  # deferred: optional dependency

        try:
            c = grpcclient.InferenceServerClient(self.url("grpc"))
            try:
                return all(c.is_model_ready(m, client_timeout=1.0) for m in self.models)
            finally:
                c.close()
        except Exception:  # noqa: BLE001 - not up yet
            return False

    def wait_ready(self, timeout: float = 120.0) -> dict[str, Any]:
        """Block until the models are ready (the ready file, or the health check of :attr:`models`).

        Returns:
            The ready document (ports, pid, models).

        Raises:
            TritonServerError: the process exited or ``timeout`` seconds passed (the message ends with its log).
        """
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.ready_file.is_file():
                return json.loads(self.ready_file.read_text())
            if self.proc.poll() is not None:
                break
            if self._models_ready():
                return {"grpc_port": self.grpc_port, "http_port": self.http_port, "pid": self.proc.pid,
                        "models": self.models}
            time.sleep(0.5)
        raise TritonServerError(f"Triton server not ready (exit status {self.proc.poll()}); log "
                                f"{self.log_path}:\n{self.output()[-3000:]}")

    def server_pids(self) -> list[int]:
        """Pids of the ``tritonserver`` binaries among this process's children."""
        out = []
        for pid in _kids(self.proc.pid):
            try:
                if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].endswith(b"tritonserver"):
                    out.append(pid)
            except OSError:
                continue
        return out

    def kill_server(self) -> list[int]:
        """SIGKILL the ``tritonserver`` binary (a crashed server); the Python process then exits by itself.
        Returns the pids killed."""
        pids = self.server_pids()
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        return pids

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM and wait; SIGKILL it if it hangs; then :func:`reap_leftovers`, a few seconds for the stubs' helpers
        to clean up, and SIGKILL whatever is left of its process group (its own session). Returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if reap_leftovers(self.proc.pid):
            end = time.monotonic() + 5.0
            while _group(self.proc.pid) and time.monotonic() < end:
                time.sleep(0.1)
        if _group(self.proc.pid):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if not self._log.closed:
            self._log.close()
        return self.proc.returncode

    def __enter__(self) -> "TritonServerProcess":
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop()
