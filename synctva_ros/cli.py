"""``synctva``: the command line (bags, training, evaluation, demo, benchmark).

Every sub-command takes ``--profile`` (a name in ``config/profiles`` or a YAML path)
and ``--set section.key=value`` overrides, the same schema as the node's ROS
parameters (:mod:`synctva_ros.config`). This module only parses: each command hands typed
values to a library function. The library modules (torch, rosbags, rclpy, openSMILE behind
them) are imported inside each command so ``synctva --help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from synctva_ros.config import SyncTVAConfig, load_config

__all__ = ["main", "build_parser"]


def _add_device_arg(p: argparse.ArgumentParser, key: str) -> None:
    """``--device cpu|cuda|cuda:N``: shorthand for ``--set KEY=DEVICE`` (applied after the other overrides)."""
    p.add_argument("--device", default=None, metavar="DEVICE",
                   help=f"torch device of every neural stage: cpu, cuda or cuda:N (same as --set {key}=DEVICE)")
    p.set_defaults(device_key=key)


def _add_config_args(p: argparse.ArgumentParser, profile: str = "quality") -> None:
    p.add_argument("--profile", default=profile, help=f"name in config/profiles or a YAML file (default {profile})")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a configuration value, e.g. --set runtime.backend=onnxruntime (repeatable)")
    _add_device_arg(p, "runtime.device")


def _overrides(args: argparse.Namespace) -> list[str]:
    """``--set`` overrides, with ``--device`` last (it wins over a ``--set`` of the same key)."""
    extra = [f"{args.device_key}={args.device}"] if getattr(args, "device", None) else []
    return [*(getattr(args, "overrides", None) or []), *extra]


def _config(args: argparse.Namespace) -> SyncTVAConfig:
    """The configuration of ``--profile`` with the ``--set`` (and ``--device``) overrides applied."""
    return load_config(args.profile, _overrides(args))


# ------------------------------------------------------------------ commands
def cmd_make_bag(args: argparse.Namespace) -> int:
    """``synctva make-bag CSV OUT``: print the bag's summary as JSON."""
    # deferred (as in every command below): the library's heavy imports stay out of `synctva --help`
    from synctva_ros.bags.make_bag import make_bag

    summary = make_bag(args.csv, args.out, storage=args.storage, dialogues=args.dialogues,
                       max_utterances=args.max_utterances, faces=args.faces, audio_type=args.audio_type,
                       speech_type=args.speech_type, persons=args.persons)
    print(json.dumps(summary, indent=2, default=str))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    """``synctva replay BAG``: publish the bag on live topics (rclpy), print the counts as JSON."""
    # deferred: rclpy and the generated messages
    from synctva_ros.ros.replay import replay_bag

    topics = [t if t.startswith("/") else "/" + t for t in args.topics.split(",")] if args.topics else None
    stats = replay_bag(args.bag, rate=args.rate, topics=topics, publish_clock=not args.no_clock, loop=args.loop,
                       wait_for_subscribers_s=args.wait)
    print(json.dumps(stats, default=str))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``synctva evaluate DATA``: score a checkpoint offline; optionally write the report as JSON."""
    # deferred: torch, transformers, openSMILE (the pipeline)
    from synctva_ros.evaluation.offline import evaluate

    cfg = _config(args)
    if args.checkpoint:
        cfg.runtime.checkpoint = str(args.checkpoint)
    report = evaluate(Path(args.data), cfg, out_dir=Path(args.out), limit=args.limit, stream=args.stream)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))
        print(f"wrote {args.json}")
    return 0


def cmd_evaluate_faces(args: argparse.Namespace) -> int:
    """``synctva evaluate-faces LABELS.csv``: score the facial-expression expert; print the summary as JSON."""
    # deferred: torch, OpenCV and the face weights
    from synctva_ros.evaluation.faces import evaluate_faces

    experts = tuple(e.strip() for e in args.experts.split(",") if e.strip())
    frame = None
    if args.frame:
        try:
            frame = tuple(int(v) for v in args.frame.lower().split("x"))
        except ValueError:
            frame = ()
        if len(frame) != 2:
            raise SystemExit(f"--frame must be WIDTHxHEIGHT (e.g. 640x480), got {args.frame!r}")
    report = evaluate_faces(args.labels, out_dir=args.out, detector=args.detector, experts=experts, limit=args.limit,
                            frame=frame, min_face_frac=args.min_face, runtime=args.runtime)
    keys = ("n", "faces_found", "skipped", "accuracy", "weighted_f1", "macro_f1", "ms_per_image", "confusion_png")
    print(json.dumps({k: report[k] for k in keys if k in report}, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))
        print(f"wrote {args.json}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    """``synctva calibrate --checkpoint CKPT --out DIR BAG...``: a calibrated copy; print the report as JSON."""
    # deferred: torch, transformers, openSMILE and the face weights (the pipeline)
    from synctva_ros.evaluation.calibrate import calibrate_checkpoint

    report = calibrate_checkpoint(args.checkpoint, args.bags, _config(args), args.out, overwrite=args.overwrite,
                                  fit_weights_too=not args.temperatures_only)
    print(json.dumps(report, indent=2, default=str))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """``synctva train CONFIG``: train, print the checkpoint directory."""
    from synctva_ros.training.runs import train_from_file  # deferred: torch and the feature extractors

    print(train_from_file(args.config, overrides=_overrides(args), resume=args.resume, seeds=args.seeds,
                          folds=args.folds))
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    """``synctva baseline CONFIG``: print accuracy / weighted F1 / macro F1 per split as JSON."""
    # deferred: scikit-learn and the feature cache (torch)
    from synctva_ros.training.baseline import baseline_report
    from synctva_ros.training.config import load_training_config

    tcfg, cfg = load_training_config(args.config, _overrides(args) or None)
    report = baseline_report(tcfg, cfg)
    brief = {k: {m: v[m] for m in ("accuracy", "weighted_f1", "macro_f1") if m in v} for k, v in report.items()}
    print(json.dumps(brief, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    """``synctva cache DATASET SPLIT``: build the split's feature cache, print its path."""
    # deferred: torch and the feature extractors
    from synctva_ros.bags.recordings import bag_split_dir, read_bag_recordings
    from synctva_ros.datasets.cache import cache_split

    clips = None
    if args.raw and bag_split_dir(args.raw, args.split) is not None:  # labelled bags: ROOT/SPLIT/<bag>
        clips = read_bag_recordings(args.raw, args.split, args.dataset, _config(args))
    print(cache_split(args.dataset, args.split, out_dir=args.out, data_dir=args.data_dir, limit=args.limit,
                      workers=args.workers, profile=args.profile, overrides=_overrides(args), raw_dir=args.raw,
                      clips=clips))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """``synctva demo``: exit 0 when every window was published, 1 when some were dropped."""
    # deferred: rclpy, torch
    from synctva_ros.ros.demo import run_sample_demo

    summary = run_sample_demo(bag=args.bag, rate=args.rate, out_dir=args.out, params_file=args.params_file,
                              sensor_qos=args.sensor_qos, profile=args.profile)
    return 0 if summary["dropped_windows"] == 0 else 1


