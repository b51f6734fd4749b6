"""backends.cuda_graphs: fixed-shape padding leaves the network's outputs unchanged (what the graphs rely on, checked
on the CPU); the backend's refusals and fallbacks; on a CUDA machine, replay equals eager torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synctva_ros.backends import create_backend
from synctva_ros.backends.base import MODEL_INPUTS, BackendUnavailable
from synctva_ros.backends.cuda_graphs import SUBSET_ROWS, CudaGraphBackend, warm_batch
from synctva_ros.backends.export import batch_to_feeds, fusion_input_names, pad_node_axes
from synctva_ros.backends.torch_backend import TorchBackend
from synctva_ros.bench.measure import ready_as_named
from synctva_ros.bench.setups import random_roberta
from synctva_ros.backends.text_encoder import serve_text_encoder
from synctva_ros.config import RuntimeConfig
from synctva_ros.core.batch import ModalityFeatures, UtteranceFeatures, collate
from synctva_ros.features.dialogue import Turn
from synctva_ros.features.text import TextEncoder
from synctva_ros.features.torchvision_compat import ensure_torchvision

DIMS = {"text": 24, "audio": 25, "visual": 16}
MAX_NODES = {"text": 16, "audio": 12, "visual": 8, "text_prefix": 24}
#: Subsets as EmotionPipeline.fuse asks for them: all present modalities, text alone, audio alone.
KEEP = np.array([[True, True, True], [True, False, False], [False, True, False]])


def _window(seed: int, n: dict[str, int]) -> UtteranceFeatures:
    rng = np.random.default_rng(seed)

    def nodes(m: str) -> ModalityFeatures | None:
        if not n.get(m):
            return None
        return ModalityFeatures(rng.standard_normal((n[m], DIMS[m])).astype(np.float32),
                                np.sort(rng.random(n[m])).astype(np.float32))

    return UtteranceFeatures(nodes("text"), nodes("audio"), nodes("visual"),
                             sentence=rng.standard_normal(DIMS["text"]).astype(np.float32))


def _batch(model, feats: UtteranceFeatures, turns: int = 0):
    ctx = [[np.ones(DIMS["text"], np.float32)]] if turns else None
    return collate([feats], DIMS, contexts=ctx, context_turns=turns)


@pytest.mark.parametrize("turns", [0, 2])
def test_padding_to_the_node_maxima_leaves_the_outputs_unchanged(make_model, turns) -> None:
    model = make_model(context_turns=turns)
    for seed, n in enumerate([{"text": 5, "audio": 4, "visual": 3}, {"text": 16, "audio": 1},
                              {"text": 1, "audio": 12, "visual": 8}, {"audio": 7}]):
        batch = _batch(model, _window(seed, n), turns)
        feeds = batch_to_feeds(batch, fusion_input_names(model))
        padded = pad_node_axes(feeds, MAX_NODES)
        assert padded["text"].shape[1] == MAX_NODES["text"] and padded["visual_mask"].shape[1] == MAX_NODES["visual"]
        assert not padded["audio_mask"][:, feeds["audio"].shape[1]:].any()  # what was added is masked
        args = [torch.from_numpy(padded[k]) if k in padded else None for k in MODEL_INPUTS]
        with torch.inference_mode():
            got = model.forward_subsets(torch.from_numpy(KEEP), *args)
        want = TorchBackend(model).infer_subsets(batch, KEEP)
        np.testing.assert_allclose(got[0].numpy(), want[0], atol=1e-5)
        np.testing.assert_allclose(got[1].numpy(), want[1], atol=1e-6)


@pytest.mark.parametrize("turns", [0, 2])
def test_the_warm_up_window_runs_through_the_network(make_model, turns) -> None:
    # what CudaGraphBackend captures at start: one zero node per modality, padded to the maxima, 2 and 3 subsets
    model = make_model(context_turns=turns)
    padded = pad_node_axes(batch_to_feeds(warm_batch(model), fusion_input_names(model)), MAX_NODES)
    args = [torch.from_numpy(padded[k]) if k in padded else None for k in MODEL_INPUTS]
    for s in (2, 3):
        with torch.inference_mode():
            logits, contrib = model.forward_subsets(torch.from_numpy(SUBSET_ROWS[:s]), *args)
        assert logits.shape == (1, s, model.num_classes) and bool(torch.isfinite(logits).all())


def test_pad_node_axes_pads_to_fixed_sizes_and_keeps_a_longer_axis() -> None:
    feeds = {"text": np.ones((1, 3, 2), np.float32), "text_mask": np.ones((1, 3), bool),
             "text_time": np.ones((1, 3), np.float32), "audio": np.ones((1, 9, 2), np.float32),
             "audio_mask": np.ones((1, 9), bool), "audio_time": np.ones((1, 9), np.float32)}
    out = pad_node_axes(feeds, {"text": 5, "audio": 4})
    assert out["text"].shape == (1, 5, 2) and out["text_mask"].tolist() == [[True] * 3 + [False] * 2]
    assert out["audio"].shape == (1, 9, 2)  # longer than its size: unchanged (the graph backend runs it eagerly)
    assert pad_node_axes(feeds)["text"].shape == (1, 4, 2)  # no sizes: the next power of two, at least 4


def test_cuda_graphs_refuse_a_cpu_device_and_other_precisions(make_model) -> None:
    model = make_model()
    with pytest.raises(BackendUnavailable, match="CUDA graphs need a CUDA device"):
        CudaGraphBackend(model, MAX_NODES, device="cpu")
    with pytest.raises(BackendUnavailable, match="fp32 only"):
        CudaGraphBackend(model, MAX_NODES, device="cuda", precision="fp16")
    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailable, match="CUDA is not available"):
            CudaGraphBackend(model, MAX_NODES, device="cuda")


def test_create_backend_ignores_cuda_graphs_off_cuda(make_model) -> None:
    backend = create_backend(RuntimeConfig(backend="torch", device="cpu", cuda_graphs=True), make_model(), {})
    assert type(backend) is TorchBackend


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("turns", [0, 2])
def test_replay_equals_eager_torch_on_cuda(make_model, turns) -> None:
    model = make_model(context_turns=turns)
    graphs = CudaGraphBackend(model, MAX_NODES, device="cuda")
    eager = TorchBackend(model, device="cuda")
    for seed, n in enumerate([{"text": 5, "audio": 4, "visual": 3}, {"text": 16, "audio": 1}, {"text": 2, "audio": 9},
                              {"text": 1, "audio": 12, "visual": 8}]):
        batch = _batch(model, _window(seed, n), turns)
        for keep in (KEEP, KEEP[:1]):
            got, want = graphs.infer_subsets(batch, keep), eager.infer_subsets(batch, keep)
            np.testing.assert_allclose(got[0], want[0], atol=1e-5)
            np.testing.assert_allclose(got[1], want[1], atol=1e-5)
    assert graphs.graph_calls == 8 and graphs.eager_calls == 0 and sorted(graphs._graphs) == [1, 2, 3]  # 2, 3 warm
    too_many = _batch(model, _window(9, {"text": 17, "audio": 3}), turns)  # beyond the text maximum: eager
    np.testing.assert_allclose(graphs.infer_subsets(too_many, KEEP)[0], eager.infer_subsets(too_many, KEEP)[0],
                               atol=1e-6)
    two = collate([_window(1, {"text": 3, "audio": 3}), _window(2, {"text": 4})], DIMS,
                  contexts=[[], []] if turns else None, context_turns=turns)  # a batch of two: eager
    np.testing.assert_allclose(graphs.infer_subsets(two, KEEP)[0], eager.infer_subsets(two, KEEP)[0], atol=1e-6)
    assert graphs.eager_calls == 2 and graphs.graph_calls == 8


def test_the_bench_row_of_cuda_graphs_measures_only_cuda_graphs(make_model) -> None:
    unavailable: dict[str, str] = {}
    assert not ready_as_named(TorchBackend(make_model()), "torch cuda graphs", unavailable)
    assert unavailable == {
        "torch cuda graphs": "torch-cudagraph did not start (see the log); it would have served torch"}
    assert ready_as_named(TorchBackend(make_model()), "torch fp32", unavailable)


def _tiny_roberta(path):
    """A 2-layer RoBERTa (random weights) with the bench's byte-level BPE tokenizer."""
    ensure_torchvision()  # before transformers' vision imports, as paper_random_assets does
    return random_roberta(path, bpe_vocab=400, vocab_size=400, hidden_size=32, num_hidden_layers=2,
                          num_attention_heads=4, intermediate_size=64, max_position_embeddings=130)


