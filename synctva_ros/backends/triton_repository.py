"""A Triton Inference Server model repository for a checkpoint's network (``synctva serve``).

What the local onnxruntime backend serves, the repository serves: the Sync-TVA fusion network with its
fine-tuned text layers (:meth:`SyncTVA.forward_subsets`, every modality subset of a window in one run).
The text encoder's base layers, openSMILE, the visual frame encoder, pooling and windowing stay on the
robot (they run in the node's extractors, not in a backend today).

Layout (NVIDIA's model-repository convention; ``docs/triton.md``)::

    <repository>/
      synctva_fusion/               # runtime.triton model name (triton.fusion_model)
        config.pbtxt                # platform onnxruntime_onnx, max_batch_size, dynamic_batching, tensors
        1/model.onnx                # the exported graph (opset >= 18)
      synctva_repository.json       # provenance: checkpoint, weights sha256, tensor specs (this module)

The same directory runs in NVIDIA's Triton container (``nvcr.io/nvidia/tritonserver:<yy.mm>-py3``, whose
onnxruntime backend reads ``config.pbtxt``; TensorRT through the onnxruntime backend's TensorRT execution
accelerator) and under :mod:`~synctva_ros.backends.triton_server` (PyTriton: the same names, tensors and
batching, the graph run by onnxruntime in Python callables).

The served graph differs from the local onnxruntime backend's in one respect, which Triton's batching needs:
``subsets`` has a batch axis, ``(B, S, 3)`` bool (each window names its own subsets), because Triton's
dynamic batcher concatenates every input along axis 0. Otherwise inputs and outputs are those of
:func:`~synctva_ros.backends.export.export_fusion` with ``subsets=True``; dynamic axes ``batch``,
``subsets`` and the node axes (``n_text``, ``n_audio``, ``n_visual``, ``n_context``, ``n_text_prefix``),
``-1`` in ``config.pbtxt``.

Errors: :class:`~synctva_ros.backends.export.ExportError` (export failed), ``FileExistsError`` (the
repository exists and ``overwrite`` is off), ``ValueError`` (bad ``max_batch_size``/``delay``).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path
from typing import Any, Mapping

import torch

from .export import (DEFAULT_OPSET, FUSION_OUTPUTS, SUBSETS_INPUT, _axis, _export, _parts, example_fusion_inputs,
                     fusion_input_names)
from .engine_cache import manifest_sha256

__all__ = ["FUSION_MODEL", "REPOSITORY_INFO", "TensorSpec", "ModelSpec", "fusion_model_spec", "config_pbtxt",
           "export_batched_subsets", "write_model_repository", "read_repository_info", "BatchedSubsets"]

#: Default Triton model name of the fusion network (``triton.fusion_model``).
FUSION_MODEL = "synctva_fusion"
#: Provenance file at the repository root (Triton ignores files that are not model directories).
REPOSITORY_INFO = "synctva_repository.json"
_NP = {"FP32": "float32", "FP64": "float64", "BOOL": "bool"}


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """One tensor of a served model: Triton name, datatype (``"FP32"``, ``"BOOL"``; ``"FP64"`` is known too) and
    dims without the batch axis (``-1`` = dynamic)."""

    name: str
    datatype: str
    dims: tuple[int, ...]

    @property
    def numpy_dtype(self) -> str:
        """The numpy dtype name of :attr:`datatype` (``float32``, ``bool``)."""
        return _NP[self.datatype]


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A served model: name, inputs, outputs, batching (``max_batch_size`` rows per execution, the dynamic
    batcher's ``max_queue_delay_us`` microseconds), platform and instance count."""

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    max_batch_size: int = 16
    max_queue_delay_us: int = 1000
    platform: str = "onnxruntime_onnx"
    instances: int = 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (:data:`REPOSITORY_INFO`)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ModelSpec":
        """Inverse of :meth:`to_dict`."""
        def tensors(xs: Any) -> tuple[TensorSpec, ...]:
            return tuple(TensorSpec(x["name"], x["datatype"], tuple(int(v) for v in x["dims"])) for x in xs)
        return cls(str(d["name"]), tensors(d["inputs"]), tensors(d["outputs"]), int(d["max_batch_size"]),
                   int(d["max_queue_delay_us"]), str(d.get("platform", "onnxruntime_onnx")),
                   int(d.get("instances", 1)))


