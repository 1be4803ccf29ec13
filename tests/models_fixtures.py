"""Tiny random text encoders for fast unit tests (the real MiniLM is only used in @slow tests).

Import the fixture into a test module with `from models_fixtures import tiny_text_encoder_dir`
(pytest puts tests/ on sys.path, as for llm_fakes; fixtures imported into a module are used by pytest).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TINY_HIDDEN = 32


def save_tiny_text_encoder(directory: Path, kind: str = "bert", seed: int = 0) -> Path:
    """A randomly initialised 2-layer, 32-wide BERT (or MPNet) with the MiniLM tokenizer, saved to directory.

    Its embeddings mean nothing; it exercises tokenisation, pooling, batching, saving and training loops.
    """
    from transformers import AutoTokenizer, BertConfig, BertModel, MPNetConfig, MPNetModel

    from common.models.text_encoder import DEFAULT_TEXT_ENCODER, resolve_text_encoder

    tokenizer = AutoTokenizer.from_pretrained(resolve_text_encoder(DEFAULT_TEXT_ENCODER))
    sizes = dict(
        vocab_size=len(tokenizer),
        hidden_size=TINY_HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=160,
    )
    torch.manual_seed(seed)
    if kind == "bert":
        model = BertModel(BertConfig(**sizes, pad_token_id=tokenizer.pad_token_id))
    elif kind == "mpnet":
        model = MPNetModel(MPNetConfig(**sizes, pad_token_id=tokenizer.pad_token_id))
    else:
        raise ValueError(f"unknown tiny model kind {kind!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(directory)
    model.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_text_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT (hidden 32) with the MiniLM tokenizer, saved; load it with TextEncoder(dir)."""
    return save_tiny_text_encoder(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def tiny_mpnet_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same as tiny_text_encoder_dir with an MPNet architecture (checks 'any BERT-family AutoModel')."""
    return save_tiny_text_encoder(tmp_path_factory.mktemp("tiny_mpnet"), kind="mpnet")