def cmd_bench(args: argparse.Namespace) -> int:
    """``synctva bench``: run the benchmark, print its summary (JSON and PNG under ``--out``)."""
    # deferred: torch and every backend
    from synctva_ros.bench import format_summary, run_bench

    from synctva_ros.bench.scaling import SERIES, TINY_SERIES

    configs = tuple(c.strip() for c in args.configs.split(",") if c.strip())
    scaling = {"full": SERIES, "tiny": TINY_SERIES}.get(args.scaling)
    doc = run_bench(out_dir=args.out, repeats=args.repeats, configs=configs, checkpoint=args.checkpoint,
                    profile=args.profile, overrides=_overrides(args), scaling=scaling,
                    scaling_repeats=args.scaling_repeats, rows=not args.scaling_only,
                    backends=[b for b in args.backends.split(",") if b.strip()] if args.backends else None)
    print(format_summary(doc, args.out))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """``synctva serve``: write the checkpoint's Triton model repository, then serve it until Ctrl-C (exit 1 when the
    server died) unless ``--write-only``."""
    # deferred: torch, the extractors (the checkpoint's model) and PyTriton
    from synctva_ros.backends.triton_repository import write_model_repository
    from synctva_ros.backends.triton_server import serve
    from synctva_ros.pipeline import EmotionPipeline

    cfg = _config(args)
    if args.checkpoint:
        cfg.runtime.checkpoint = str(args.checkpoint)
    cfg.update({"runtime.backend": "torch", "features.face_expert": False, "features.streaming": False})
    pipe = EmotionPipeline(cfg)  # the model exactly as the node loads it (extractor identities checked)
    info = write_model_repository(pipe.model, pipe.manifest, args.repository, fusion_model=cfg.triton.fusion_model,
                                  max_batch_size=args.max_batch_size, max_queue_delay_us=args.max_queue_delay_us,
                                  overwrite=True)
    pipe.close()
    del pipe  # the server runs the exported graph; the torch model's memory is not needed any more
    print(json.dumps({"repository": str(args.repository), "models": sorted(info["models"]),
                      "checkpoint": info["checkpoint"], "weights_sha256": info["weights_sha256"]}, indent=2))
    if args.write_only:
        return 0
    return serve(args.repository, grpc_port=args.grpc_port, http_port=args.http_port, host=args.host,
                 threads=cfg.runtime.threads)


