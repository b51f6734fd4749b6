"""backends.engine_cache: keys follow their parts, cached builds are reused, failed builds leave nothing."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from synctva_ros.backends.engine_cache import (CachedArtifact, cache_key, cache_root, cached_build, manifest_sha256,
                                               state_dict_sha256)


def _linear(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))


def test_cache_root_order_explicit_env_default(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNCTVA_CACHE", str(tmp_path / "env"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root(tmp_path / "explicit") == tmp_path / "explicit" and (tmp_path / "explicit").is_dir()
    assert cache_root("") == tmp_path / "env" and (tmp_path / "env").is_dir()
    assert cache_root(None) == tmp_path / "env"
    monkeypatch.delenv("SYNCTVA_CACHE")
    assert cache_root() == tmp_path / "home" / ".cache" / "synctva" and cache_root().is_dir()


def test_cache_key_is_order_free_and_changes_with_every_part():
    parts = {"weights": "ab" * 32, "opset": 18, "shapes": {"text": [[1, 1, 8], [8, 64, 8]]}, "file": Path("/x")}
    key = cache_key(parts)
    assert len(key) == 64 and int(key, 16) >= 0
    assert cache_key(dict(reversed(list(parts.items())))) == key
    variants = [{**parts, "weights": "cd" * 32}, {**parts, "opset": 19}, {**parts, "file": Path("/y")},
                {**parts, "shapes": {"text": [[1, 1, 8], [16, 64, 8]]}}, {**parts, "extra": None}]
    assert len({cache_key(v) for v in variants} | {key}) == len(variants) + 1


def test_state_dict_hash_follows_the_weights_not_the_instance():
    a, b = _linear(0), _linear(0)
    assert state_dict_sha256(a) == state_dict_sha256(b)
    assert state_dict_sha256(_linear(1)) != state_dict_sha256(a)
    with torch.no_grad():
        b[0].weight[0, 0] += 1e-6
    assert state_dict_sha256(b) != state_dict_sha256(a)
    # dtype is part of what is hashed (bf16 tensors are hashed through their bytes)
    assert state_dict_sha256(_linear(0).to(torch.bfloat16)) not in {state_dict_sha256(a), state_dict_sha256(b)}
    assert state_dict_sha256(_linear(0).to(torch.bfloat16)) == state_dict_sha256(_linear(0).to(torch.bfloat16))


def test_manifest_hash_ignores_volatile_keys_only():
    m = {"architecture": {"hidden": 32}, "class_names": ["a", "b"], "created": "2025-01-01", "_path": "/tmp/x"}
    h = manifest_sha256(m)
    assert h == manifest_sha256({**m, "created": "2026-02-02", "_path": "/elsewhere", "_other": 1})
    assert h != manifest_sha256({**m, "class_names": ["b", "a"]})
    assert h != manifest_sha256({**m, "architecture": {"hidden": 64}})
    assert manifest_sha256(None) == manifest_sha256({}) == "none"


def test_artifact_path_is_named_by_its_key(tmp_path):
    art = CachedArtifact(tmp_path, "onnx", "fusion", "onnx", {"w": 1})
    assert art.key == cache_key({"w": 1})
    assert art.path == tmp_path / "onnx" / f"fusion-{art.key[:16]}.onnx"
    assert art.meta_path == tmp_path / "onnx" / f"fusion-{art.key[:16]}.onnx.json"
    assert CachedArtifact(tmp_path, "onnx", "fusion", "onnx", {"w": 2}).path != art.path
    assert not art.exists() and art.describe() == {}
    art.path.parent.mkdir(parents=True)
    art.path.write_bytes(b"x")
    assert not art.exists()  # no metadata: an interrupted write is not a cached artefact
    art.meta_path.write_text("{not json")
    assert art.exists() and art.describe() == {}


def test_cached_build_builds_once(tmp_path) -> None:
    calls = []

    def build(p):
        calls.append(p)
        p.write_bytes(b"engine")

    art = CachedArtifact(tmp_path, "tensorrt", "fusion", "engine", {"x": 1})
    path, built = cached_build(art, build)
    assert built and path.read_bytes() == b"engine"
    path2, built2 = cached_build(CachedArtifact(tmp_path, "tensorrt", "fusion", "engine", {"x": 1}), build)
    assert path2 == path and not built2 and len(calls) == 1
    assert art.describe() == {"x": 1}

    def failing(p):
        p.write_bytes(b"half")
        raise RuntimeError("build failed")

    bad = CachedArtifact(tmp_path, "tensorrt", "fusion", "engine", {"x": 2})
    with pytest.raises(RuntimeError):
        cached_build(bad, failing)
    assert not bad.exists() and not list(bad.path.parent.glob("*.tmp"))


def test_changed_weights_rebuild_and_old_artefact_stays(tmp_path):
    """The export key's pattern: weights hash in the parts -> a weight change is a new file, never a stale hit."""
    model, calls = _linear(0), []

    def parts(m):
        return {"weights": state_dict_sha256(m), "opset": 18}

    def build(p):
        calls.append(p)
        torch.save(model.state_dict(), p)

    first, built = cached_build(CachedArtifact(tmp_path, "onnx", "fusion", "onnx", parts(model)), build)
    assert built
    assert cached_build(CachedArtifact(tmp_path, "onnx", "fusion", "onnx", parts(_linear(0))), build) == (first, False)
    with torch.no_grad():
        model[0].bias[0] += 0.5
    second, built = cached_build(CachedArtifact(tmp_path, "onnx", "fusion", "onnx", parts(model)), build)
    assert built and second != first and first.exists() and len(calls) == 2
    assert torch.load(second)["0.bias"][0] == model[0].bias[0]


