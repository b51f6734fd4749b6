"""The checkpoint's fine-tuned text layers run in the text stage, apart from the fusion network (issue 12).

A checkpoint with ``model.text_top_layers = K > 0`` runs K layers of its text encoder inside the Sync-TVA network
(:mod:`~synctva_ros.model.text_top`; the shipped MiniLM checkpoints: all six). Inside the network they run at
window close, although they depend on the transcript and its dialogue context only. With
``features.split_text_top`` (default on) the pipeline takes them out (:func:`split_text_top`): the network the
backend serves gets :class:`TextTopApplied` in their place (its graph then has no text-prefix inputs, and its
cache key differs, the layers' weights being no longer in it), and the layers run as the last step of the text
stage (:func:`apply_text_top`), at the final transcript with ``features.streaming_text``, in the prefetch thread.
The answer is the same network's (the same layers on the same inputs), within the serving backend's tolerance:
``test/backends/test_text_top_serving.py`` checks class probabilities against the unsplit network to 1e-4.

Served by :func:`serve_text_top` on ``runtime.backend``'s engine, as the extractors' encoders are
(:mod:`~synctva_ros.backends.encoder_serving`): onnxruntime for ``onnxruntime`` and ``tensorrt`` (CUDA execution
provider on a CUDA ``runtime.device``; no TensorRT engine for these layers yet), the graph's int8 dynamically
quantised copy with ``runtime.quantize: int8`` (as the fusion graph that held them), torch otherwise and as the
fallback (logged and counted under ``text_top`` in
:func:`~synctva_ros.backends.encoder_serving.encoder_fallbacks`).

* Graph: inputs ``text`` ``(B, N, F)`` float32 and ``text_mask`` ``(B, N)`` bool, and when the layers attend over
  the dialogue context (``spec["context_keys"]``) ``text_prefix`` ``(B, M, F)`` float32 and ``text_prefix_mask``
  ``(B, M)`` bool; output ``hidden`` ``(B, N, F)`` float32. ``B``, ``N``, ``M`` dynamic (``batch``, ``n_text``,
  ``n_text_prefix``). TorchScript tracer, opset 18. A window without context is fed one masked prefix state:
  masked keys get no attention weight and the relative positions are counted from the masks, so the states are
  those without a prefix (same test).
* Cache: ``<cache>/onnx/text_top-<key>.onnx``, key: the layers' state-dict sha256, their frozen relative-position
  table's sha256 (not in the state dict), spec, base encoder identity, inputs, opset, torch version, the graph code's
  hash (:func:`~synctva_ros.backends.engine_cache.graph_source_sha256`); content-checked on every reuse
  (:mod:`~synctva_ros.backends.engine_cache`).
* Parity at start: the runner's states on a fixed seeded probe against torch's, at most :data:`STATE_TOLERANCE`
  (fp32; int8: finite only), else torch serves.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import logging
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import Tensor, nn

from synctva_ros.core.batch import ModalityFeatures
from .encoder_serving import cached_encoder_onnx, run_session, serve_onnx_encoder, serves_encoders
from .engine_cache import graph_source_sha256, state_dict_sha256
from .export import DEFAULT_OPSET, _export

__all__ = ["STATE_TOLERANCE", "TextTopApplied", "split_text_top", "text_top_inputs", "export_text_top",
           "cached_text_top_onnx", "TorchTextTop", "OrtTextTop", "serve_text_top", "apply_text_top"]

log = logging.getLogger(__name__)

#: Max |Δ state| (valid nodes) of the onnxruntime fp32 runner against torch accepted at start.
STATE_TOLERANCE = 1e-3


class TextTopApplied(nn.Module):
    """Stands in for :class:`~synctva_ros.model.text_top.TextTopLayers` in a network whose text nodes come in after
    the layers ran (:func:`split_text_top`): returns the nodes unchanged and takes no prefix.

    Args:
        spec: the layers' spec (kept for what reads it; ``context_keys`` set to False, so the network's graph has
            no text-prefix inputs, :func:`~synctva_ros.backends.export.uses_text_prefix`).

    Shapes:
        ``x`` ``(B, N, F)`` -> ``(B, N, F)``, the same tensor.
    """

    def __init__(self, spec: Mapping[str, Any]) -> None:
        super().__init__()
        self.spec = dict(spec, context_keys=False)

    def forward(self, x: Tensor, mask: Tensor, prefix: Tensor | None = None,
                prefix_mask: Tensor | None = None) -> Tensor:
        return x


def split_text_top(model: nn.Module) -> nn.Module | None:
    """Take the fine-tuned text layers out of ``model`` (in place) for the text stage.

    Args:
        model: a ``SyncTVA`` with its layers attached (``restore_text_top``), or without any.

    Returns:
        The layers (eval mode), now replaced in ``model`` by :class:`TextTopApplied`; ``None`` when ``model`` has no
        attached layers or they were already taken out.
    """
    top = getattr(model, "text_top", None)
    if top is None or isinstance(top, TextTopApplied):
        return None
    model.text_top = TextTopApplied(top.spec)
    return top.eval()


def text_top_inputs(top: nn.Module) -> list[str]:
    """The layers' graph inputs: ``text``, ``text_mask`` and, with ``spec["context_keys"]``, the prefix pair."""
    return ["text", "text_mask"] + (["text_prefix", "text_prefix_mask"] if top.spec.get("context_keys") else [])


