"""Fixtures for the feature-extractor tests: a small random BERT + an offline-trained tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest

from synctva_ros.features.torchvision_compat import ensure_torchvision

_CORPUS = [
    "Oh my god, I can't believe you did that!",
    "You must've had your hands full.",
    "I am so happy for you, this is wonderful news.",
    "Get out of my apartment right now.",
    "Well, I guess that is fine with me.",
    "That is disgusting, who would eat that?",
    "I'm scared, did you hear that noise?",
] * 4


def make_tiny_bert(path: Path, hidden: int = 32, layers: int = 2, vocab_size: int = 200) -> Path:
    """Save a random 2-layer BERT and a WordPiece tokenizer trained on a small corpus to ``path``."""
    ensure_torchvision()
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size,
                                        special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    tok.train_from_iterator(_CORPUS, trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
                                                       special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    fast.save_pretrained(path)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=hidden, num_hidden_layers=layers,
                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    BertModel(cfg).eval().save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))