def test_concurrent_builds_of_one_artefact_build_once(tmp_path):
    calls, results = [], []
    start = threading.Barrier(4)

    def build(p):
        calls.append(threading.current_thread().name)
        p.write_bytes(b"engine")

    def worker():
        start.wait(10)
        results.append(cached_build(CachedArtifact(tmp_path, "tensorrt", "fusion", "engine", {"x": 1}), build))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(calls) == 1 and len(results) == 4
    assert len({path for path, _ in results}) == 1 and sorted(built for _, built in results) == [False] * 3 + [True]


def _build_counting(calls: list, payload: bytes = b"engine"):
    def build(p):
        calls.append(p)
        p.write_bytes(payload)
    return build


def test_cached_file_records_its_content_hash(tmp_path):
    import hashlib

    art = CachedArtifact(tmp_path, "tensorrt", "fusion", "engine", {"x": 1})
    cached_build(art, _build_counting([]))
    assert art.hash_path == art.path.with_name(art.path.name + ".sha256")
    digest, name = art.hash_path.read_text().split()
    assert digest == hashlib.sha256(b"engine").hexdigest() and name == art.path.name
    assert art.content_problem() is None


@pytest.mark.parametrize("damage", ["flip", "truncate", "replace", "no_sidecar"])
def test_changed_cached_file_is_rebuilt_logged_and_counted(tmp_path, caplog, damage):
    """A cached file is trusted for its content, not its name (issue 14 item 8)."""
    import logging

    from synctva_ros.backends.engine_cache import cache_counters

    calls = []
    art = CachedArtifact(tmp_path, "onnx", "fusion", "onnx", {"x": 1})
    cached_build(art, _build_counting(calls, b"exported graph"))
    if damage == "flip":
        art.path.write_bytes(b"exported grapi")
    elif damage == "truncate":
        art.path.write_bytes(b"exported")
    elif damage == "replace":
        art.path.write_bytes(b"some other model")
    else:
        art.hash_path.unlink()
    before = cache_counters()
    with caplog.at_level(logging.WARNING, logger="synctva_ros.backends.engine_cache"):
        path, built = cached_build(CachedArtifact(tmp_path, "onnx", "fusion", "onnx", {"x": 1}),
                                   _build_counting(calls, b"exported graph"))
    assert built and len(calls) == 2 and path.read_bytes() == b"exported graph"
    assert "is not used" in caplog.text and "rebuilding" in caplog.text
    after = cache_counters()
    assert after["rebuilt_mismatch"] == before["rebuilt_mismatch"] + 1 and after["builds"] == before["builds"] + 1
    # the rebuilt file verifies: the next call is a hit
    assert cached_build(art, _build_counting(calls)) == (path, False) and len(calls) == 2
    assert cache_counters()["hits"] == after["hits"] + 1


def test_graph_code_hash_covers_the_network_and_changes_its_exports(tmp_path, make_model, monkeypatch):
    """The exported graph's key holds the hash of the code that defines it: the same weights under changed code
    export again instead of reusing the old code's graph."""
    import synctva_ros
    from synctva_ros.backends import engine_cache
    from synctva_ros.backends.export import cached_fusion_onnx

    root = Path(synctva_ros.__file__).parent
    covered = {str(f.relative_to(root)) for p in engine_cache.GRAPH_SOURCES for f in root.glob(p)}
    assert {"model/gat.py", "model/graphs.py", "model/synctva.py", "backends/export.py"} <= covered
    assert len(engine_cache.graph_source_sha256()) == 64
    model = make_model()
    first = cached_fusion_onnx(model, {"name": "t"}, cache_dir=tmp_path)
    assert cached_fusion_onnx(model, {"name": "t"}, cache_dir=tmp_path) == first
    monkeypatch.setattr("synctva_ros.backends.export.graph_source_sha256", lambda: "0" * 64)
    again = cached_fusion_onnx(model, {"name": "t"}, cache_dir=tmp_path)
    assert again != first and again.exists() and first.exists()
