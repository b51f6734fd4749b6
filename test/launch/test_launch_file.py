"""Static checks of launch/emotion.launch.py (launch/launch_ros cannot be installed here).

The file must stay standard launch + launch_ros so it runs in a ROS 2 install; here we
check its structure with ``ast``: generate_launch_description exists, the node's package
and executable are what CMakeLists.txt installs, the default params file exists in
config/, and every declared argument is used.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "launch" / "emotion.launch.py"


@pytest.fixture(scope="module")
def tree() -> ast.Module:
    return ast.parse(LAUNCH.read_text(), filename=str(LAUNCH))


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if (isinstance(f, ast.Name) and f.id == name) or (isinstance(f, ast.Attribute) and f.attr == name):
                out.append(node)
    return out


def _kw(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _constants(tree: ast.Module) -> dict[str, object]:
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    out[t.id] = node.value.value
    return out


def _value(node: ast.AST | None, consts: dict[str, object]) -> object:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return consts.get(node.id)
    return None


def test_defines_generate_launch_description(tree):
    funcs = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in funcs


def test_imports_only_standard_launch_api(tree):
    mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    mods |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert mods, "no imports"
    assert all(m.split(".")[0] in ("launch", "launch_ros") for m in mods), mods


def test_node_package_and_executable_are_installed(tree):
    consts = _constants(tree)
    nodes = _calls(tree, "Node")
    assert len(nodes) == 1
    package = _value(_kw(nodes[0], "package"), consts)
    executable = _value(_kw(nodes[0], "executable"), consts)
    assert package == _package_name()
    cmake = (ROOT / "CMakeLists.txt").read_text()
    # the executable is installed as a program into lib/${PROJECT_NAME}
    m = re.search(r"install\(PROGRAMS\s+scripts/(\S+)\s+DESTINATION\s+lib/\$\{PROJECT_NAME\}\)", cmake)
    assert m, "CMakeLists.txt installs no scripts/* into lib/${PROJECT_NAME}"
    assert executable == m.group(1)
    script = ROOT / "scripts" / executable
    assert script.is_file() and script.stat().st_mode & 0o111, f"{script} missing or not executable"
    # the script runs the same entry point as the pip console script
    assert "from synctva_ros.ros.node import main" in script.read_text()
    assert _value(_kw(nodes[0], "name"), consts) == "emotion_node"


def _package_name() -> str:
    import xml.etree.ElementTree as ET

    return ET.parse(ROOT / "package.xml").getroot().findtext("name")


def test_default_params_file_exists(tree):
    decls = {(_value(c.args[0], {}) if c.args else None): c for c in _calls(tree, "DeclareLaunchArgument")}
    default = _kw(decls["params_file"], "default_value")
    joins = [n for n in ast.walk(default) if isinstance(n, ast.Call)
             and getattr(n.func, "id", "") == "PathJoinSubstitution"]
    assert joins, "params_file default is not a PathJoinSubstitution"
    parts = [p.value for p in joins[0].args[0].elts if isinstance(p, ast.Constant)]
    assert (ROOT.joinpath(*parts)).is_file(), parts
    # and CMakeLists installs config/ into share/${PROJECT_NAME}
    assert re.search(r"foreach\(_dir[^)]*\bconfig\b", (ROOT / "CMakeLists.txt").read_text())


def test_default_profile_is_the_params_files(tree, params_file_profile):
    """The launch argument always sets runtime.profile, so its default must be the shipped params file's (else the
    file's value would never take effect), and a profile that exists."""
    decls = {(_value(c.args[0], {}) if c.args else None): c for c in _calls(tree, "DeclareLaunchArgument")}
    default = _value(_kw(decls["profile"], "default_value"), {})
    assert default == params_file_profile, (default, params_file_profile)
    assert (ROOT / "config" / "profiles" / f"{default}.yaml").is_file(), default


def test_every_declared_argument_is_used(tree):
    declared = [_value(c.args[0], {}) for c in _calls(tree, "DeclareLaunchArgument")]
    used = {_value(c.args[0], {}) for c in _calls(tree, "LaunchConfiguration")}
    assert declared and all(isinstance(d, str) for d in declared)
    assert len(set(declared)) == len(declared), "duplicate launch argument"
    assert set(declared) <= used, f"declared but unused: {set(declared) - used}"
    assert used <= set(declared), f"used but undeclared: {used - set(declared)}"
    assert {"params_file", "namespace", "use_sim_time", "backend", "profile", "log_level"} <= set(declared)


def test_parameter_names_passed_by_launch_are_config_keys(tree):
    from synctva_ros.config import SyncTVAConfig

    keys = set(SyncTVAConfig().to_flat()) | {"use_sim_time"}
    names = {k.value for d in ast.walk(tree) if isinstance(d, ast.Dict) for k in d.keys
             if isinstance(k, ast.Constant)}
    subs = [n for n in ast.walk(tree) if isinstance(n, ast.Subscript) and isinstance(n.slice, ast.Constant)]
    names |= {s.slice.value for s in subs if isinstance(s.slice.value, str)}
    assert names and names <= keys, names - keys
