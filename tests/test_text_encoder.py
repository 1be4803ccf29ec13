"""TextEncoder: resolution of names, mean pooling, encode (dedupe, batching, normalisation), save/load."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from models_fixtures import tiny_mpnet_encoder_dir, tiny_text_encoder_dir  # noqa: F401 (fixtures)

from common.models.text_encoder import (
    DEFAULT_TEXT_ENCODER,
    TextEncoder,
    TextEncoderNotFoundError,
    mean_pool,
    resolve_text_encoder,
)

torch.set_num_threads(1)

SENTENCES = ["walking steadily", "a person walks", "lying still on a bed"]


@pytest.fixture()
def tiny_encoder(tiny_text_encoder_dir: Path) -> TextEncoder:  # noqa: F811
    return TextEncoder(tiny_text_encoder_dir, max_length=32)


def test_resolve_minilm_alias_points_at_the_packaged_model() -> None:
    directory = Path(resolve_text_encoder(DEFAULT_TEXT_ENCODER))
    assert (directory / "config.json").is_file()
    assert (directory / "tokenizer.json").is_file() or (directory / "vocab.txt").is_file()
    assert resolve_text_encoder("MiniLM") == str(directory)


def test_resolve_directory_and_hub_names(tiny_text_encoder_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    assert resolve_text_encoder(tiny_text_encoder_dir) == str(tiny_text_encoder_dir)
    assert (
        resolve_text_encoder("sentence-transformers/all-mpnet-base-v2")
        == "sentence-transformers/all-mpnet-base-v2"
    )
    with pytest.raises(TextEncoderNotFoundError, match="does not exist"):
        resolve_text_encoder(str(tmp_path / "missing" / "model"))
    with pytest.raises(TextEncoderNotFoundError, match="no config.json"):
        resolve_text_encoder(tmp_path)
    with pytest.raises(ValueError, match="non-empty"):
        resolve_text_encoder("  ")


def test_unknown_hub_name_fails_fast_with_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(TextEncoderNotFoundError, match="not found locally and no network; pass a directory"):
        TextEncoder("fedlanhar-tests/no-such-model")


def test_mean_pool_ignores_padding() -> None:
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert torch.allclose(mean_pool(hidden, mask), torch.tensor([[2.0, 3.0]]))


def test_forward_is_unnormalised_and_differentiable(tiny_encoder: TextEncoder) -> None:
    embeddings = tiny_encoder(SENTENCES)
    assert embeddings.shape == (3, tiny_encoder.dim) == (3, 32)
    assert not torch.allclose(embeddings.norm(dim=-1), torch.ones(3))
    embeddings.sum().backward()
    gradient = tiny_encoder.model.embeddings.word_embeddings.weight.grad
    assert gradient is not None and gradient.abs().sum() > 0


def test_encode_normalises_dedupes_and_keeps_order(tiny_encoder: TextEncoder) -> None:
    texts = ["b text", "a text", "b text", "a much longer text than the others, with padding to spare"]
    embeddings = tiny_encoder.encode(texts, batch_size=2)
    assert embeddings.dtype == np.float32 and embeddings.shape == (4, 32)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(embeddings[0], embeddings[2])  # identical texts: bit-identical rows
    alone = tiny_encoder.encode(["a text"], batch_size=1)
    np.testing.assert_allclose(
        embeddings[1], alone[0], atol=1e-5
    )  # padding next to a long text changes nothing
    assert tiny_encoder.encode([]).shape == (0, 32)
    assert tiny_encoder.training  # encode restores the caller's mode


def test_encode_rejects_a_single_string_and_non_strings(tiny_encoder: TextEncoder) -> None:
    with pytest.raises(TypeError, match="list of strings"):
        tiny_encoder.encode("walking")
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        tiny_encoder.encode(["walking", 3])


def test_max_length_truncates(tiny_encoder: TextEncoder) -> None:
    batch = tiny_encoder.tokenize(["word " * 200])
    assert batch["input_ids"].shape == (1, 32)


def test_save_and_load_round_trip(tiny_encoder: TextEncoder, tmp_path: Path) -> None:
    tiny_encoder.save(tmp_path / "encoder")
    loaded = TextEncoder.load(tmp_path / "encoder")
    assert loaded.max_length == 32 and loaded.dim == 32
    np.testing.assert_allclose(loaded.encode(SENTENCES), tiny_encoder.encode(SENTENCES), atol=1e-6)
    with pytest.raises(TextEncoderNotFoundError, match="not a saved TextEncoder"):
        TextEncoder.load(tmp_path)


def test_content_digest_names_the_weights_not_their_path(
    tiny_text_encoder_dir: Path,  # noqa: F811
    tiny_mpnet_encoder_dir: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The stage-1 cache key (text_space_cache.stage1_key) uses it: a copy in another checkout hits."""
    copy = shutil.copytree(tiny_text_encoder_dir, tmp_path / "elsewhere" / "encoder")
    original = TextEncoder(tiny_text_encoder_dir)
    assert TextEncoder(copy).content_digest() == original.content_digest()
    assert TextEncoder(tiny_mpnet_encoder_dir).content_digest() != original.content_digest()
    with torch.no_grad():
        next(original.model.parameters())[0, 0] += 1e-3
    assert original.content_digest() != TextEncoder(copy).content_digest()


def test_mpnet_architecture_works_too(tiny_mpnet_encoder_dir: Path) -> None:  # noqa: F811
    encoder = TextEncoder(tiny_mpnet_encoder_dir, max_length=16)
    assert type(encoder.model).__name__ == "MPNetModel"
    embeddings = encoder.encode(SENTENCES)
    assert embeddings.shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_real_minilm_orders_similar_sentences() -> None:
    encoder = TextEncoder(DEFAULT_TEXT_ENCODER)
    assert encoder.dim == 384
    walking, walks, lying = encoder.encode(SENTENCES)
    assert float(walking @ walks) > float(walking @ lying) + 0.1
