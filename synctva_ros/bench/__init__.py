"""``synctva bench``: end-to-end latency of every available backend on realistic utterance windows.

What is measured (one process, sequential windows; docs/performance.md explains the figures):

* **End-to-end latency** from window close to :class:`~synctva_ros.emotion.EmotionResult`
  (p50/p95/p99, seconds) for each backend (torch fp32, torch bf16, onnxruntime, onnxruntime int8
  (``runtime.quantize: int8``); torch CUDA and
  tensorrt when available) in two modes: ``batch`` (every extractor runs at close,
  ``EmotionPipeline.predict`` with its streaming cache detached) and ``streaming`` (the pipeline's
  :class:`~synctva_ros.streaming.StreamingFeatureCache` is fed the window's audio and frames first,
  untimed, as the windower feeds it in the node; ``EmotionPipeline.predict`` at close then runs only
  the text encoder, the rest of the audio, the cache look-ups and the fusion).
* **Per-stage** medians (text, audio, visual, fusion), **throughput** (utterances/s = windows /
  wall time of the timed loop, sequential), **CPU use** (process CPU time / wall time; > 1 means
  several cores), **peak RSS** (``resource.getrusage``, whole process so far).
* **Fusion only**: the network stage (all modalities, text alone, audio alone in one ``infer_subsets``
  call) p50 of torch fp32, onnxruntime and onnxruntime int8 on the same collated batch.
* **FLOPs per stage** (``torch.utils.flop_counter.FlopCounterMode``, the face networks counted in torch; openSMILE
  is C++ and not counted) and the compute lower bound FLOPs / peak, with the peak measured here as the best
  fp32 matmul rate of torch on this machine (with the thread count in use).

Windows: a 3 s utterance of espeak-ng speech (:func:`~synctva_ros.datasets.speech.render_speech`)
with camera frames made from ``skimage.data.astronaut`` (shifted a little per frame) at 15 fps.

Configurations: ``demo`` (the demo profile with the shipped ``models/meld_minilm`` when it
exists, else a development checkpoint trained for a few seconds on random features: labelled
``checkpoint: dev``), ``quality`` (the quality profile's real all-mpnet-base-v2 and openSMILE extractors; an
untrained head while ``models/meld_mpnet`` is not trained: latency only), and ``paper_random`` (a RoBERTa-base-sized
encoder from ``RobertaConfig()`` defaults and a ResNet-50, **random weights: latency only**, frames streamed during
the utterance; fusion at the paper profile's width).

Output: ``<out>/bench.json`` and ``<out>/bench.png``.

Modules: :mod:`~synctva_ros.bench.inputs` (windows, matmul peak), :mod:`~synctva_ros.bench.setups`
(configurations and their checkpoints), :mod:`~synctva_ros.bench.measure` (latency per mode, fusion only),
:mod:`~synctva_ros.bench.flops` (FLOPs per stage, for the lower bounds), :mod:`~synctva_ros.bench.plot` (the chart),
:mod:`~synctva_ros.bench.runner` (the run, the printed summary), :mod:`~synctva_ros.bench.triton` (``--configs
demo,triton``: the network stage through a Triton server under 1, 4 and 16 concurrent clients),
:mod:`~synctva_ros.bench.scaling` (``--scaling``: latency against utterance length, tokens, faces in view and camera
rate; ``bench_scaling.png``).
:mod:`~synctva_ros.bench.soak` is the long soak of the node on the looped demo bag
(``scripts/soak.py`` through :mod:`synctva_ros.ros.soak`, not part of ``synctva bench``).
"""

from __future__ import annotations

from synctva_ros.bench.inputs import measure_peak_gflops, realistic_windows
from synctva_ros.bench.runner import BENCH_SCHEMA_KEYS, ROW_KEYS, format_summary, run_bench

__all__ = ["run_bench", "format_summary", "realistic_windows", "measure_peak_gflops", "BENCH_SCHEMA_KEYS",
           "ROW_KEYS"]
