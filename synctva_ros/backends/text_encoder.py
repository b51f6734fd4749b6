"""The text extractor's encoder served by the selected backend (issue 12): onnxruntime (CPU or CUDA), torch fallback.

The pipeline's text extractor (:class:`~synctva_ros.features.text.TextEncoder`) runs a Hugging Face encoder on
every window's transcript (with dialogue context, up to a few hundred word pieces). With ``runtime.backend``
``onnxruntime`` (and ``tensorrt``, see below) :func:`serve_text_encoder` exports that encoder — as the extractor
holds it, i.e. cut to ``features.text_layer`` layers when the checkpoint fine-tunes the layers above inside the
model (:mod:`~synctva_ros.model.text_top`; those are served apart, :mod:`~synctva_ros.backends.text_top_serving`,
or inside the fusion graph) — to
ONNX and hands the extractor a runner (:attr:`TextEncoder.runner`) that answers its ``layer_states`` calls with
an onnxruntime session. Everything around the encoder (tokenisation, node selection, pooling) stays the
extractor's, so the features are those of torch within the stated parity.

* Graph: inputs ``input_ids`` ``(B, T)`` int64, ``attention_mask`` ``(B, T)`` int64 and, for tokenizers that
  produce it (BERT, MiniLM), ``token_type_ids`` ``(B, T)`` int64 (the second segment of ``context | utterance``
  pairs is 1); output ``hidden`` ``(B, T, F)`` float32, the states of the extractor's layer; ``B`` and ``T``
  dynamic (``batch``, ``tokens``). TorchScript tracer, opset 18
  (:func:`~synctva_ros.backends.export.export_text_encoder`).
* Cache: ``<cache>/onnx/text_encoder-<key>.onnx`` keyed by the extractor's identity (weights and tokenizer
  sha256, layer), the number of encoder layers exported, the inputs, exporter, opset, torch and transformers
  versions (:mod:`~synctva_ros.backends.engine_cache`: content-checked on every reuse).
* ``runtime.quantize: int8``: the graph's int8 dynamically quantised copy (:mod:`~synctva_ros.backends.quantize`,
  the same settings as the fusion graph), cached next to it.
* Parity: at start the runner's states on a fixed context pair are compared with torch's; above
  :data:`STATE_TOLERANCE` (fp32; measured about 3e-6 for all-MiniLM-L6-v2 and all-mpnet-base-v2) the extractor
  stays on torch with a warning. int8 is checked for finite states only (its effect is measured on
  probabilities, docs/performance.md).
* Fallback: export, quantisation or session failures (onnxruntime missing, an encoder the tracer cannot take)
  are logged once, counted (:func:`~synctva_ros.backends.encoder_serving.encoder_fallbacks`) and the extractor
  keeps torch; nothing raises. These steps are :mod:`~synctva_ros.backends.encoder_serving`'s, shared with the
  visual encoder (:mod:`~synctva_ros.backends.visual_encoder`).
* ``torch`` on a CUDA device with ``runtime.cuda_graphs`` (the default): the encoder replayed from CUDA graphs
  (:class:`~synctva_ros.backends.cuda_graphs.CudaGraphTextRunner`), after the same parity probe against eager torch.
* ``tensorrt``: the encoder is served by onnxruntime on ``runtime.device`` (CUDA execution provider when this
  onnxruntime has it) while the fusion network gets its TensorRT engine; TensorRT engines for the encoders are
  not built yet (no TensorRT on the development machines to test them against).
* An encoder cut to its embeddings alone (``features.text_layer: 0``, the shipped MiniLM checkpoints, whose six
  layers run after it, :mod:`~synctva_ros.backends.text_top_serving`) stays in torch: a table look-up and a
  LayerNorm, well under a millisecond.

Threads: ``runtime.threads`` intra-op threads (0: onnxruntime's default).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from .base import BackendUnavailable
from .cuda_graphs import CudaGraphTextRunner, graphs_wanted
from .encoder_serving import cached_encoder_onnx, run_session, serve_onnx_encoder, serves_encoders
from .export import DEFAULT_OPSET, export_text_encoder

__all__ = ["STATE_TOLERANCE", "OrtTextRunner", "cached_text_onnx", "serve_text_encoder", "encoder_layers"]

log = logging.getLogger(__name__)

#: Max |Δ state| (valid tokens) of the onnxruntime fp32 runner against torch accepted at start.
STATE_TOLERANCE = 1e-3
_PROBE = ("Monica: So what happened after that? Ross: I told her everything.", "Joey: Wait, you did what?!")


def encoder_layers(hf_model: torch.nn.Module) -> int:
    """Transformer layers the Hugging Face encoder runs (``encoder.layer``; -1 when it has no such list)."""
    layers = getattr(getattr(hf_model, "encoder", None), "layer", None)
    return len(layers) if isinstance(layers, torch.nn.ModuleList) else -1


class OrtTextRunner:
    """The extractor's encoder in onnxruntime: ``runner(enc) -> (B, T, F)`` float32 CPU tensor.

    Args:
        session: an ``onnxruntime.InferenceSession`` of a :func:`~synctva_ros.backends.export.export_text_encoder`
            graph.
        name: what serves the encoder (``onnxruntime`` or ``onnxruntime-int8``).
        path: the ONNX file.

    Shapes:
        ``enc`` the tokenizer's ``input_ids``/``attention_mask`` (``token_type_ids`` zeros when the graph wants
        it and ``enc`` has none), ``(B, T)`` -> ``(B, T, F)``.
    """

    def __init__(self, session: Any, name: str, path: Path) -> None:
        self.session, self.name, self.path = session, name, Path(path)
        self.input_names = [i.name for i in session.get_inputs()]
        self.providers = list(session.get_providers())

    def __call__(self, enc: Mapping[str, torch.Tensor]) -> torch.Tensor:
        ids = enc["input_ids"]
        feeds = {}
        for n in self.input_names:
            v = enc.get(n)
            v = torch.zeros_like(ids) if v is None else v
            feeds[n] = np.ascontiguousarray(v.detach().cpu().numpy().astype(np.int64, copy=False))
        return torch.from_numpy(run_session(self.session, ["hidden"], feeds, f"the text encoder ({self.name})")[0])


def _graph_inputs(extractor: Any) -> list[str]:
    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in getattr(extractor.tokenizer, "model_input_names", ()):
        names.append("token_type_ids")
    return names


def cached_text_onnx(extractor: Any, cache_dir: str | Path | None = None, opset: int = DEFAULT_OPSET) -> Path:
    """The cached ONNX file of ``extractor``'s encoder (exported now when its key is new).

    Args:
        extractor: a :class:`~synctva_ros.features.text.TextEncoder` (its model as kept, ``output_layer``,
            tokenizer inputs and identity).
        cache_dir: ``runtime.cache_dir`` (``None``: the default cache).
        opset: ONNX opset (>= 18).

    Returns:
        ``<cache>/onnx/text_encoder-<key>.onnx`` (:func:`~synctva_ros.backends.export.export_text_encoder`'s
        graph; key: module docstring).

    Raises:
        ExportError: export failed; OSError: the cache is not writable.
    """
    import transformers  # deferred: only its version, for the key (the extractor has imported it)

    names = _graph_inputs(extractor)
    layer = int(extractor.output_layer)
    parts = {"kind": "text_encoder", "identity": extractor.identity(), "layers": encoder_layers(extractor.model),
             "output_layer": layer, "inputs": names, "opset": opset, "exporter": "torchscript",
             "torch": torch.__version__, "transformers": transformers.__version__}
    return cached_encoder_onnx("text_encoder", parts,
                               lambda p: export_text_encoder(extractor.model, p, names, layer, opset), cache_dir)


def _parity(extractor: Any, runner: Any) -> float:
    """Max |Δ state| over the valid tokens of a fixed context pair and a short text, runner against torch."""
    enc = extractor.tokenizer([_PROBE[0], _PROBE[1][:12]], [_PROBE[1], _PROBE[0][:20]], padding=True,
                              return_tensors="pt")
    saved, extractor.runner = extractor.runner, None
    try:
        with torch.inference_mode():
            ref, mask = extractor.layer_states(dict(enc))
    finally:
        extractor.runner = saved
    got = runner(enc)
    if got.shape != ref.shape or not bool(torch.isfinite(got).all()):
        return float("inf")
    return float((got - ref).abs()[mask].max())


def _serve_cuda_graphs(extractor: Any) -> str:
    """Serve ``extractor``'s encoder with a :class:`~synctva_ros.backends.cuda_graphs.CudaGraphTextRunner` when its
    states on the probe agree with eager torch within :data:`STATE_TOLERANCE`; else torch (logged)."""
    try:
        runner = CudaGraphTextRunner(extractor, _graph_inputs(extractor))
        diff = _parity(extractor, runner)
    except (BackendUnavailable, RuntimeError) as exc:  # not on CUDA; a capture that failed
        log.warning("text encoder %s: no CUDA graphs (%s); eager torch serves", extractor.name, exc)
        return "torch"
    if not diff <= STATE_TOLERANCE:
        log.warning("text encoder %s: CUDA-graph states differ from torch by %.3g (> %g); eager torch serves",
                    extractor.name, diff, STATE_TOLERANCE)
        return "torch"
    try:
        runner.warm(batch=1)  # one utterance (with its context) per window in the node: no capture mid-run
    except RuntimeError as exc:
        log.warning("text encoder %s: CUDA graph capture failed (%s); eager torch serves", extractor.name, exc)
        return "torch"
    log.info("text encoder %s replayed from CUDA graphs (max |state diff| %.2g on the probe)", extractor.name, diff)
    extractor.runner = runner
    return runner.name


def serve_text_encoder(extractor: Any, runtime: Any) -> str:
    """Let ``runtime``'s backend serve ``extractor``'s encoder; returns what serves it now.

    Args:
        extractor: a :class:`~synctva_ros.features.text.TextEncoder` (``None``: nothing to serve). Its
            ``runner`` is set (onnxruntime) or cleared (torch); its torch model is kept (the fallback, FLOP
            counts, the fine-tuned layers' base weights).
        runtime: :class:`~synctva_ros.config.RuntimeConfig` (backend, device, threads, quantize, cache_dir).

    Returns:
        ``"torch"``, ``"torch-cudagraph"`` (backend torch on CUDA with ``runtime.cuda_graphs``), ``"onnxruntime"`` or
        ``"onnxruntime-int8"`` (``""`` for no extractor). Never raises for a
        backend that cannot serve it: the reason is logged and torch serves.
    """
    if extractor is None or not hasattr(extractor, "runner"):
        return ""
    extractor.runner = None
    if not (serves_encoders(runtime) or graphs_wanted(runtime)):
        return "torch"
    if encoder_layers(extractor.model) == 0:
        log.info("text encoder %s runs its embeddings only (features.text_layer 0): torch", extractor.name)
        return "torch"
    if graphs_wanted(runtime):
        return _serve_cuda_graphs(extractor)
    runner = serve_onnx_encoder("text", f"text encoder {extractor.name}", runtime,
                                lambda cache_dir: cached_text_onnx(extractor, cache_dir), OrtTextRunner,
                                lambda r: _parity(extractor, r), STATE_TOLERANCE, quantity="states", logger=log)
    extractor.runner = runner
    return "torch" if runner is None else runner.name
