"""Shared inputs for the text-top-layer tests (test/model/test_text_top.py, test/checkpoint/test_text_top_*.py).

A plain module (not a conftest): tests import it by name; ``test/`` is on ``sys.path`` because the
session conftest lives there. The tiny BERT itself is the ``bert`` fixture of ``test/conftest.py``; a tiny
random MPNet (relative position bias) is :func:`make_tiny_mpnet`, and the real all-mpnet-base-v2 is
:func:`real_mpnet` (``None`` when not installed).
"""

from __future__ import annotations

from pathlib import Path

import torch

from synctva_ros.checkpoint import build_text_top
from synctva_ros.config import ModelConfig
from synctva_ros.model.synctva import SyncTVA

#: A small Sync-TVA with two fine-tunable text top layers over the tiny BERT's 32-wide states.
CFG = ModelConfig(hidden=16, heads=2, graph_layers=1, dropout=0.0, modality_dropout=0.0, text_top_layers=2)
DIMS = {"text": 32, "audio": 7, "visual": 9}


def model_inputs(b: int = 3, nt: int = 6, na: int = 5, nv: int = 3, seed: int = 0) -> list[torch.Tensor]:
    """Positional inputs of :meth:`SyncTVA.forward`: per modality ``(B, N, F)`` features, ``(B, N)`` mask and times.

    Row 1 has its second half of every modality masked out; with ``b > 2`` row 2 has no audio.
    """
    g = torch.Generator().manual_seed(seed)
    out = []
    for n, d in ((nt, DIMS["text"]), (na, DIMS["audio"]), (nv, DIMS["visual"])):
        mask = torch.ones(b, n, dtype=torch.bool)
        mask[1, n // 2:] = False
        out += [torch.randn(b, n, d, generator=g), mask, torch.sort(torch.rand(b, n, generator=g), 1).values]
    if b > 2:
        out[7][2] = False
    return out


#: Corpus of the tiny MPNet's WordPiece tokenizer.
_MPNET_CORPUS = ["Oh my god, I can't believe you did that!", "You must've had your hands full.", "Okay.",
                 "Ross: we were on a break!", "Rachel: you're unbelievable", "What time is it?",
                 "I am so happy for you, this is wonderful news.", "Get out of my apartment right now.",
                 "Well, I guess that is fine with me.", "Monica: Hey, how are you doing today?"] * 4


def make_tiny_mpnet(path: Path, hidden: int = 32, layers: int = 3) -> Path:
    """Save a random MPNet (``model_type`` mpnet, 32 relative buckets) with a WordPiece tokenizer that writes
    ``<s> A </s>`` and ``<s> A </s></s> B </s>`` as MPNet's does (``<s>`` 0, ``<pad>`` 1, ``</s>`` 2)."""
    from synctva_ros.features.torchvision_compat import ensure_torchvision

    ensure_torchvision()  # before transformers (ENVIRONMENT notes: torchvision's ops)
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import MPNetConfig, MPNetModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="<unk>"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(_MPNET_CORPUS, trainers.WordPieceTrainer(
        vocab_size=150, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"]))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
                                                       special_tokens=[("<s>", 0), ("</s>", 2)])
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                            pad_token="<pad>", cls_token="<s>", sep_token="</s>", mask_token="<mask>"
                            ).save_pretrained(path)
    torch.manual_seed(0)
    cfg = MPNetConfig(vocab_size=tok.get_vocab_size(), hidden_size=hidden, num_hidden_layers=layers,
                      num_attention_heads=2, intermediate_size=64, max_position_embeddings=130)
    model = MPNetModel(cfg).eval()
    with torch.no_grad():  # a visible bias (random init is small): positions must matter in the tests
        model.encoder.relative_attention_bias.weight.normal_(0.0, 2.0)
    model.save_pretrained(path)
    return path


def real_mpnet() -> Path | None:
    """Directory of the installed all-mpnet-base-v2 (``make setup PROFILE=quality``), ``None`` when absent."""
    from synctva_ros.features.weights import installed_weights

    try:
        return installed_weights("all-mpnet-base-v2")
    except FileNotFoundError:
        return None


def finetuned_model(bert: Path) -> SyncTVA:
    """A Sync-TVA whose top layers start from ``bert``'s and are then moved away from them (a stand-in for fine-tuning).

    ``bert`` may be any encoder directory of width 32 with at least 3 layers (the tiny MPNet too)."""
    torch.manual_seed(0)
    model = SyncTVA(CFG, DIMS)
    model.attach_text_top(build_text_top(str(bert), 1, 2))
    with torch.no_grad():
        for p in model.text_top.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()
