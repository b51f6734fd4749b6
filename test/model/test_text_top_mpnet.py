"""all-mpnet-base-v2's top layers inside Sync-TVA: fidelity to the real encoder (model/text_top.py docstring).

Needs the real weights (``make setup PROFILE=quality`` or ``python -m synctva_ros.features.weights
all-mpnet-base-v2``); skipped without them. The nodes and context prefix come from the text extractor run
only up to layer ``l = 12 - K`` (as training caches them); the reference is the full encoder's own last layer
on the same sequences. Utterances: the shipped MELD dev sample (``data/demo/meld_dev_sample.csv``, 20
utterances of two dialogues; the last 12), with their previous 4 turns as context, cut to 32 word pieces (the
profiles use 96: shorter sequences keep the run short on a CPU).

Thresholds: measured on 100 MELD dev utterances (special states calibrated on 256 training transcripts), K = 2
gave a mean cosine of 0.99998 (worst 0.9998) without context and 0.99999 (worst 0.9997) with it; here the
special states use the default 16 calibration texts and only 20 utterances, so the bounds keep a margin.
"""

from __future__ import annotations

import pytest
import torch

from text_top_fixtures import real_mpnet

from synctva_ros.checkpoint import build_text_top
from synctva_ros.datasets.cache import load_utterances
from synctva_ros.features.dialogue import dataset_contexts
from synctva_ros.features.text import TextEncoder

MPNET = real_mpnet()
pytestmark = pytest.mark.skipif(MPNET is None, reason="all-mpnet-base-v2 is not installed (make setup PROFILE=quality"
                                                      " or python -m synctva_ros.features.weights all-mpnet-base-v2)")
K = 2


@pytest.fixture(scope="module")
def encoders():
    """(extractor up to layer 12 - K with context states, the full encoder) on all-mpnet-base-v2."""
    torch.manual_seed(0)
    part = TextEncoder("all-mpnet-base-v2", layer=12 - K, context_turns=4, context_max_tokens=32, context_states=True)
    full = TextEncoder("all-mpnet-base-v2")
    return part, full


@pytest.fixture(scope="module")
def utterances(meld_sample_csv):
    utts = [u for u in load_utterances("meld", str(meld_sample_csv)) if u.text.strip()]
    return utts[-12:], dataset_contexts(utts, 4)  # the last 12: most have 4 turns of context


@torch.no_grad()
def _cosines(top, part, full, utts, ctxs, context: bool) -> torch.Tensor:
    """Cosines of the top layers' node outputs (one padded batch) to the full encoder's last layer."""
    texts = [u.text.strip() for u in utts]
    if context:
        encs = part.encode_texts(texts, [ctxs[u.utterance_id] for u in utts], [u.speaker for u in utts])
        seqs = [part._pair_inputs(t, ctxs[u.utterance_id], u.speaker) for t, u in zip(texts, utts)]
        ids, nodes = [s[0] for s in seqs], [s[1] for s in seqs]
    else:
        encs = part.encode_texts(texts)
        tok = part.tokenizer(texts, truncation=True, max_length=part._max_length, return_special_tokens_mask=True)
        nodes = [[not s for s in m] for m in tok.pop("special_tokens_mask")]
        ids = [{k: tok[k][i] for k in tok} for i in range(len(texts))]
    h, _ = full.layer_states(dict(full.tokenizer.pad(ids, padding=True, return_tensors="pt")))
    ref = [h[i][:len(n)][torch.tensor(n)] for i, n in enumerate(nodes)]

    def pad(arrays: list) -> tuple[torch.Tensor, torch.Tensor]:
        n = max(1, max(a.shape[0] for a in arrays))
        x = torch.zeros(len(arrays), n, h.shape[-1])
        for i, a in enumerate(arrays):
            x[i, :a.shape[0]] = torch.from_numpy(a)
        return x, torch.arange(n)[None] < torch.tensor([[a.shape[0]] for a in arrays])

    x, mask = pad([e.tokens for e in encs])
    prefix, pm = pad([e.prefix for e in encs]) if context else (None, None)
    y = top(x, mask, prefix, pm)
    return torch.cat([torch.nn.functional.cosine_similarity(y[i][:r.shape[0]], r, dim=-1) for i, r in enumerate(ref)])


@pytest.mark.parametrize("context", [False, True], ids=["utterance", "context"])
def test_top_layers_reproduce_the_encoders_last_layer(encoders, utterances, context):
    part, full = encoders
    top = build_text_top(part, 12 - K, K, name="all-mpnet-base-v2", context_keys=context).eval()
    assert top.spec["relative_buckets"] == 32 and top.spec["special_tokens"] == 2
    cos = _cosines(top, part, full, *utterances, context=context)
    assert cos.numel() > 80
    assert float(cos.mean()) >= 0.9995 and float(cos.min()) >= 0.995, (float(cos.mean()), float(cos.min()))
