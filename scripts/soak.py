"""The soak of issue 14 (not run by CI): the real node on the looped demo bag, RSS every 10 s, dropped windows.

    .venv/bin/python scripts/soak.py --minutes 15 --rate 10 --out out/soak
    .venv/bin/python scripts/soak.py --bag-hours 1 --rate 10       # until one hour of bag time at 10x
    .venv/bin/python scripts/soak.py --minutes 10 --rate 1 --probe 30 --tracemalloc   # where the memory goes

Starts ``emotion_node`` (``use_sim_time``, reliable camera/microphone, ``config/emotion.yaml``), replays the demo
bag (``make demo`` builds it under ``cache/demo/``) in a loop with ``/clock``, and records ``/emotion_state`` and
``/diagnostics``; writes ``<out>/soak.json`` (every sample, the accounting) and prints a summary
(:mod:`synctva_ros.bench.soak` says what is measured). Run it on an otherwise idle machine, or under ``nice``
and say so with the figures.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from synctva_ros.ros.demo import ensure_demo_bag
from synctva_ros.ros.soak import probe_env, run_soak


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bag", type=Path, default=None, help="bag to loop (default: the demo bag, made if missing)")
    p.add_argument("--rate", type=float, default=10.0, help="replay speed factor (default 10)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--minutes", type=float, default=None, help="wall minutes of replay")
    length.add_argument("--bag-hours", type=float, default=None,
                        help="hours of bag time at the asked rate (wall time = this / rate)")
    p.add_argument("--sample-s", type=float, default=10.0, help="seconds between RSS samples (default 10)")
    p.add_argument("--out", type=Path, default=Path("out/soak"))
    p.add_argument("--param", action="append", default=[], metavar="NAME:=VALUE", help="extra node parameter")
    p.add_argument("--probe", type=float, default=None, metavar="SECONDS",
                   help="run the node under the memory probe (synctva_ros.bench.memprobe), one sample per SECONDS "
                        "to <out>/memprobe.jsonl")
    p.add_argument("--tracemalloc", action="store_true", help="with --probe: trace Python allocations (slower)")
    p.add_argument("--trim-every", type=int, default=0, metavar="N",
                   help="with --probe: malloc_trim(0) every N samples, RSS after it recorded")
    args = p.parse_args(argv)
    if not args.rate > 0:
        p.error("--rate must be positive")
    duration = 60.0 * args.minutes if args.minutes is not None else \
        3600.0 * (args.bag_hours if args.bag_hours is not None else 1.0) / args.rate
    doc = run_soak(bag=ensure_demo_bag(args.bag), out_dir=args.out, duration_s=duration, rate=args.rate,
                   sample_s=args.sample_s, extra_params=args.param,
                   probe=None if args.probe is None else probe_env(args.probe, args.tracemalloc, args.trim_every))
    return 0 if doc["windows"]["missing"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
