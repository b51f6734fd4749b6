"""TensorRT backend: the exported fusion graph as a TensorRT engine on an NVIDIA GPU.

Follows NVIDIA's TensorRT 10 Python API ("Developer Guide: The Python API"):
``trt.Builder`` -> ``create_network`` (with ``EXPLICIT_BATCH`` on TensorRT < 10, where the
flag still exists) -> ``trt.OnnxParser`` -> ``BuilderConfig`` (workspace limit, FP16/BF16 flag,
one optimisation profile with min/opt/max shapes for every dynamic axis, an
``IProgressMonitor`` where available) -> ``build_serialized_network`` ->
``Runtime.deserialize_cuda_engine`` -> ``IExecutionContext`` with ``set_input_shape``,
``set_tensor_address`` and ``execute_async_v3`` on a CUDA stream. Buffers are torch CUDA
tensors (no pycuda).

Engines are cached (:mod:`~synctva_ros.backends.engine_cache`) under a key of the ONNX
file's model hash, the TensorRT version, the GPU name and compute capability, the
precision and the profile shapes; an engine is rebuilt only when that key changes.

Not verified on real hardware in this project: ``tensorrt`` cannot be installed on the
development machines and no GPU machine was available (docs/performance.md). The
cache-key logic and the background build/fallback (:class:`~synctva_ros.backends.switching.
SwitchingBackend`) are tested without TensorRT.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from synctva_ros.core.batch import Batch
from synctva_ros.core.hashing import file_sha256
from .base import Backend, BackendUnavailable
from .engine_cache import CachedArtifact, cache_root, cached_build

__all__ = ["tensorrt_available", "require_tensorrt", "profile_shapes", "engine_parts", "build_engine",
           "TensorRTBackend", "DEFAULT_MAX_BATCH"]

log = logging.getLogger(__name__)

DEFAULT_MAX_BATCH = 8
_WORKSPACE_BYTES = 1 << 30


def tensorrt_available() -> tuple[bool, str]:
    """``(True, version)`` when ``tensorrt`` imports and a CUDA GPU is visible, else ``(False, reason)``."""
    try:
        import tensorrt as trt  # noqa: F401  (deferred: optional, CUDA-only; absent on most machines)
    except ImportError as exc:
        return False, f"tensorrt not installed ({exc.__class__.__name__}: {exc})"
    if not torch.cuda.is_available():
        return False, "tensorrt is installed but torch sees no CUDA GPU"
    return True, str(trt.__version__)


def require_tensorrt() -> Any:
    """The ``tensorrt`` module.

    Raises:
        BackendUnavailable: tensorrt is not importable or there is no CUDA GPU; the message
            names the backends to use instead.
    """
    ok, why = tensorrt_available()
    if not ok:
        raise BackendUnavailable(f"{why}: use backend onnxruntime or torch")
    import tensorrt as trt  # deferred: optional, CUDA-only (tensorrt_available has checked it imports)

    return trt


def profile_shapes(input_names: list[str], dims: Mapping[str, int], max_nodes: Mapping[str, int],
                   context_turns: int = 0, max_batch: int = DEFAULT_MAX_BATCH,
                   ) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
    """min/opt/max shapes of every fusion input for one optimisation profile.

    Batch: 1 / 1 / ``max_batch`` (the node sends one utterance at a time). Node axes:
    1 / ``max_nodes[m]`` / ``max_nodes[m]`` (the text prefix: ``max_nodes["text_prefix"]``). Context:
    ``context_turns`` fixed.

    Args:
        input_names: the ONNX graph's input names.
        dims: feature width per modality.
        max_nodes: most nodes per modality (text_max_tokens, audio_max_nodes, max_frames).
        context_turns: K.
        max_batch: largest batch.

    Returns:
        ``{name: (min, opt, max)}``; feature inputs are 3-D, masks and times 2-D.
    """
    out: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = {}
    for name in input_names:
        mod = "text_prefix" if name.startswith("text_prefix") else name.split("_")[0]
        if mod == "context":
            n_lo = n_opt = n_hi = int(context_turns)
            width = int(dims["text"])
        else:
            n_lo, n_opt, n_hi = 1, int(max_nodes[mod]), int(max_nodes[mod])
            width = int(dims["text" if mod == "text_prefix" else mod])
        tail = (width,) if name in ("text", "audio", "visual", "context", "text_prefix") else ()
        out[name] = ((1, n_lo, *tail), (1, n_opt, *tail), (int(max_batch), n_hi, *tail))
    return out


def engine_parts(onnx_path: str | Path, trt_version: str, gpu_name: str, compute_capability: str,
                 precision: str, shapes: Mapping[str, Any]) -> dict[str, Any]:
    """Cache-key parts of an engine: ONNX model hash, TensorRT version, GPU, precision, profile shapes."""
    return {"kind": "tensorrt_engine", "onnx_sha256": file_sha256(onnx_path), "tensorrt": str(trt_version),
            "gpu": str(gpu_name), "compute_capability": str(compute_capability), "precision": str(precision),
            "profile": {k: [list(s) for s in v] for k, v in sorted(shapes.items())}}


def _progress_monitor(trt: Any) -> Any | None:
    """An ``IProgressMonitor`` logging build phases (TensorRT >= 10), else ``None``."""
    base = getattr(trt, "IProgressMonitor", None)
    if base is None:
        return None

    class _LogProgress(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            base.__init__(self)
            self._t0: dict[str, float] = {}

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            self._t0[phase_name] = time.perf_counter()
            log.info("TensorRT build: %s (%d steps)%s", phase_name, num_steps,
                     f" in {parent_phase}" if parent_phase else "")

        def step_complete(self, phase_name: str, step: int) -> bool:
            log.debug("TensorRT build: %s step %d", phase_name, step)
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            log.info("TensorRT build: %s done in %.1f s", phase_name,
                     time.perf_counter() - self._t0.pop(phase_name, time.perf_counter()))

    return _LogProgress()


def build_engine(onnx_path: str | Path, out_path: str | Path, shapes: Mapping[str, Any],
                 precision: str = "fp16", workspace_bytes: int = _WORKSPACE_BYTES) -> Path:
    """Build a serialized TensorRT engine from an ONNX file.

    Args:
        onnx_path: the ONNX graph.
        out_path: where the serialized engine is written.
        shapes: ``{input: (min, opt, max)}`` (:func:`profile_shapes`) for every dynamic input.
        precision: ``"fp32"``, ``"fp16"`` (``BuilderFlag.FP16``) or ``"bf16"`` (``BuilderFlag.BF16``).
        workspace_bytes: workspace memory-pool limit.

    Raises:
        BackendUnavailable: tensorrt missing, the ONNX file does not parse (parser errors
            listed), or the build fails.
    """
    trt = require_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if int(str(trt.__version__).split(".")[0]) < 10:  # explicit batch is the only mode from TensorRT 10 on
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendUnavailable(f"TensorRT cannot parse {onnx_path}: {errors}; use backend onnxruntime")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif precision == "bf16":
        config.set_flag(trt.BuilderFlag.BF16)
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        name = network.get_input(i).name
        if name not in shapes:
            raise BackendUnavailable(f"no optimisation-profile shapes for TensorRT input '{name}'")
        lo, opt, hi = shapes[name]
        profile.set_shape(name, tuple(lo), tuple(opt), tuple(hi))
    config.add_optimization_profile(profile)
    monitor = _progress_monitor(trt)
    if monitor is not None:
        config.progress_monitor = monitor
    t0 = time.perf_counter()
    log.info("building TensorRT engine (%s) from %s", precision, onnx_path)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendUnavailable(f"TensorRT engine build failed for {onnx_path} (see TensorRT log); "
                                 "use backend onnxruntime")
    Path(out_path).write_bytes(bytes(serialized))
    log.info("TensorRT engine built in %.1f s", time.perf_counter() - t0)
    return Path(out_path)


_TORCH_DTYPES = {"FLOAT": torch.float32, "HALF": torch.float16, "BF16": torch.bfloat16, "BOOL": torch.bool,
                 "INT32": torch.int32, "INT64": torch.int64, "INT8": torch.int8}


class TensorRTBackend(Backend):
    """Fusion model as a TensorRT engine (cached on disk).

    Args:
        onnx_path: exported fusion graph.
        shapes: optimisation-profile shapes (:func:`profile_shapes`).
        precision: ``"fp32"``, ``"fp16"`` or ``"bf16"``.
        device: ``"cuda"`` or ``"cuda:N"``.
        cache_dir: engine cache root (``runtime.cache_dir``).

    Shapes:
        ``infer(batch)`` -> logits ``(B, C)``, contributions ``(B, 3)``, float32. Batches beyond the
        profile's max shapes raise ``ValueError``.

    Raises:
        BackendUnavailable: no tensorrt, no GPU, or the engine cannot be built or loaded.
    """

    name = "tensorrt"

    def __init__(self, onnx_path: str | Path, shapes: Mapping[str, Any], precision: str = "fp16",
                 device: str = "cuda", cache_dir: str | Path | None = None) -> None:
        trt = require_tensorrt()
        self.tolerance = {"fp32": 1e-4, "fp16": 5e-3, "bf16": 2e-2}[precision]
        self.device = torch.device(device if device.startswith("cuda") else "cuda")
        props = torch.cuda.get_device_properties(self.device)
        parts = engine_parts(onnx_path, trt.__version__, props.name, f"{props.major}.{props.minor}", precision,
                             shapes)
        art = CachedArtifact(cache_root(cache_dir), "tensorrt", "fusion", "engine", parts)
        self.engine_path, built = cached_build(art, lambda p: build_engine(onnx_path, p, shapes, precision))
        log.info("%s TensorRT engine %s", "built" if built else "loaded cached", self.engine_path)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if self.engine is None:
            raise BackendUnavailable(f"TensorRT could not deserialize {self.engine_path}; delete it or use "
                                     "backend onnxruntime")
        self.context = self.engine.create_execution_context()
        self.shapes = dict(shapes)
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self._dtypes: dict[str, torch.dtype] = {}
        for i in range(self.engine.num_io_tensors):
            n = self.engine.get_tensor_name(i)
            mode = self.engine.get_tensor_mode(n)
            (self.inputs if mode == trt.TensorIOMode.INPUT else self.outputs).append(n)
            self._dtypes[n] = _TORCH_DTYPES[self.engine.get_tensor_dtype(n).name]
        self.stream = torch.cuda.Stream(device=self.device)

    def infer(self, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        """Logits ``(B, C)`` and contributions ``(B, 3)`` (float32 numpy)."""
        keep: list[torch.Tensor] = []
        with torch.cuda.device(self.device), torch.cuda.stream(self.stream):
            for n in self.inputs:
                v = getattr(batch, n)
                if v is None:
                    raise ValueError(f"the engine needs input '{n}' but the batch has none")
                hi = self.shapes[n][2]
                if any(s > h for s, h in zip(v.shape, hi)):
                    raise ValueError(f"input '{n}' shape {tuple(v.shape)} exceeds the engine profile max {hi}")
                t = v.to(self.device, dtype=self._dtypes[n], non_blocking=True).contiguous()
                keep.append(t)
                self.context.set_input_shape(n, tuple(t.shape))
                self.context.set_tensor_address(n, t.data_ptr())
            outs: dict[str, torch.Tensor] = {}
            for n in self.outputs:
                shape = tuple(self.context.get_tensor_shape(n))
                outs[n] = torch.empty(shape, dtype=self._dtypes[n], device=self.device)
                self.context.set_tensor_address(n, outs[n].data_ptr())
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError("TensorRT execute_async_v3 failed")
        self.stream.synchronize()
        return (outs["logits"].float().cpu().numpy(), outs["contributions"].float().cpu().numpy())
