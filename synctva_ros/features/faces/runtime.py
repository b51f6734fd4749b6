"""How the face networks run: PyTorch, or ONNX Runtime on a graph exported in memory.

Every face network (MTCNN's P/R/O-nets, the expression experts) is called through a :class:`NetRunner`:
float32 numpy arrays in, a tuple of float32 numpy arrays out, so the detector and the experts do not care
which runtime is behind it.

* ``"onnxruntime"`` (default, :class:`OrtRunner`): the module is exported once per process with
  ``torch.onnx.export`` (TorchScript exporter, opset :data:`OPSET`, constant folding) into memory and run by
  an ``onnxruntime.InferenceSession`` with all graph optimisations and ``threads`` intra-op threads. On the
  small convolutions of these networks it costs a fraction of torch's eager calls (measured on one core:
  face-api's expression net 1.5 ms vs 5-8 ms for one 112x112 face, O-net 1.0-1.4 ms vs 3-4 ms for two 48x48
  crops; ``docs/results.md``). The outputs match torch's within 1e-5 (``test/features/faces/test_face_runtime.py``).
  Exporting costs about 2 s in all when the face stage starts.
* ``"torch"`` (:class:`TorchRunner`): the module itself under ``torch.inference_mode``.

Threads: ``threads`` intra-op threads for onnxruntime (default 1: the face stage runs next to the audio and
text work; 0 = onnxruntime's default); torch uses its process-wide setting.
"""

from __future__ import annotations

import io
import logging
import time
import warnings
from typing import Any, Protocol, Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["FACE_RUNTIMES", "DEFAULT_RUNTIME", "OPSET", "NetRunner", "TorchRunner", "OrtRunner", "make_runner"]

log = logging.getLogger(__name__)

FACE_RUNTIMES = ("onnxruntime", "torch")
DEFAULT_RUNTIME = "onnxruntime"
#: ONNX opset of the in-memory exports.
OPSET = 18
#: Exported graphs by key (a network's weights identity and input layout), shared by every runner of the process.
_EXPORTED: dict[str, bytes] = {}


class NetRunner(Protocol):
    """``runner(x float32 (N, C, H, W)) -> tuple of float32 arrays``, the module's outputs in order."""

    runtime: str

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, ...]: ...


class _Forward(nn.Module):
    """A module's ``method`` (e.g. ``forward_features``) as its ``forward``, for export and for torch runs."""

    def __init__(self, net: nn.Module, method: str) -> None:
        super().__init__()
        self.net, self.method = net, method

    def forward(self, x: torch.Tensor) -> Any:
        return getattr(self.net, self.method)(x)


def _as_tuple(out: Any) -> tuple[torch.Tensor, ...]:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


class TorchRunner:
    """The module in torch eager mode.

    Args:
        net: the network (eval mode, CPU).
        method: the method called (``"forward"``, ``"forward_features"``).
    """

    runtime = "torch"

    def __init__(self, net: nn.Module, method: str = "forward") -> None:
        self.net = net.eval()
        self.fn = getattr(net, method)

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        # the input's memory layout is kept: a channels-last view convolves faster in torch than a copy
        with torch.inference_mode():
            return tuple(t.numpy() for t in _as_tuple(self.fn(torch.from_numpy(np.asarray(x, np.float32)))))


class OrtRunner:
    """The module exported to ONNX in memory and run by onnxruntime.

    Args:
        net: the network (eval mode, CPU).
        example_shape: ``(N, C, H, W)`` of an example input (values do not matter).
        dynamic: input axes whose size varies between calls (``{0: "n"}`` batch; ``{0: "n", 2: "h", 3: "w"}``
            also the image size, for the fully convolutional P-net).
        key: names the export in the process-wide cache (e.g. ``"pnet:<sha256>"``); ``""`` exports every time.
        method: the method exported (``"forward"``, ``"forward_features"``).
        threads: intra-op threads (0 = onnxruntime's default).

    Raises:
        ImportError: onnxruntime is not installed; RuntimeError: the export or the session failed.
    """

    runtime = "onnxruntime"

    def __init__(self, net: nn.Module, example_shape: Sequence[int], dynamic: dict[int, str], key: str = "",
                 method: str = "forward", threads: int = 1) -> None:
        # deferred: onnxruntime takes ~0.5 s to import and is only needed by this runtime
        import onnxruntime as ort

        data = _EXPORTED.get(key) if key else None
        if data is None:
            data = self._export(_Forward(net.eval(), method).eval(), tuple(example_shape), dynamic)
            if key:
                _EXPORTED[key] = data
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads > 0:
            opts.intra_op_num_threads, opts.inter_op_num_threads = int(threads), 1
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception classes
            raise RuntimeError(f"onnxruntime cannot load the exported {type(net).__name__}: {exc}") from exc
        self.input = self.session.get_inputs()[0].name

    @staticmethod
    def _export(module: nn.Module, shape: tuple[int, ...], dynamic: dict[int, str]) -> bytes:
        t0, buf = time.perf_counter(), io.BytesIO()
        x = torch.zeros(shape, dtype=torch.float32)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
                torch.onnx.export(module, (x,), buf, input_names=["x"], dynamic_axes={"x": dynamic},
                                  opset_version=OPSET, dynamo=False, do_constant_folding=True)
        except Exception as exc:  # the exporter raises many unrelated types
            raise RuntimeError(f"ONNX export of {type(module.net).__name__} failed: {exc}") from exc
        log.debug("exported %s to ONNX in memory in %.2f s", type(module.net).__name__, time.perf_counter() - t0)
        return buf.getvalue()

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(self.session.run(None, {self.input: np.ascontiguousarray(x, np.float32)}))


def make_runner(net: nn.Module, runtime: str, example_shape: Sequence[int], dynamic: dict[int, str] | None = None,
                key: str = "", method: str = "forward", threads: int = 1) -> NetRunner:
    """A runner of ``net`` in ``runtime`` (one of :data:`FACE_RUNTIMES`).

    Args:
        net, example_shape, dynamic, key, method, threads: as :class:`OrtRunner` (``dynamic`` defaults to the
            batch axis); only ``net`` and ``method`` matter for ``"torch"``.

    Returns:
        The runner. ``"onnxruntime"`` falls back to ``"torch"`` with a warning when onnxruntime is missing
        or the export fails.

    Raises:
        ValueError: unknown runtime.
    """
    if runtime not in FACE_RUNTIMES:
        raise ValueError(f"unknown face runtime {runtime!r} (known: {FACE_RUNTIMES})")
    if runtime == "onnxruntime":
        try:
            return OrtRunner(net, example_shape, dynamic or {0: "n"}, key, method, threads)
        except (ImportError, RuntimeError) as exc:
            log.warning("face network %s runs in torch: %s", type(net).__name__, exc)
    return TorchRunner(net, method)