def fusion_model_spec(model: torch.nn.Module, name: str = FUSION_MODEL, max_batch_size: int = 16,
                      max_queue_delay_us: int = 1000, instances: int = 1) -> ModelSpec:
    """The tensors of the served fusion graph of ``model`` (a ``SyncTVA``).

    Shapes (without the batch axis B):
        ``subsets`` ``(S, 3)`` BOOL; ``text`` ``(N_t, F_t)``, ``audio`` ``(N_a, F_a)``, ``visual`` ``(N_v, F_v)``
        FP32 with ``*_mask`` ``(N,)`` BOOL and ``*_time`` ``(N,)`` FP32 (normalised 0..1); with context
        ``context`` ``(K, F_t)`` FP32 and ``context_mask`` ``(K,)`` BOOL; with context word pieces
        ``text_prefix`` ``(M, F_t)`` FP32 and ``text_prefix_mask`` ``(M,)`` BOOL. Outputs ``logits``
        ``(S, C)`` FP32 and ``contributions`` ``(S, 3)`` FP32.

    Raises:
        ValueError: ``max_batch_size`` < 1, a negative delay or ``instances`` < 1.
    """
    if max_batch_size < 1 or max_queue_delay_us < 0 or instances < 1:
        raise ValueError(f"max_batch_size {max_batch_size} (>= 1), max_queue_delay_us {max_queue_delay_us} "
                         f"(>= 0) and instances {instances} (>= 1) are out of range")
    dims = model.dims
    inputs = [TensorSpec(SUBSETS_INPUT, "BOOL", (-1, 3))]
    for n in fusion_input_names(model):
        width = dims["text"] if n.startswith(("context", "text_prefix")) else dims.get(n.split("_")[0], 0)
        if n.endswith("_mask"):
            inputs.append(TensorSpec(n, "BOOL", (-1,)))
        elif n.endswith("_time"):
            inputs.append(TensorSpec(n, "FP32", (-1,)))
        else:
            inputs.append(TensorSpec(n, "FP32", (-1, int(width))))
    outputs = (TensorSpec(FUSION_OUTPUTS[0], "FP32", (-1, int(model.num_classes))),
               TensorSpec(FUSION_OUTPUTS[1], "FP32", (-1, 3)))
    return ModelSpec(name, tuple(inputs), outputs, int(max_batch_size), int(max_queue_delay_us),
                     instances=int(instances))


def config_pbtxt(spec: ModelSpec) -> str:
    """``config.pbtxt`` text of ``spec`` (protobuf text format of Triton's ``ModelConfig``): platform,
    ``max_batch_size``, ``dynamic_batching`` with ``max_queue_delay_microseconds``, inputs and outputs with
    their data types and dims (``-1`` = dynamic), ``instance_group`` of ``KIND_AUTO`` (GPU where there is one)."""
    def tensor(t: TensorSpec) -> str:
        return (f'  {{\n    name: "{t.name}"\n    data_type: TYPE_{t.datatype}\n'
                f'    dims: [ {", ".join(str(d) for d in t.dims)} ]\n  }}')
    return "\n".join([
        f'name: "{spec.name}"', f'platform: "{spec.platform}"', f"max_batch_size: {spec.max_batch_size}",
        "input [", ",\n".join(tensor(t) for t in spec.inputs), "]",
        "output [", ",\n".join(tensor(t) for t in spec.outputs), "]",
        f"dynamic_batching {{\n  max_queue_delay_microseconds: {spec.max_queue_delay_us}\n}}",
        f"instance_group [\n  {{\n    count: {spec.instances}\n    kind: KIND_AUTO\n  }}\n]", ""])


