"""ONNX export parity: onnxruntime reproduces PyTorch within 1e-4, incl. missing modalities and context."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from synctva_ros.backends.export import (TEXT_INPUTS, ExportError, cached_fusion_onnx, example_fusion_inputs,
                                         export_fusion, export_text_encoder, export_visual_encoder,
                                         fusion_input_names)
from synctva_ros.backends.onnx_backend import ort_session


CASES = [  # (batch, nodes, absent rows per modality)
    (1, {"text": 3, "audio": 4, "visual": 2}, {}),
    (4, {"text": 11, "audio": 9, "visual": 6}, {"audio": [0], "visual": [1, 2], "text": [3]}),
    (3, {"text": 1, "audio": 1, "visual": 1}, {"text": [0], "audio": [0, 1], "visual": [0, 1, 2]}),
    (5, {"text": 17, "audio": 32, "visual": 8}, {"text": [0, 1, 2, 3, 4], "visual": [4]}),
]


def _probs(logits: np.ndarray) -> np.ndarray:
    return torch.softmax(torch.as_tensor(logits, dtype=torch.float64), -1).numpy()


@pytest.mark.parametrize("context_turns", [0, 3])
def test_fusion_onnx_matches_torch(tmp_path, make_model, context_turns: int) -> None:
    model = make_model(context_turns)
    path = export_fusion(model, tmp_path / "fusion.onnx")
    onnx.checker.check_model(str(path))
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == fusion_input_names(model)
    assert max(o.version for o in onnx.load(str(path)).opset_import if o.domain in ("", "ai.onnx")) >= 18
    sess = ort_session(path)
    names = [i.name for i in sess.get_inputs()]
    for seed, (b, nodes, absent) in enumerate(CASES):
        args = example_fusion_inputs(model, batch=b, nodes=nodes, seed=seed + 10, absent=absent)
        with torch.no_grad():
            logits, contrib = model(*args)
        feeds = {n: a.numpy() for n, a in zip(fusion_input_names(model), args)}
        out = sess.run(None, {n: feeds[n] for n in names})
        assert np.abs(_probs(out[0]) - _probs(logits.numpy())).max() < 1e-4
        assert np.abs(out[1] - contrib.numpy()).max() < 1e-4
        # rows with no modality at all: uniform probabilities, as in torch
        none = [r for r in range(b) if all(r in absent.get(m, []) for m in ("text", "audio", "visual"))]
        for r in none:
            np.testing.assert_allclose(_probs(out[0])[r], 1.0 / out[0].shape[1], atol=1e-6)


def test_inactive_branch_exports_and_matches(tmp_path, make_model) -> None:
    model = make_model(active={"text": True, "audio": True, "visual": False})
    path = export_fusion(model, tmp_path / "f.onnx")
    sess = ort_session(path)
    args = example_fusion_inputs(model, batch=3, seed=4)
    with torch.no_grad():
        logits, contrib = model(*args)
    feeds = {n: a.numpy() for n, a in zip(fusion_input_names(model), args)}
    out = sess.run(None, {i.name: feeds[i.name] for i in sess.get_inputs()})
    assert np.abs(_probs(out[0]) - _probs(logits.numpy())).max() < 1e-4
    assert np.all(out[1][:, 2] == 0)


def test_cache_reuses_and_rekeys(tmp_path, make_model) -> None:
    model = make_model()
    p1 = cached_fusion_onnx(model, {"name": "a"}, cache_dir=tmp_path)
    mtime = p1.stat().st_mtime_ns
    assert cached_fusion_onnx(model, {"name": "a", "created": "later"}, cache_dir=tmp_path) == p1
    assert p1.stat().st_mtime_ns == mtime  # not re-exported
    p2 = cached_fusion_onnx(model, {"name": "b"}, cache_dir=tmp_path)
    assert p2 != p1
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    assert cached_fusion_onnx(model, {"name": "a"}, cache_dir=tmp_path) not in (p1, p2)


def test_an_inactive_branchs_random_weights_do_not_rekey(tmp_path, make_model) -> None:
    # issue 12: the inactive branch's MSDE weights are not in a checkpoint (random at every load), so keying on them
    # re-exported (and re-quantised) the fusion graph at every start
    model = make_model(active={"text": True, "audio": True, "visual": False})
    p1 = cached_fusion_onnx(model, {"name": "a"}, cache_dir=tmp_path, subsets=True)
    with torch.no_grad():
        for p in model.msde["visual"].parameters():
            p.normal_()
    assert cached_fusion_onnx(model, {"name": "a"}, cache_dir=tmp_path, subsets=True) == p1
    with torch.no_grad():
        next(model.msde["audio"].parameters()).add_(1.0)
    assert cached_fusion_onnx(model, {"name": "a"}, cache_dir=tmp_path, subsets=True) != p1
    assert cached_fusion_onnx(model, {"name": "a"}, cache_dir=tmp_path).name.startswith("fusion-")


def test_subsets_graph_matches_forward_subsets(tmp_path, make_model) -> None:
    model = make_model(2)
    path = export_fusion(model, tmp_path / "subsets.onnx", subsets=True)
    sess = ort_session(path)
    assert [i.name for i in sess.get_inputs()] == ["subsets", *fusion_input_names(model)]
    for seed, (b, nodes, absent) in enumerate(CASES):
        args = example_fusion_inputs(model, batch=b, nodes=nodes, seed=seed + 20, absent=absent)
        keep = torch.tensor([[1, 1, 1], [0, 1, 1], [1, 0, 0], [0, 0, 0]][: 1 + seed], dtype=torch.bool)
        with torch.no_grad():
            logits, contrib = model.forward_subsets(keep, *args)
        feeds = {n: a.numpy() for n, a in zip(fusion_input_names(model), args)}
        out = sess.run(None, {"subsets": keep.numpy(), **feeds})
        assert out[0].shape == (b, len(keep), model.num_classes) and out[1].shape == (b, len(keep), 3)
        assert np.abs(_probs(out[0]) - _probs(logits.numpy())).max() < 1e-4
        assert np.abs(out[1] - contrib.numpy()).max() < 1e-4


def test_bad_exporter_and_opset(tmp_path, make_model) -> None:
    model = make_model()
    with pytest.raises(ExportError, match="opset"):
        export_fusion(model, tmp_path / "x.onnx", opset=17)
    with pytest.raises(ExportError, match="exporter"):
        export_fusion(model, tmp_path / "x.onnx", exporter="nope")


def test_text_encoder_onnx_matches(tmp_path) -> None:
    from synctva_ros.features.torchvision_compat import ensure_torchvision

    ensure_torchvision()
    from transformers import RobertaConfig, RobertaModel

    torch.manual_seed(0)
    cfg = RobertaConfig(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=40)
    hf = RobertaModel(cfg).eval()
    path = export_text_encoder(hf, tmp_path / "text.onnx")
    sess = ort_session(path)
    for b, t in [(1, 5), (3, 12)]:
        ids = torch.randint(3, 120, (b, t))
        att = torch.ones(b, t, dtype=torch.long)
        att[-1, t // 2:] = 0
        with torch.no_grad():
            ref = hf(input_ids=ids, attention_mask=att).last_hidden_state.numpy()
        out = sess.run(None, {"input_ids": ids.numpy(), "attention_mask": att.numpy()})[0]
        assert out.shape == ref.shape
        valid = att.numpy().astype(bool)
        assert np.abs(out[valid] - ref[valid]).max() < 1e-4
    assert [o.name for o in sess.get_outputs()] == ["hidden"]


def test_text_encoder_export_of_a_layer_with_token_type_ids(tmp_path) -> None:
    """One export serves the extractor's cache too: a lower layer's states, token type ids as a third input."""
    from synctva_ros.features.torchvision_compat import ensure_torchvision

    ensure_torchvision()
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=120, hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=40)
    hf = BertModel(cfg).eval()
    path = export_text_encoder(hf, tmp_path / "states.onnx", list(TEXT_INPUTS), layer=1)
    sess = ort_session(path)
    assert [i.name for i in sess.get_inputs()] == list(TEXT_INPUTS)
    ids = torch.randint(3, 120, (3, 9))
    att = torch.ones(3, 9, dtype=torch.long)
    att[-1, 4:] = 0
    tt = torch.zeros(3, 9, dtype=torch.long)
    tt[:, 5:] = 1
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=att, token_type_ids=tt, output_hidden_states=True).hidden_states[1]
    feeds = {"input_ids": ids.numpy(), "attention_mask": att.numpy(), "token_type_ids": tt.numpy()}
    out = sess.run(["hidden"], feeds)[0]
    valid = att.numpy().astype(bool)
    assert out.shape == tuple(ref.shape) and np.abs(out[valid] - ref.numpy()[valid]).max() < 1e-4
    with pytest.raises(ExportError, match="inputs"):
        export_text_encoder(hf, tmp_path / "x.onnx", ["input_ids"])
    with pytest.raises(ExportError, match="opset"):
        export_text_encoder(hf, tmp_path / "x.onnx", opset=17)


def test_visual_encoder_onnx_matches(tmp_path) -> None:
    from synctva_ros.features.torchvision_compat import ensure_torchvision

    ensure_torchvision()
    import torchvision

    torch.manual_seed(0)
    trunk = torchvision.models.resnet18(weights=None)
    trunk.fc = torch.nn.Identity()
    trunk.eval()
    path = export_visual_encoder(trunk, tmp_path / "vis.onnx", image_size=64)
    sess = ort_session(path)
    for n in (1, 3):
        x = torch.randn(n, 3, 64, 64)
        with torch.no_grad():
            ref = trunk(x).numpy()
        out = sess.run(None, {"frames": x.numpy()})[0]
        assert out.shape == (n, 512)
        assert np.abs(out - ref).max() < 1e-4 * max(1.0, float(np.abs(ref).max()))


def test_dynamo_exporter_exports_the_subsets_graph(tmp_path, make_model) -> None:
    """exporter="dynamo" (torch.export): the served subsets graph, with its ``forward(subsets, *inputs)``, exports with
    every axis dynamic and matches torch (it failed before: name-keyed dynamic shapes against ``*inputs``)."""
    model = make_model(active={"text": True, "audio": True, "visual": False})
    path = export_fusion(model, tmp_path / "dynamo.onnx", exporter="dynamo", subsets=True)
    sess = ort_session(path)
    names = fusion_input_names(model)
    assert [i.name for i in sess.get_inputs()] == ["subsets", *names]
    for seed, (b, nodes, absent) in enumerate(CASES[:2]):
        args = example_fusion_inputs(model, batch=b, nodes=nodes, seed=seed + 40, absent=absent)
        keep = torch.tensor([[1, 1, 1], [1, 0, 0], [0, 1, 0]][: 2 + seed], dtype=torch.bool)
        with torch.no_grad():
            logits, contrib = model.forward_subsets(keep, *args)
        feeds = {"subsets": keep.numpy(), **{n: a.numpy() for n, a in zip(names, args)}}
        out = sess.run(None, feeds)
        assert out[0].shape == tuple(logits.shape)
        assert np.abs(_probs(out[0]) - _probs(logits.numpy())).max() < 1e-4
        assert np.abs(out[1] - contrib.numpy()).max() < 1e-4
