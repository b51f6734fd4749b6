"""Copy a trained run into ``models/NAME``: the shipped name, a fresh integrity record, the fusion block.

    python scripts/ship_checkpoint.py RUN_DIR models/meld_minilm meld_minilm

The weights file is copied byte for byte. The manifest's ``name`` (and ``training.name`` / ``out_dir``) become the
shipped ones, a ``shipped_from`` note names the run, the integrity record is recomputed for that manifest (the
weights hash is unchanged), and the ``expert_fusion`` block is (re)written from the run's validation-split
temperature (``synctva_ros.training.train.fusion_with_model_temperature``). Refuses a run whose weights differ
from its own integrity record.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from synctva_ros.checkpoint.fusion import write_fusion
from synctva_ros.checkpoint.integrity import INTEGRITY_KEY, integrity_problems
from synctva_ros.checkpoint.io import record_integrity
from synctva_ros.core.hashing import file_sha256
from synctva_ros.training.train import fusion_with_model_temperature


def main(run: str, dest: str, name: str) -> None:
    src, out = Path(run), Path(dest)
    man = json.loads((src / "manifest.json").read_text())
    sha = file_sha256(src / "model.safetensors")
    problems = integrity_problems(man, sha)
    if problems:
        raise SystemExit(f"{src}: {problems}")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / "model.safetensors", out / "model.safetensors")
    run_name = man["name"]
    man["name"] = name
    man["training"] = {**man["training"], "name": name, "out_dir": str(dest), "shipped_from": run_name}
    man.pop("expert_fusion", None)
    man.pop(INTEGRITY_KEY, None)
    (out / "manifest.json").write_text(json.dumps(man, indent=2, sort_keys=True, default=str) + "\n")
    record_integrity(out)  # the renamed manifest and the unchanged weights, recorded as save_checkpoint does
    write_fusion(out, fusion_with_model_temperature(man["class_names"], man["training"]["calibration"]))
    for extra in ("metrics.json", "seeds.json"):
        if (src / extra).exists():
            shutil.copyfile(src / extra, out / extra)
    print(f"shipped {src} as {out} ({name})")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    main(*sys.argv[1:])
