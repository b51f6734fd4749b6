"""The package's layering (README "Architecture"), checked on the source itself.

Every ``import`` and ``from ... import`` in ``synctva_ros/`` (top level *and* inside functions) is
resolved to the top-level part of the package it names; a part may import only from its own layer or
below. Only ``synctva_ros.ros`` may import rclpy or the generated ``synctva_ros.msg``. No module is
over :data:`MAX_LINES` lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "synctva_ros"

#: Layer of each top-level part of the package, low to high (README "Architecture").
LAYERS: dict[str, int] = {
    "__init__": 0, "core": 0, "config": 0, "emotion": 0,
    "windowing": 1, "features": 1, "model": 1,
    "backends": 2, "checkpoint": 2, "streaming": 2,
    "pipeline": 3,
    "datasets": 4, "bags": 4, "training": 4, "evaluation": 4, "bench": 4,
    "cli": 5, "ros": 5,
}
#: Same-layer imports that are still forbidden (importer, imported).
FORBIDDEN_SIDEWAYS = {("datasets", "bags"), ("model", "features"), ("model", "windowing"), ("features", "model")}
#: Modules only the ROS adapter layer may import (ROS client library and rosidl-generated messages).
ROS_ONLY = ("rclpy", "synctva_ros.msg", "builtin_interfaces", "std_msgs", "sensor_msgs", "diagnostic_msgs",
            "rcl_interfaces", "lifecycle_msgs")
MAX_LINES = 400


def _modules() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)


def _part(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imported(path: Path) -> list[tuple[int, str]]:
    """(line, absolute dotted name) of every import in ``path``, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    here = ["synctva_ros", *path.relative_to(PKG).with_suffix("").parts]
    if here[-1] == "__init__":
        here = here[:-1]
    else:
        here = here[:-1]  # the module's package
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # ``from synctva_ros import x`` names the part x.
            if mod == "synctva_ros":
                out += [(node.lineno, f"synctva_ros.{a.name}") for a in node.names]
            else:
                out.append((node.lineno, mod))
    return out


def _violations() -> tuple[list[str], list[str]]:
    upward, ros = [], []
    for path in _modules():
        part = _part(path)
        assert part in LAYERS, f"{path.relative_to(PKG)}: part {part!r} has no layer; add it to LAYERS and README"
        for line, name in _imported(path):
            where = f"{path.relative_to(PKG.parent)}:{line} imports {name}"
            if part != "ros" and any(name == r or name.startswith(r + ".") for r in ROS_ONLY):
                ros.append(where)
            if not name.startswith("synctva_ros.") or name.startswith("synctva_ros.msg"):
                continue
            target = name.split(".")[1]
            if target == part or target not in LAYERS:
                continue
            if LAYERS[target] > LAYERS[part] or (part, target) in FORBIDDEN_SIDEWAYS:
                upward.append(f"{where} (layer {LAYERS[part]} -> {LAYERS[target]})")
    return upward, ros


def test_no_import_from_a_higher_layer() -> None:
    upward, _ = _violations()
    assert not upward, "imports against the layering:\n" + "\n".join(upward)


def test_only_ros_imports_rclpy_and_messages() -> None:
    _, ros = _violations()
    assert not ros, "ROS imports outside synctva_ros/ros:\n" + "\n".join(ros)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_module_size(path: Path) -> None:
    n = len(path.read_text(encoding="utf-8").splitlines())
    assert n <= MAX_LINES, f"{path.relative_to(PKG)} has {n} lines (at most {MAX_LINES}): split it"


def test_checker_sees_a_violation(tmp_path: Path) -> None:
    """The walker itself works: a relative upward import and an rclpy import are found."""
    global PKG
    fake = tmp_path / "synctva_ros"
    (fake / "model").mkdir(parents=True)
    (fake / "model" / "m.py").write_text("def f():\n    from ..pipeline import EmotionPipeline\n")
    (fake / "config.py").write_text("import rclpy.node\n")
    (fake / "pipeline.py").write_text("")
    saved, PKG = PKG, fake
    try:
        upward, ros = _violations()
    finally:
        PKG = saved
    assert upward == ["synctva_ros/model/m.py:2 imports synctva_ros.pipeline (layer 1 -> 3)"]
    assert ros == ["synctva_ros/config.py:1 imports rclpy.node"]
