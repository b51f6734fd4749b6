"""int8 dynamic quantisation of an exported fusion graph, for the onnxruntime backend (``runtime.quantize``).

``runtime.quantize: int8`` runs :func:`onnxruntime.quantization.quantize_dynamic` on the exported graph:
every ``MatMul`` and ``Gemm`` whose second input is a weight (``MatMulConstBOnly``, onnxruntime's default
in dynamic mode) gets int8 weights, with one scale per output column (``per_channel``) stored in the file,
and its activations are quantised to uint8 at run time, per tensor, from their observed range
(``DynamicQuantizeLinear`` -> ``MatMulInteger``/``DynamicQuantizeMatMul``). Everything else (attention
score products of two activations, LayerNorm, softmax, GELU, the graph-attention gathers) stays fp32. No
calibration data is needed. For the demo checkpoint nearly all multiply-adds are in its six fine-tuned MiniLM
layers (:mod:`~synctva_ros.model.text_top`); with ``features.split_text_top`` (default) their own graph gets the
same quantisation in the text stage (:mod:`~synctva_ros.backends.text_top_serving`).

onnxruntime's optional pre-processing (``quant_pre_process``) is not run: its symbolic shape inference
fails on this graph ("Incomplete symbolic shape inference"), and with only ONNX shape inference and graph
optimisation the quantised graph was no faster here (38.7 vs 39.6 ms p50, one loaded core); the quantiser's
advice to run it is kept out of the log.

Weights are quantised to the 7-bit range (``reduce_range``): on x86 CPUs without VNNI, onnxruntime's
uint8 x int8 kernels add pairs of products in int16 and can saturate with full-range weights; with 7 bits
the same file gives the same answers on every CPU (measured effect on accuracy: docs/performance.md).

The quantised file is cached next to the fp32 export it came from (``<cache>/onnx/<stem>_int8-<key>.onnx``,
:mod:`~synctva_ros.backends.engine_cache`), keyed by the fp32 file's sha256, the settings above and the
onnxruntime and onnx versions; like every cached artefact, its content is checked against the hash
recorded when it was written before it is loaded.

Tolerance: :data:`INT8_TOLERANCE` (max absolute difference of class probabilities against torch fp32). Measured
with ``models/meld_minilm`` on the 1,109 MELD dev windows, over the network's three distributions per window:
median 0.015, 99th percentile 0.095, at most 0.150; weighted F1 57.1 against 56.7 in fp32, the same label on
96.9 % of the windows; the network stage 1.7x faster than fp32 on one CPU thread (docs/performance.md;
``scripts/experiments/network_stage_timing.py``; ``test/backends/test_quantize.py`` checks real windows).
Quantising takes about 3.5 s (once per checkpoint and onnxruntime version, then cached).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from synctva_ros.core.hashing import file_sha256
from .base import BackendUnavailable
from .engine_cache import CachedArtifact, cache_root, cached_build

__all__ = ["QUANTIZE_MODES", "INT8_TOLERANCE", "INT8_SETTINGS", "quantize_int8", "cached_quantized_onnx"]

log = logging.getLogger(__name__)

#: Values of ``runtime.quantize``.
QUANTIZE_MODES = ("none", "int8")
#: Max |Δ probability| of the int8 graph against torch fp32 that the backend promises (measured at most 0.150).
INT8_TOLERANCE = 0.2
#: The ``quantize_dynamic`` settings (also part of the cache key).
INT8_SETTINGS: dict[str, Any] = {"method": "quantize_dynamic", "op_types": ["MatMul", "Gemm"],
                                 "weight_type": "QInt8", "per_channel": True, "reduce_range": True}


def _quantization() -> Any:
    try:
        # deferred: onnxruntime (and onnx, which its quantisation tools need) are optional dependencies
        from onnxruntime import quantization
    except ImportError as exc:
        raise BackendUnavailable(f"runtime.quantize=int8 needs onnxruntime's quantisation tools and onnx "
                                 f"({exc}): pip install onnxruntime onnx, or use runtime.quantize none") from exc
    return quantization


def quantize_int8(src: str | Path, dst: str | Path, per_channel: bool | None = None,
                  reduce_range: bool | None = None) -> Path:
    """Write the int8 dynamically quantised copy of the ONNX file ``src`` to ``dst``.

    Same inputs, outputs and dynamic axes as ``src``. ``per_channel`` and ``reduce_range`` default to
    :data:`INT8_SETTINGS` (what the backend uses; other values are for experiments).

    Raises:
        BackendUnavailable: onnxruntime's quantisation tools or onnx are missing, or quantisation failed
            (the message says why).
    """
    q = _quantization()
    hint = _NoPreprocessingHint()
    logging.getLogger().addFilter(hint)
    try:
        q.quantize_dynamic(str(src), str(dst), op_types_to_quantize=list(INT8_SETTINGS["op_types"]),
                           weight_type=q.QuantType.QInt8,
                           per_channel=bool(INT8_SETTINGS["per_channel"] if per_channel is None else per_channel),
                           reduce_range=bool(INT8_SETTINGS["reduce_range"] if reduce_range is None else reduce_range))
    except Exception as exc:  # the quantiser raises many unrelated types
        raise BackendUnavailable(f"int8 quantisation of {src} failed: {exc}; use runtime.quantize none") from exc
    finally:
        logging.getLogger().removeFilter(hint)
    return Path(dst)


class _NoPreprocessingHint(logging.Filter):
    """Drops the quantiser's root-logger advice to pre-process the model first (see the module docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def cached_quantized_onnx(src: str | Path, cache_dir: str | Path | None = None) -> Path:
    """The cached int8 copy of the fp32 ONNX file ``src`` (quantised now when its key is new).

    Args:
        src: an exported fusion graph (usually itself in the cache, ``<stem>-<key>.onnx``).
        cache_dir: ``runtime.cache_dir`` (``None``/empty: the default cache).

    Returns:
        ``<cache>/onnx/<stem>_int8-<key16>.onnx``.

    Raises:
        BackendUnavailable: see :func:`quantize_int8`; OSError: the cache is not writable.
    """
    src = Path(src)
    q = _quantization()
    import onnx  # deferred: optional (needed by the quantiser; its version is part of the key)
    import onnxruntime

    stem = src.stem.rsplit("-", 1)[0] if "-" in src.stem else src.stem
    parts = {"kind": "quantized", "source": src.name, "source_sha256": file_sha256(src), **INT8_SETTINGS,
             "onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__}
    art = CachedArtifact(cache_root(cache_dir), "onnx", f"{stem}_int8", "onnx", parts)
    path, built = cached_build(art, lambda p: quantize_int8(src, p))
    if built:
        log.info("quantised %s to int8 (%s) with onnxruntime %s", src.name, q.__name__, onnxruntime.__version__)
    return path