def export_text_top(top: nn.Module, path: str | Path, opset: int = DEFAULT_OPSET) -> Path:
    """Export the fine-tuned text layers to ONNX. The module given is neither moved nor changed (a CPU copy is traced
    when it lives elsewhere). TorchScript tracer (:func:`~synctva_ros.backends.export.export_fusion`'s exporter).

    Args:
        top: a :class:`~synctva_ros.model.text_top.TextTopLayers`.
        path: output ``.onnx`` file.
        opset: ONNX opset (>= 18).

    Shapes:
        ``text`` ``(B, N, F)`` float32, ``text_mask`` ``(B, N)`` bool[, ``text_prefix`` ``(B, M, F)`` float32,
        ``text_prefix_mask`` ``(B, M)`` bool with ``spec["context_keys"]``] -> ``hidden`` ``(B, N, F)`` float32;
        ``B``, ``N``, ``M`` dynamic (``batch``, ``n_text``, ``n_text_prefix``).

    Returns:
        ``Path(path)``.

    Raises:
        ExportError: unsupported opset, or the exporter failed.
    """
    on_cpu = all(p.device.type == "cpu" for p in top.parameters())
    module = (top if on_cpu else copy.deepcopy(top).to("cpu")).eval()
    names = text_top_inputs(module)
    g = torch.Generator().manual_seed(0)
    width = int(module.spec["hidden"])
    # B=2, N=5, M=6 with padding in the second row, so no axis is specialised while tracing
    args: list[Tensor] = [torch.randn(2, 5, width, generator=g), torch.tensor([[True] * 5, [True] * 3 + [False] * 2])]
    if len(names) > 2:
        args += [torch.randn(2, 6, width, generator=g), torch.tensor([[True] * 6, [True] * 4 + [False] * 2])]
    axes = {"text": {0: "batch", 1: "n_text"}, "text_mask": {0: "batch", 1: "n_text"},
            "text_prefix": {0: "batch", 1: "n_text_prefix"}, "text_prefix_mask": {0: "batch", 1: "n_text_prefix"},
            "hidden": {0: "batch", 1: "n_text"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        _export(module, tuple(args), Path(path), names, ["hidden"], {k: v for k, v in axes.items()
                                                                      if k in names or k == "hidden"}, opset,
                "torchscript")
    return Path(path)


def cached_text_top_onnx(top: nn.Module, cache_dir: str | Path | None = None, opset: int = DEFAULT_OPSET) -> Path:
    """The cached ONNX file of the layers (``<cache>/onnx/text_top-<key>.onnx``, key: module docstring), exported now
    when the key is new or the cached file fails its content check.

    Raises:
        ExportError: export failed; OSError: the cache is not writable.
    """
    rel = getattr(top, "rel_bias", None)
    parts = {"kind": "text_top", "weights_sha256": state_dict_sha256(top),
             "relative_bias_sha256": hashlib.sha256(rel.detach().cpu().numpy().tobytes()).hexdigest()
             if rel is not None else "", "spec": dict(top.spec), "base": dict(getattr(top, "base", None) or {}),
             "inputs": text_top_inputs(top), "opset": opset, "exporter": "torchscript", "torch": torch.__version__,
             "code_sha256": graph_source_sha256()}
    return cached_encoder_onnx("text_top", parts, lambda p: export_text_top(top, p, opset), cache_dir)


class TorchTextTop:
    """The layers in torch on ``device``: ``runner(x, mask, prefix, prefix_mask) -> (B, N, F)`` float32 CPU tensor.

    Args:
        top: the layers (moved to ``device``).
        device: ``runtime.device``.
    """

    name = "torch"

    def __init__(self, top: nn.Module, device: str = "cpu") -> None:
        self.device = torch.device(device)
        self.top = top.to(self.device).eval()

    def __call__(self, x: Tensor, mask: Tensor, prefix: Tensor | None = None,
                 prefix_mask: Tensor | None = None) -> Tensor:
        dev = self.device
        with torch.inference_mode():
            out = self.top(x.to(dev), mask.to(dev), None if prefix is None else prefix.to(dev),
                           None if prefix_mask is None else prefix_mask.to(dev))
        return out.float().cpu()


class OrtTextTop:
    """The layers in onnxruntime: the same call as :class:`TorchTextTop` (a session failure raises ``RuntimeError``,
    :func:`~synctva_ros.backends.encoder_serving.run_session`).

    Args:
        session: an ``onnxruntime.InferenceSession`` of an :func:`export_text_top` graph.
        name: ``onnxruntime`` or ``onnxruntime-int8``.
        path: the ONNX file.
    """

    def __init__(self, session: Any, name: str, path: Path) -> None:
        self.session, self.name, self.path = session, name, Path(path)
        self.input_names = [i.name for i in session.get_inputs()]

    def __call__(self, x: Tensor, mask: Tensor, prefix: Tensor | None = None,
                 prefix_mask: Tensor | None = None) -> Tensor:
        feeds = {"text": x.detach().cpu().numpy().astype(np.float32, copy=False),
                 "text_mask": mask.detach().cpu().numpy().astype(bool, copy=False)}
        if "text_prefix" in self.input_names:
            b, width = x.shape[0], x.shape[2]
            if prefix is None or prefix.shape[1] == 0:  # one masked state: the same as no prefix (module docstring)
                prefix, prefix_mask = torch.zeros(b, 1, width), torch.zeros(b, 1, dtype=torch.bool)
            elif prefix_mask is None:
                prefix_mask = torch.ones(prefix.shape[:2], dtype=torch.bool)
            feeds["text_prefix"] = prefix.detach().cpu().numpy().astype(np.float32, copy=False)
            feeds["text_prefix_mask"] = prefix_mask.detach().cpu().numpy().astype(bool, copy=False)
        return torch.from_numpy(run_session(self.session, ["hidden"], feeds, "the fine-tuned text layers")[0])


def _parity(top: nn.Module, runner: Any) -> float:
    """Max |Δ state| over the valid nodes of a fixed seeded probe (with and without a prefix), runner against torch."""
    g = torch.Generator().manual_seed(1)
    width = int(top.spec["hidden"])
    x = torch.randn(2, 7, width, generator=g)
    mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])
    prefix = torch.randn(2, 5, width, generator=g)
    pmask = torch.tensor([[True] * 5, [True] * 2 + [False] * 3])
    dev = next(top.parameters()).device
    worst = 0.0
    for p, pm in ((prefix, pmask), (None, None)):
        with torch.inference_mode():
            ref = top(x.to(dev), mask.to(dev), None if p is None else p.to(dev),
                      None if pm is None else pm.to(dev)).float().cpu()
        got = runner(x, mask, p, pm)
        if got.shape != ref.shape or not bool(torch.isfinite(got[mask]).all()):
            return float("inf")
        worst = max(worst, float((got - ref).abs()[mask].max()))
    return worst


