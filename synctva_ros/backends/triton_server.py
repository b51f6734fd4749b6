"""A real Triton Inference Server on this machine, serving a model repository through PyTriton.

``nvidia-pytriton`` 0.7.0 ships the ``tritonserver`` binary with its Python backend (no onnxruntime or
TensorRT backend) inside the wheel. :func:`serve` starts it and binds each model of a repository written by
:func:`~synctva_ros.backends.triton_repository.write_model_repository` under the same name, inputs, outputs,
``max_batch_size`` and dynamic batching as its ``config.pbtxt``; the graph runs in onnxruntime in this process
(:class:`OnnxModel`). Clients see Triton's own gRPC and HTTP protocols, batching and scheduling. On a GPU
server the same repository runs in NVIDIA's container instead (``docs/triton.md``).

:class:`~synctva_ros.backends.triton_process.TritonServerProcess` runs :func:`serve` as a child process
(``python -m synctva_ros.backends.triton_server``) on free localhost ports (:mod:`.triton_process`).

Two local fixes make the wheel work in this environment (both checked by ``test/backends``):

* The Python backend's stub embeds ``libpython``; the first one on the loader path may belong to another
  Python than the venv's (Debian's 3.11.2 next to a pyenv 3.11.7): the interpreter's ``LIBDIR`` is put first
  on ``LD_LIBRARY_PATH`` (:func:`~synctva_ros.backends.triton_process.server_env`).
* The stub's ``pb_utils.Tensor(name, array)`` and ``Tensor.as_numpy()`` are built with a pybind11 that reads
  numpy 1's descriptor layout: under numpy 2 they see item size 0 (empty outputs, inputs repeated from their
  first element). The proxy model PyTriton installs in the stub is patched to move tensors through DLPack
  instead (:func:`patch_pytriton`), which works with either numpy.

Errors: :class:`TritonServerError` (the server did not become ready, exited, or PyTriton is missing).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .triton_process import TritonServerError, free_port, reap_leftovers, server_env
from .triton_repository import ModelSpec, read_repository_info

__all__ = ["TritonServerError", "patch_pytriton", "OnnxModel", "bind_model", "serve"]

log = logging.getLogger(__name__)

#: (original, replacement) in PyTriton 0.7.0's proxy ``model.py`` (runs in the stub): tensors via DLPack.
_PATCHES = (("input_tensor.as_numpy()", "_synctva_np.from_dlpack(input_tensor)"),
            ("pb_utils.Tensor(name, value)",
             "pb_utils.Tensor.from_dlpack(name, _synctva_np.ascontiguousarray(value).__dlpack__())"))


def patch_pytriton() -> None:
    """Make PyTriton's proxy model move tensors through DLPack (idempotent; see the module docstring).

    Raises:
        TritonServerError: PyTriton is not installed, or its proxy model is not the one this patch knows
            (another version than 0.7.0).
    """
    try:
        from pytriton.models import model as pm  # deferred: optional dependency (synctva serve only)
    except ImportError as exc:
        raise TritonServerError("nvidia-pytriton is not installed: pip install --no-deps nvidia-pytriton==0.7.0 "
                                "(see requirements-ml.txt)") from exc
    if getattr(pm.Model, "_synctva_patched", False):
        return
    original = pm.Model.get_proxy_model_files

    def files(self: Any) -> dict[str, bytes]:
        out = original(self)
        key = f"file:{self.model_version}/model.py"
        src = out[key].decode()
        for old, new in _PATCHES:
            if old not in src:
                raise TritonServerError(f"PyTriton's proxy model has no '{old}': this patch is for nvidia-pytriton "
                                        "0.7.0 (see synctva_ros/backends/triton_server.py)")
            src = src.replace(old, new)
        out[key] = ("import numpy as _synctva_np\n" + src).encode()
        return out

    pm.Model.get_proxy_model_files = files
    pm.Model._synctva_patched = True


class OnnxModel:
    """A PyTriton inference callable running one ONNX graph in onnxruntime.

    Requests of equal shapes are concatenated along the batch axis and run together; each request gets its
    rows back (Triton's dynamic batcher forms batches of equal shapes only; requests of other shapes in one
    call run as their own batches).

    Args:
        path: the ONNX file.
        spec: the model's :class:`~synctva_ros.backends.triton_repository.ModelSpec` (output names).
        threads: onnxruntime intra-op threads (0 = its default).

    Shapes:
        each request ``{input: (b, ...)}`` -> ``{output: (b, ...)}``, dtypes of ``spec``.
    """

    def __init__(self, path: str | Path, spec: ModelSpec, threads: int = 0) -> None:
        from .onnx_backend import ort_session  # deferred: onnxruntime is imported there lazily too

        self.spec = spec
        self.session = ort_session(path, "cpu", threads)
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [t.name for t in spec.outputs]
        self.calls = 0
        self.rows = 0

    def __call__(self, requests: Sequence[Any]) -> list[dict[str, np.ndarray]]:
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(tuple((n, np.shape(r[n])) for n in self.inputs), []).append(i)
        replies: list[dict[str, np.ndarray]] = [{} for _ in requests]
        for idx in groups.values():
            feeds = {n: np.concatenate([np.asarray(requests[i][n]) for i in idx]) for n in self.inputs}
            outs = self.session.run(self.outputs, feeds)
            self.calls += 1
            start = 0
            for i in idx:
                b = int(np.shape(requests[i][self.inputs[0]])[0])
                replies[i] = {n: np.ascontiguousarray(o[start:start + b]) for n, o in zip(self.outputs, outs)}
                start += b
            self.rows += start
        return replies


def bind_model(triton: Any, spec: ModelSpec, infer: Callable[[Sequence[Any]], list[dict[str, np.ndarray]]] | list,
               strict: bool = False) -> None:
    """Bind ``infer`` (one callable per instance, or one) to ``triton`` as ``spec`` says: name, tensors
    (dims without the batch axis), ``max_batch_size`` and the dynamic batcher's queue delay (microseconds).

    Args:
        triton: a ``pytriton.triton.Triton`` not yet running.
        spec: the model to bind.
        infer: each request ``{input: (b, ...)}`` -> ``{output: (b, ...)}`` (see :class:`OnnxModel`).
        strict: PyTriton checks every reply's names, dtypes and shapes against ``spec``.

    Raises:
        ImportError: PyTriton is not installed (:func:`patch_pytriton` says so first in :func:`serve`).
    """
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor  # deferred: optional dependency

    def tensors(ts: Sequence[Any]) -> list[Any]:
        return [Tensor(name=t.name, dtype=np.dtype(t.numpy_dtype).type, shape=tuple(t.dims)) for t in ts]

    cfg = ModelConfig(max_batch_size=spec.max_batch_size,
                      batcher=DynamicBatcher(max_queue_delay_microseconds=spec.max_queue_delay_us))
    triton.bind(model_name=spec.name, infer_func=infer, inputs=tensors(spec.inputs), outputs=tensors(spec.outputs),
                config=cfg, strict=strict)


def _pytriton(grpc_port: int, http_port: int, metrics_port: int, host: str) -> Any:
    """A patched, configured ``pytriton.triton.Triton`` (not started)."""
    patch_pytriton()
    os.environ.update(server_env())  # PyTriton starts tritonserver with os.environ
    from pytriton.triton import Triton, TritonConfig  # deferred: optional dependency

    cfg = TritonConfig(grpc_port=grpc_port, http_port=http_port, metrics_port=metrics_port, grpc_address=host,
                       http_address=host, metrics_address=host, exit_timeout_secs=2, log_verbose=0)
    return Triton(config=cfg)


def serve(repository: str | Path, *, grpc_port: int = 8001, http_port: int = 8000, metrics_port: int = 0,
          host: str = "127.0.0.1", threads: int = 0, ready_file: str | Path | None = None,
          stop: threading.Event | None = None,
          models: dict[str, tuple[ModelSpec, Callable[..., Any]]] | None = None) -> int:
    """Serve ``repository`` with Triton until SIGINT/SIGTERM, ``stop`` is set, or the server dies.

    Args:
        repository: written by :func:`~synctva_ros.backends.triton_repository.write_model_repository`.
        grpc_port, http_port, metrics_port: ports (0 = a free one).
        host: address to listen on (``0.0.0.0`` for a fleet on the network).
        threads: onnxruntime intra-op threads per model instance (0 = default).
        ready_file: written (JSON: ``grpc_port``, ``http_port``, ``metrics_port``, ``pid``, ``models``) once
            every model is ready.
        stop: set it to stop (tests; signals do the same).
        models: ``{name: (spec, callable)}`` to serve instead of the repository's ONNX files (tests).

    Returns:
        0 after a requested stop, 1 when the ``tritonserver`` binary exited on its own.

    Raises:
        FileNotFoundError: not a repository; TritonServerError: PyTriton missing or the server did not start.
    """
    ports = [p or free_port() for p in (grpc_port, http_port, metrics_port)]
    if models is None:
        info = read_repository_info(repository)
        models = {}
        for name, m in info["models"].items():
            spec = m["spec"]
            models[name] = (spec, [OnnxModel(m["path"], spec, threads) for _ in range(spec.instances)])
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    triton = _pytriton(*ports, host)
    died = False
    try:
        for spec, infer in models.values():
            bind_model(triton, spec, infer)
        triton.run()
        doc = {"grpc_port": ports[0], "http_port": ports[1], "metrics_port": ports[2], "pid": os.getpid(),
               "models": sorted(models)}
        log.info("Triton serving %s on %s: gRPC %d, HTTP %d, metrics %d", ", ".join(sorted(models)), host, *ports)
        if ready_file:
            tmp = Path(f"{ready_file}.tmp")
            tmp.write_text(json.dumps(doc))
            tmp.replace(ready_file)
        while not stop.wait(0.2):
            if not triton.is_alive():
                log.error("the tritonserver process exited; stopping")
                died = True
                break
    finally:
        triton.stop()
        reap_leftovers(os.getpid())
    return 1 if died else 0


def main(argv: list[str] | None = None) -> int:
    """``python -m synctva_ros.backends.triton_server --repository DIR [--grpc-port] [--http-port] ...``."""
    ap = argparse.ArgumentParser(description="serve a synctva Triton model repository with PyTriton")
    ap.add_argument("--repository", type=Path, required=True)
    ap.add_argument("--grpc-port", type=int, default=8001)
    ap.add_argument("--http-port", type=int, default=8000)
    ap.add_argument("--metrics-port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--ready-file", type=Path, default=None)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(name)s: %(message)s")
    return serve(a.repository, grpc_port=a.grpc_port, http_port=a.http_port, metrics_port=a.metrics_port,
                 host=a.host, threads=a.threads, ready_file=a.ready_file)


if __name__ == "__main__":
    sys.exit(main())