class BatchedSubsets(torch.nn.Module):
    """``forward(subsets (B, S, 3), *inputs)``: :meth:`SyncTVA.forward_subsets` with each row's own subsets.

    Row ``b``, subset ``s`` equals ``forward_subsets(subsets[b], ...)[b, s]`` (the text layers once per row,
    MSDE, graphs and fusion on ``S * B`` rows, the masks of the modalities ``subsets[b, s]`` leaves out set to
    False), so requests of different windows can share one batch. Inputs in ``names`` order
    (:func:`~synctva_ros.backends.export.fusion_input_names`).
    """

    def __init__(self, model: torch.nn.Module, names: list[str]) -> None:
        super().__init__()
        self.model, self.names = model, list(names)

    def forward(self, subsets: torch.Tensor, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = dict(zip(self.names, inputs))
        m = self.model
        text = m._text_states(x["text"], x["text_mask"], x.get("text_prefix"), x.get("text_prefix_mask"))
        keep = subsets.to(torch.bool).transpose(0, 1)  # (S, B, 3)
        s, b = keep.shape[0], keep.shape[1]

        def rows(t: torch.Tensor | None) -> torch.Tensor | None:  # (B, ...) -> (S * B, ...), subset-major
            return None if t is None else t.unsqueeze(0).expand(s, *([-1] * t.dim())).flatten(0, 1)

        def kept(mask: torch.Tensor, i: int) -> torch.Tensor:  # (B, N) -> (S * B, N)
            return (mask.to(torch.bool).unsqueeze(0) & keep[:, :, i].unsqueeze(-1)).flatten(0, 1)

        logits, contrib = m._fuse(rows(text), kept(x["text_mask"], 0), rows(x["text_time"]),
                                  rows(x["audio"]), kept(x["audio_mask"], 1), rows(x["audio_time"]),
                                  rows(x["visual"]), kept(x["visual_mask"], 2), rows(x["visual_time"]),
                                  rows(x.get("context")), rows(x.get("context_mask")))
        return logits.reshape(s, b, -1).transpose(0, 1), contrib.reshape(s, b, -1).transpose(0, 1)


def export_batched_subsets(model: torch.nn.Module, path: str | Path, opset: int = DEFAULT_OPSET) -> Path:
    """Export :class:`BatchedSubsets` of ``model`` to ONNX (tracing exporter, opset >= 18).

    Shapes: see :func:`fusion_model_spec` (with the batch axis ``batch`` first; ``subsets`` is dynamic).

    Raises:
        ExportError: the exporter failed.
    """
    path = Path(path)
    model = model.to("cpu").eval()
    names = fusion_input_names(model)
    args = tuple(a for a in example_fusion_inputs(model, batch=2, nodes={"text": 5, "audio": 4, "visual": 3,
                                                                         "text_prefix": 6}) if a is not None)
    # B=2, S=3, rows with different subsets: nothing is specialised to one size while tracing
    keep = torch.tensor([[[True, True, True], [True, False, False], [False, True, False]],
                         [[True, True, True], [False, True, False], [True, False, True]]])
    axes: dict[str, dict[int, str]] = {SUBSETS_INPUT: {0: "batch", 1: "subsets"}}
    for n in names:
        axes[n] = {0: "batch", 1: _axis(n)}
    for o in FUSION_OUTPUTS:
        axes[o] = {0: "batch", 1: "subsets"}
    _export(BatchedSubsets(model, names).eval(), (keep, *args), path, [SUBSETS_INPUT, *names], list(FUSION_OUTPUTS),
            axes, opset, "torchscript")
    return path


def write_model_repository(model: torch.nn.Module, manifest: Mapping[str, Any] | None, out_dir: str | Path, *,
                           fusion_model: str = FUSION_MODEL, max_batch_size: int = 16, max_queue_delay_us: int = 1000,
                           instances: int = 1, overwrite: bool = False) -> dict[str, Any]:
    """Write the Triton model repository of ``model`` (layout in the module docstring).

    Args:
        model: the loaded ``SyncTVA`` with its text layers attached (what the pipeline runs).
        manifest: its checkpoint manifest (name and hash go into the provenance file).
        out_dir: repository directory (created; a previous repository there is replaced only with
            ``overwrite``).
        fusion_model: the model's name in Triton (``triton.fusion_model``).
        max_batch_size: most rows per execution (Triton's ``max_batch_size``).
        max_queue_delay_us: the dynamic batcher's wait for more requests, microseconds.
        instances: model instances (``instance_group.count``).
        overwrite: replace an existing repository.

    Returns:
        The provenance document (also written to :data:`REPOSITORY_INFO`): ``models`` (name -> spec and
        file), ``checkpoint``, ``weights_sha256``, ``manifest_sha256``, ``class_names``, ``created``.

    Raises:
        FileExistsError: ``out_dir`` holds files and ``overwrite`` is off.
        ExportError: the ONNX export failed.
    """
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} is not empty: pass overwrite (synctva serve --overwrite) to replace it")
        if not (out / REPOSITORY_INFO).is_file():
            raise FileExistsError(f"{out} is not empty and not a synctva model repository (no {REPOSITORY_INFO}): "
                                  "refusing to delete it")
        shutil.rmtree(out)
    spec = fusion_model_spec(model, fusion_model, max_batch_size, max_queue_delay_us, instances)
    version = out / spec.name / "1"
    version.mkdir(parents=True, exist_ok=True)
    export_batched_subsets(model, version / "model.onnx")
    (out / spec.name / "config.pbtxt").write_text(config_pbtxt(spec))
    weights = _parts("fusion", model, DEFAULT_OPSET, "torchscript")["weights_sha256"]  # the export cache's hash
    info = {"format": 1, "models": {spec.name: {"spec": spec.to_dict(), "file": f"{spec.name}/1/model.onnx"}},
            "checkpoint": str((manifest or {}).get("name", "")), "class_names": list(model.class_names),
            "weights_sha256": weights, "manifest_sha256": manifest_sha256(manifest),
            "torch": torch.__version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    (out / REPOSITORY_INFO).write_text(json.dumps(info, indent=2) + "\n")
    return info


def read_repository_info(repository: str | Path) -> dict[str, Any]:
    """The provenance document of a repository written by :func:`write_model_repository`, with each model's
    ``spec`` as a :class:`ModelSpec` and ``path`` its absolute ONNX file.

    Raises:
        FileNotFoundError: no :data:`REPOSITORY_INFO` (not written by ``synctva serve``) or a missing ONNX file.
    """
    root = Path(repository)
    f = root / REPOSITORY_INFO
    if not f.is_file():
        raise FileNotFoundError(f"{root} has no {REPOSITORY_INFO}: write it with `synctva serve --write-only`")
    info = json.loads(f.read_text())
    for name, m in info["models"].items():
        m["spec"] = ModelSpec.from_dict(m["spec"])
        m["path"] = root / m["file"]
        if not m["path"].is_file():
            raise FileNotFoundError(f"model {name}: {m['path']} is missing")
    return info