def serve_text_top(top: nn.Module | None, runtime: Any) -> TorchTextTop | OrtTextTop | None:
    """The runner of the layers taken out by :func:`split_text_top` on ``runtime``'s backend.

    Args:
        top: the layers (``None``: nothing to serve).
        runtime: :class:`~synctva_ros.config.RuntimeConfig` (backend, device, threads, quantize, cache_dir).

    Returns:
        An :class:`OrtTextTop` (``onnxruntime``/``tensorrt`` backends, parity met) or a :class:`TorchTextTop` on
        ``runtime.device`` (other backends, or the logged and counted fallback); ``None`` for no layers. Never
        raises for a backend that cannot serve them.
    """
    if top is None:
        return None
    device = str(getattr(runtime, "device", "cpu"))
    if not serves_encoders(runtime):
        return TorchTextTop(top, device)
    top.to("cpu")  # the probe's reference and the export run on the CPU copy
    runner = serve_onnx_encoder("text_top", f"fine-tuned text layers ({len(top.spec['layers'])})", runtime,
                                lambda cache_dir: cached_text_top_onnx(top, cache_dir), OrtTextTop,
                                lambda r: _parity(top, r), STATE_TOLERANCE, quantity="states", logger=log)
    return runner if runner is not None else TorchTextTop(top, device)


def apply_text_top(feats: ModalityFeatures, runner: Any) -> ModalityFeatures:
    """One utterance's text nodes after the fine-tuned layers (the text stage's last step).

    Args:
        feats: the extractor's text features: nodes ``x`` ``(N, F)`` and, with the dialogue context's states,
            ``prefix`` ``(M, F)``.
        runner: :func:`serve_text_top`'s runner.

    Returns:
        The same features with ``x`` the layers' output ``(N, F)`` float32 and no ``prefix`` (consumed).
    """
    x = torch.from_numpy(np.ascontiguousarray(feats.x, dtype=np.float32)).unsqueeze(0)
    mask = torch.ones(1, x.shape[1], dtype=torch.bool)
    prefix = pmask = None
    if feats.prefix is not None and feats.prefix.shape[0] > 0:
        prefix = torch.from_numpy(np.ascontiguousarray(feats.prefix, dtype=np.float32)).unsqueeze(0)
        pmask = torch.ones(1, prefix.shape[1], dtype=torch.bool)
    out = runner(x, mask, prefix, pmask)[0].numpy().astype(np.float32, copy=False)
    return dataclasses.replace(feats, x=out, prefix=None)
