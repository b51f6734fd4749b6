"""Fixtures for the checkpoint tests: a random 3-layer BERT on disk (the feature tests' tiny encoder)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


def _make_tiny_bert(path: Path) -> Path:
    spec = importlib.util.spec_from_file_location("_feat_conftest", Path(__file__).parents[1] / "features" /
                                                  "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.make_tiny_bert(path, hidden=32, layers=3)


@pytest.fixture(scope="session")
def bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of a random 3-layer BERT (hidden 32) with its WordPiece tokenizer."""
    return _make_tiny_bert(tmp_path_factory.mktemp("tiny_bert3"))
