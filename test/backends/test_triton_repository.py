"""The Triton model repository of a checkpoint's network (synctva_ros/backends/triton_repository.py), no server.

Checked: the layout and provenance file, ``config.pbtxt`` parsed by Triton's own ``ModelConfig`` protobuf schema
(from tritonclient), the ONNX graph's named dynamic axes, and the batched-subsets graph against
``SyncTVA.forward_subsets`` row by row (torch and onnxruntime).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from synctva_ros.backends.export import example_fusion_inputs, fusion_input_names
from synctva_ros.backends.triton_repository import (REPOSITORY_INFO, BatchedSubsets, ModelSpec, config_pbtxt,
                                                    fusion_model_spec, read_repository_info, write_model_repository)
from triton_fixtures import fleet_model

KEEP = torch.tensor([[True, True, True], [True, False, False], [False, True, False]])


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    model = fleet_model()
    out = tmp_path_factory.mktemp("triton") / "repo"
    info = write_model_repository(model, {"name": "tiny", "created": "x"}, out, max_batch_size=8,
                                  max_queue_delay_us=500)
    return model, out, info


def test_layout_and_provenance(repository):
    model, out, info = repository
    assert (out / "synctva_fusion" / "config.pbtxt").is_file()
    assert (out / "synctva_fusion" / "1" / "model.onnx").is_file()
    doc = json.loads((out / REPOSITORY_INFO).read_text())
    assert doc["checkpoint"] == "tiny" and doc["class_names"] == model.class_names
    assert len(doc["weights_sha256"]) == 64 and list(doc["models"]) == ["synctva_fusion"]
    back = read_repository_info(out)
    spec = back["models"]["synctva_fusion"]["spec"]
    assert isinstance(spec, ModelSpec) and spec == fusion_model_spec(model, max_batch_size=8, max_queue_delay_us=500)
    assert back["models"]["synctva_fusion"]["path"].is_file()


def test_config_pbtxt_is_a_valid_triton_model_config(repository):
    from google.protobuf import text_format

    model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")  # Triton's own ModelConfig schema

    model, out, _ = repository
    cfg = text_format.Parse((out / "synctva_fusion" / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert cfg.name == "synctva_fusion" and cfg.platform == "onnxruntime_onnx" and cfg.max_batch_size == 8
    assert cfg.dynamic_batching.max_queue_delay_microseconds == 500
    inputs = {i.name: i for i in cfg.input}
    assert list(inputs) == ["subsets", *fusion_input_names(model)]
    assert list(inputs["subsets"].dims) == [-1, 3] and inputs["subsets"].data_type == model_config_pb2.TYPE_BOOL
    assert list(inputs["text"].dims) == [-1, model.dims["text"]]
    assert inputs["text"].data_type == model_config_pb2.TYPE_FP32
    assert list(inputs["audio_mask"].dims) == [-1] and inputs["audio_mask"].data_type == model_config_pb2.TYPE_BOOL
    assert list(inputs["context"].dims) == [-1, model.dims["text"]]
    outputs = {o.name: list(o.dims) for o in cfg.output}
    assert outputs == {"logits": [-1, model.num_classes], "contributions": [-1, 3]}
    assert cfg.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_AUTO


def test_onnx_graph_has_the_named_dynamic_axes(repository):
    import onnx

    _, out, _ = repository
    g = onnx.load(str(out / "synctva_fusion" / "1" / "model.onnx"), load_external_data=False).graph
    axes = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in g.input}
    assert axes["subsets"] == ["batch", "subsets", 3]
    assert axes["text"][:2] == ["batch", "n_text"] and axes["audio_time"] == ["batch", "n_audio"]
    assert axes["context_mask"] == ["batch", "n_context"]
    outs = {o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in g.output}
    assert outs["logits"][:2] == ["batch", "subsets"]


def test_batched_subsets_equal_forward_subsets_row_by_row(repository):
    import onnxruntime as ort

    model, out, _ = repository
    names = fusion_input_names(model)
    args = [a for a in example_fusion_inputs(model, batch=3, nodes={"text": 7, "audio": 6, "visual": 2}, seed=4,
                                             absent={"visual": [1]}) if a is not None]
    per_row = torch.stack([KEEP, KEEP[[2, 0, 1]], KEEP[[1, 2, 0]]])  # each window its own subsets
    with torch.no_grad():
        got = BatchedSubsets(model, names)(per_row, *args)
        for b in range(3):
            ref = model.forward_subsets(per_row[b], **dict(zip(names, args)))
            assert torch.allclose(got[0][b], ref[0][b], atol=1e-6) and torch.allclose(got[1][b], ref[1][b], atol=1e-6)
    sess = ort.InferenceSession(str(out / "synctva_fusion" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    onnx_out = sess.run(None, {"subsets": per_row.numpy(), **{n: a.numpy() for n, a in zip(names, args)}})
    assert np.abs(onnx_out[0] - got[0].numpy()).max() < 1e-5
    assert np.abs(onnx_out[1] - got[1].numpy()).max() < 1e-5


def test_existing_directories_are_protected(repository, tmp_path):
    model, out, _ = repository
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not empty"):
        write_model_repository(model, None, foreign)
    with pytest.raises(FileExistsError, match="not a synctva model repository"):
        write_model_repository(model, None, foreign, overwrite=True)
    assert (foreign / "notes.txt").read_text() == "keep me"
    with pytest.raises(FileExistsError):
        write_model_repository(model, None, out)  # an existing repository needs overwrite


def test_spec_validation_and_pbtxt_of_a_renamed_model(make_model):
    model = make_model()
    with pytest.raises(ValueError, match="max_batch_size"):
        fusion_model_spec(model, max_batch_size=0)
    spec = fusion_model_spec(model, "robot_fleet_fusion", instances=2)
    text = config_pbtxt(spec)
    assert 'name: "robot_fleet_fusion"' in text and "count: 2" in text
    assert "context" not in [t.name for t in spec.inputs]  # no context without context_turns
    assert ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_serve_command_line():
    from synctva_ros.cli import build_parser, cmd_serve

    a = build_parser().parse_args(["serve", "--checkpoint", "models/x", "--write-only", "--set", "runtime.threads=1"])
    assert a.func is cmd_serve and a.write_only and a.checkpoint == Path("models/x")
    assert a.repository == Path("out/triton_repository") and (a.grpc_port, a.http_port) == (8001, 8000)
    assert a.host == "0.0.0.0" and (a.max_batch_size, a.max_queue_delay_us) == (16, 1000)