def build_parser() -> argparse.ArgumentParser:
    """The ``synctva`` argument parser (sub-commands make-bag, replay, evaluate, evaluate-faces, calibrate, train,
    baseline, cache, demo, bench, serve); each sub-parser sets ``func``, the command run with the parsed arguments."""
    ap = argparse.ArgumentParser(prog="synctva", description=__doc__.splitlines()[0])
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("make-bag", help="write a rosbag2 from labelled utterances in MELD CSV form")
    p.add_argument("csv", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    p.add_argument("--dialogues", type=lambda s: [int(x) for x in s.split(",")], default=None,
                   help="comma-separated Dialogue_IDs to include (default all)")
    p.add_argument("--max-utterances", type=int, default=None)
    p.add_argument("--faces", type=Path, default=None, metavar="LABELS.csv",
                   help="stage the camera: each utterance shows a face photograph of its emotion from this "
                        "labelled set (image,emotion CSV, e.g. ../shared/data/faces/labels.csv)")
    p.add_argument("--audio-type", choices=("synctva", "audio_stamped"), default="synctva",
                   help="microphone messages: synctva_ros/AudioChunk or audio_common_msgs/AudioStamped")
    p.add_argument("--speech-type", choices=("synctva", "live_speech"), default="synctva",
                   help="transcripts: synctva_ros/Transcript on /speech, or ROS4HRI hri_msgs/LiveSpeech on "
                        "/humans/voices/<id>/speech with /humans/voices/tracked")
    p.add_argument("--persons", action="store_true",
                   help="with --speech-type live_speech: a ROS4HRI person per speaker (/humans/persons/tracked, "
                        "latched /humans/persons/<id>/voice_id)")
    p.set_defaults(func=cmd_make_bag)

    p = sub.add_parser("replay", help="publish a bag on live topics with its original timing and /clock")
    p.add_argument("bag", type=Path)
    p.add_argument("--rate", type=float, default=1.0, help="rate factor (2 = twice as fast)")
    p.add_argument("--topics", default=None, help="comma-separated topics to publish (default all)")
    p.add_argument("--no-clock", action="store_true", help="do not publish /clock")
    p.add_argument("--loop", action="store_true")
    p.add_argument("--wait", type=float, default=2.0, metavar="SECONDS",
                   help="wait up to this long for every replayed topic to have a subscriber (default 2)")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("evaluate", help="score a checkpoint offline on a bag, a MELD CSV or an IEMOCAP JSONL")
    p.add_argument("data", type=Path)
    p.add_argument("--checkpoint", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None, help="write the report as JSON here")
    p.add_argument("--out", type=Path, default=Path("out/evaluate"), help="folder for the confusion matrix PNG")
    p.add_argument("--limit", type=int, default=None, help="first N utterances only")
    p.add_argument("--stream", action="store_true",
                   help="MELD/IEMOCAP: play the utterances as one microphone stream through the windower and "
                        "the streaming features, and compare with the batch extractors")
    _add_config_args(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("evaluate-faces",
                       help="score the facial-expression expert on labelled images (image,emotion CSV)")
    p.add_argument("labels", type=Path, help="CSV with header image,emotion; image paths relative to the CSV")
    p.add_argument("--json", type=Path, default=None, help="write the full report as JSON here")
    p.add_argument("--out", type=Path, default=Path("out/evaluate_faces"), help="folder for the confusion matrix PNG")
    p.add_argument("--detector", choices=("mtcnn", "haar", "tiny"), default="mtcnn")
    p.add_argument("--experts", default="face_api", help="comma-separated: face_api, fer (both: ensemble)")
    p.add_argument("--limit", type=int, default=None, help="first N scored rows only")
    p.add_argument("--frame", default=None, metavar="WxH",
                   help="paste each image into a black camera frame of this size and use the camera rule "
                        "(scores the camera settings, e.g. 640x480)")
    p.add_argument("--min-face", type=float, default=0.0, metavar="FRAC",
                   help="MTCNN's smallest face as a fraction of the shorter side (features.face_min_size; "
                        "0 = 40 px floor only)")
    p.add_argument("--runtime", choices=("onnxruntime", "torch"), default="onnxruntime",
                   help="how the face networks run (features.face_runtime)")
    p.set_defaults(func=cmd_evaluate_faces)

    p = sub.add_parser("calibrate", help="fit the experts' temperatures and weights on labelled, aligned bags and "
                                         "write a calibrated copy of the checkpoint")
    p.add_argument("bags", type=Path, nargs="+", help="rosbag2 recordings with /ground_truth/emotion labels")
    p.add_argument("--checkpoint", type=Path, required=True, help="checkpoint directory to calibrate (unchanged)")
    p.add_argument("--out", type=Path, required=True, help="directory of the calibrated copy")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--temperatures-only", action="store_true", help="keep the experts' weights")
    _add_config_args(p)
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("train", help="train Sync-TVA from a training config (YAML) + overrides")
    p.add_argument("config", type=Path)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--resume", action="store_true", help="continue from the run's resume file")
    p.add_argument("--seeds", default=None, metavar="S,S,...",
                   help="train each seed into OUT_DIR/seed_S and write OUT_DIR/seeds.json (mean and spread)")
    p.add_argument("--folds", default=None, metavar="PATTERN,...", help="one run per fold into OUT_DIR/fold_I, holding "
                   "out the dialogues PATTERN matches (e.g. 'Ses01*,Ses02*'); writes OUT_DIR/folds.json")
    _add_device_arg(p, "training.device")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("baseline", help="the floor: logistic regression on frozen sentence embeddings")
    p.add_argument("config", type=Path, help="training config naming the dataset and splits")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--json", type=Path, default=None)
    p.set_defaults(func=cmd_baseline)

    p = sub.add_parser("cache", help="pre-compute features of a dataset split for training")
    p.add_argument("dataset", choices=("meld", "iemocap"))
    p.add_argument("split")
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--out", type=Path, default=Path("cache"))
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--workers", type=int, default=1,
                   help="processes rendering speech and running openSMILE (default 1: in this process)")
    p.add_argument("--raw", "--meld-raw", dest="raw", type=Path, default=None, metavar="DIR",
                   help="recordings: a MELD.Raw folder (meld) or an IEMOCAP release folder (iemocap; splits train = "
                        "sessions 1-4, test = session 5, all, session1..session5): features of their audio and "
                        "frames (visual branch, e.g. --set features.visual_encoder=face_api) instead of espeak-ng "
                        "speech; or a folder of labelled rosbag2 recordings, one subfolder per split (DIR/SPLIT/<bag>, "
                        "labels on /ground_truth/emotion), windowed as the node windows them")
    _add_config_args(p)
    p.set_defaults(func=cmd_cache)

    p = sub.add_parser("demo", help="the node on the bundled MELD sample bag, scored against its labels")
    p.add_argument("--bag", type=Path, default=None, help="bag to use (default: the MELD dev sample, made if missing)")
    p.add_argument("--rate", type=float, default=1.0)
    p.add_argument("--out", type=Path, default=Path("out/demo"))
    p.add_argument("--params-file", type=Path, default=None)
    p.add_argument("--profile", default=None, help="the node's runtime.profile (default: the params file's, quality)")
    p.add_argument("--sensor-qos", choices=("reliable", "sensor_data"), default="reliable",
                   help="the node's camera/microphone QoS (default reliable: the replay publishes reliably, and "
                        "best effort loses most 0.9 MB frames over UDP)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("bench", help="latency benchmark of every available backend (JSON + PNG)")
    p.add_argument("--out", type=Path, default=Path("out/bench"))
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--configs", default="demo,paper_random",
                   help="comma-separated configurations: demo (the --profile with its checkpoint), quality (the "
                        "quality profile, real mpnet; an untrained head until models/meld_mpnet exists), paper_random "
                        "(RoBERTa-base + ResNet-50 sized, random weights: latency only), triton (the first "
                        "configuration's network stage locally and through a local Triton server, 1/4/16 concurrent "
                        "clients)")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="checkpoint for the demo configuration (default: the profile's, else a dev checkpoint)")
    p.add_argument("--scaling", choices=("off", "full", "tiny"), default="off",
                   help="also measure latency against utterance length, tokens, faces in view and camera rate on the "
                        "first configuration (bench.json 'scaling', bench_scaling.png); tiny: two points per series")
    p.add_argument("--scaling-repeats", type=int, default=5, help="timed windows per scaling point")
    p.add_argument("--scaling-only", action="store_true", help="measure only the scaling series, no backend rows")
    p.add_argument("--backends", default="",
                   help="comma-separated backend rows to measure (default: every one available here), e.g. "
                        "'torch cuda fp32,torch cuda fp16,onnxruntime cuda,tensorrt fp16' on a GPU machine")
    _add_config_args(p, profile="demo")  # the quality profile is its own configuration
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("serve", help="write a Triton model repository of a checkpoint and serve it (PyTriton)")
    p.add_argument("--checkpoint", type=Path, default=None, help="checkpoint directory (default: the profile's)")
    p.add_argument("--repository", type=Path, default=Path("out/triton_repository"),
                   help="model repository to write (a previous synctva repository there is replaced)")
    p.add_argument("--grpc-port", type=int, default=8001)
    p.add_argument("--http-port", type=int, default=8000)
    p.add_argument("--host", default="0.0.0.0", help="address to listen on (default all: a fleet on the network)")
    p.add_argument("--max-batch-size", type=int, default=16, help="most windows per execution (dynamic batching)")
    p.add_argument("--max-queue-delay-us", type=int, default=1000,
                   help="the dynamic batcher's wait for more requests, microseconds")
    p.add_argument("--write-only", action="store_true",
                   help="write the repository and exit (e.g. for NVIDIA's Triton container, docs/triton.md)")
    _add_config_args(p)
    p.set_defaults(func=cmd_serve)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``synctva`` console script.

    Args:
        argv: arguments without the program name (default ``sys.argv[1:]``).

    Returns:
        The exit status: the command's (0 on success), 2 for a usage error (argparse exits with it) or
        a FileNotFoundError / FileExistsError / ValueError (ConfigError included) / RuntimeError, logged as
        one line, 130 on Ctrl-C.
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="[%(levelname)s] %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (FileNotFoundError, FileExistsError, ValueError, RuntimeError) as exc:
        logging.getLogger("synctva").error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