TEXTS = ["Oh my God, you did not!", "Fine.", "Why would you tell her about the party, seriously?"]
TURNS = [Turn("Ross", "I told her everything."), Turn("Rachel", "You did what?")]


def test_text_graphs_need_the_encoder_on_cuda(tmp_path) -> None:
    enc = TextEncoder(str(_tiny_roberta(tmp_path / "roberta")), max_tokens=32, layer=-1)
    # the runtime asks for CUDA graphs, but this extractor was built on the CPU: eager torch, no runner
    assert serve_text_encoder(enc, RuntimeConfig(backend="torch", device="cuda")) == "torch"
    assert enc.runner is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("layer", [-1, 1])
def test_text_graphs_give_the_eager_states_on_cuda(tmp_path, layer) -> None:
    enc = TextEncoder(str(_tiny_roberta(tmp_path / "roberta")), max_tokens=32, layer=layer, context_turns=2,
                      context_max_tokens=48, context_states=True, device="cuda")
    ref = enc.encode_texts(TEXTS, [TURNS] * 3, ["Joey", "", "Monica"])
    assert serve_text_encoder(enc, RuntimeConfig(backend="torch", device="cuda")) == "torch-cudagraph"
    assert sorted(n for b, n in enc.runner._graphs if b == 1) == enc.runner.lengths() == [16, 32, 64, 128]  # warmed
    got = enc.encode_texts(TEXTS, [TURNS] * 3, ["Joey", "", "Monica"])
    one = enc.encode_texts(TEXTS[:1], [TURNS], ["Joey"])  # another batch size: another graph
    assert enc.runner.graph_calls >= 3 and enc.runner.eager_calls == 0
    for a, b in zip(ref + ref[:1], got + one):
        assert a.tokens.shape == b.tokens.shape and a.prefix.shape == b.prefix.shape
        for x, y in ((a.tokens, b.tokens), (a.sentence, b.sentence), (a.prefix, b.prefix)):
            assert np.abs(x - y).max() < 1e-4
    assert serve_text_encoder(enc, RuntimeConfig(backend="torch", device="cuda", cuda_graphs=False)) == "torch"
    assert enc.runner is None
