#!/bin/bash
# GPU rows of `synctva bench` (issue 12 item 4) on a lent GPU machine that has torch with CUDA but cannot install
# packages or reach a model hub (this project's `device` tool; docs/performance.md, "GPU").
#
# Prepared on the development machine (ignored folder .gpu/, carried to the GPU machine):
#   .gpu/whl/    Python 3.12 wheels the GPU image lacks: opensmile and its aud* dependencies, soundfile, cffi
#                and facenet-pytorch (MTCNN weights) (`pip download --no-deps --only-binary=:all: --python-version 3.12 ...`)
#   .gpu/face-api/  face_expression_model and tiny_face_detector_model files of @vladmandic/face-api (the face expert)
#   .gpu/cache/  SYNCTVA_CACHE holding bench/speech/ (.npy files with their hash sidecars): the bench's espeak-ng
#                speech, rendered here by scripts/experiments/gpu_bench_speech.py (bench_speech), since espeak-ng is
#                not on that machine
# The configuration is paper_random (a RoBERTa-base-sized text encoder, the size of the quality profile's mpnet, and a
# ResNet-50, random weights: latency only): real encoder weights cannot travel (the tool carries 64 MiB).
# Usage there: OUT=<folder> [BACKENDS=<rows>] [SCALING_REPEATS=n] [EXTRA="<more synctva bench arguments>"]
#   scripts/experiments/gpu_bench.sh [repeats] [scaling]
#   (EXTRA e.g. "--set features.streaming_text=false"; paper_random takes the --set keys of PAPER_RANDOM_KEYS)
#   (scaling: off|tiny|full; the series run on the pipeline's default backend: torch on CUDA with CUDA graphs)
set -u
OUT=${OUT:-out/gpu_bench}
REPEATS=${1:-50}
SCALING=${2:-full}
BACKENDS=${BACKENDS:-torch cuda fp32,torch cuda fp16,torch cuda graphs,onnxruntime cuda,tensorrt fp16}
SCALING_REPEATS=${SCALING_REPEATS:-10}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/gpu_site/site-packages .gpu/whl/*.whl || exit 1
export PYTHONPATH=/tmp/gpu_site/site-packages:$PWD PYTHONUNBUFFERED=1 SYNCTVA_CACHE=$PWD/.gpu/cache \
  SYNCTVA_FACE_API_DIR=$PWD/.gpu/face-api
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  python3 -c "import torch, onnxruntime as o; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'onnxruntime', o.__version__, o.get_available_providers())"
  python3 -c "import tensorrt; print('tensorrt', tensorrt.__version__)" 2>&1 | tail -n 1
  nproc
} | tee "$OUT/machine.txt"
# features.face_crop=false: the image's OpenCV 5 has no Haar cascades (a CPU crop before the ResNet; same ResNet work)
# the command's function called directly: a failure prints its whole traceback (the CLI logs one line)
python3 -c "import logging, sys; from synctva_ros.cli import build_parser
logging.basicConfig(level=logging.INFO, format='[%(levelname)s] %(name)s: %(message)s')
a = build_parser().parse_args(sys.argv[1:]); sys.exit(a.func(a))" bench --configs paper_random --device cuda --repeats "$REPEATS" --set features.face_crop=false \
  --backends "$BACKENDS" --scaling "$SCALING" --scaling-repeats "$SCALING_REPEATS" --out "$OUT" ${EXTRA:-} 2>&1 | grep -v "Loading weights\|Writing model"
