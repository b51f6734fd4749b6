"""Render the speech of ``synctva bench --configs paper_random --scaling full`` into ``$SYNCTVA_CACHE/bench/speech``.

For scripts/experiments/gpu_bench.sh: a GPU machine without espeak-ng measures the same audio when this cache is
carried there. Builds the paper_random pipeline on the CPU (its random tokenizer decides the ``tokens`` series'
transcripts) and makes every window the bench would make, timing nothing.

Usage: SYNCTVA_CACHE=.gpu/cache python scripts/experiments/gpu_bench_speech.py
"""

from __future__ import annotations

from synctva_ros.backends.engine_cache import cache_root
from synctva_ros.bench.inputs import realistic_windows
from synctva_ros.bench.scaling import SERIES, _series_window
from synctva_ros.bench.setups import bench_setups
from synctva_ros.pipeline import EmotionPipeline


def main() -> None:
    realistic_windows()
    (setup,) = bench_setups(["paper_random"], cache_root(None) / "bench", 10)
    pipe = EmotionPipeline(setup.cfg)
    for name, xs in SERIES.items():
        for x in xs:
            _series_window(pipe, name, x)
    pipe.close()
    print(sorted(p.name for p in (cache_root(None) / "bench" / "speech").glob("*.npy")))


if __name__ == "__main__":
    main()
