"""Training loops of the two LanHAR stages.

Stage 1 (`train_text_encoder`, section 3.4): fine-tune the text encoder so that sensor interpretations land
near the descriptions of their label, with category-level ranking and a reconstruction decoder.
Stage 2 (`train_sensor_encoder`, section 3.5): train the sensor encoder so that E = f(window) matches
Z = g(interpretation of that window) under symmetric InfoNCE with hard targets (losses.InfoNCELoss: the
windows that share an interpretation are positives of each other).
`train_sensor_epochs` is the same loss for a few local epochs on a federated client (optionally with a FedProx
proximal term): central stage 2 and the clients' federated training share `_run_sensor_epoch`.
`average_state_dicts` is FedAvg's aggregate, for running the federation's rounds in one process.

Stage 1 fits a CPU budget (a MiniLM step at batch 32 costs seconds): it trains on the distinct
(interpretation, label) pairs, embeds each distinct text once per step, pads batches only to their longest
text and stops at `max_steps`.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pad_sequence

from common.base.device import autocast, module_device
from common.data.devices import rotation_matrix
from common.models.losses import InfoNCELoss, ReconstructionLoss, TextAlignmentLoss, same_group_mask
from common.models.sensor_encoder import SensorEncoder, check_windows, window_analysis
from common.models.text_encoder import TextEncoder, mean_pool


@dataclass
class TextTrainConfig:
    max_steps: int | None = 150  # optimizer steps: the CPU budget (~3-4 s each for MiniLM on 2 cores)
    epochs: float | None = None  # only when max_steps is None: passes over the unique (text, label) pairs
    batch_size: int = 32  # sensor interpretations (each paired with a description of its label) per step
    descriptions_per_step: int = 2  # descriptions drawn per label in a step: >= 2 gives ca3 its positives
    lr: float = 2e-5  # text encoder (pretrained) learning rate
    decoder_lr: float = 1e-3  # the reconstruction decoder starts from scratch, it needs a larger step
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1  # linear warm-up over this share of the steps, then linear decay to 0
    grad_clip: float = 1.0
    temperature: float = 0.07
    alpha: float = 0.5  # weight of ca1 + ca2 + ca3 (the paper gives no value)
    beta: float = 0.1  # weight of the reconstruction loss (the paper gives no value)
    # Tokens per text incl. [CLS]/[SEP], longer texts are cut: rule interpretations measure 51-61 MiniLM
    # tokens, configs/label_knowledge.toml descriptions 83-116.
    max_length: int = 128
    descriptions_per_label: int | None = None  # use at most this many descriptions per label (None: all)
    # Fine-tune only the top n layers (None: all, the paper's choice; fewer are cheaper but lost accuracy:
    # docs/results/speed). The frozen bottom then runs once per distinct text (_TextEmbedder).
    trainable_layers: int | None = None
    decoder_layers: int = 2
    decoder_heads: int = 4
    decoder_dim: int = 128
    seed: int = 0
    log_every: int = 10  # steps between progress-bar updates of the loss terms

    def __post_init__(self) -> None:
        if self.max_steps is None and self.epochs is None:
            raise ValueError("TextTrainConfig needs max_steps or epochs")
        if (self.epochs is not None and self.epochs <= 0) or self.batch_size < 2 or self.max_length < 4:
            raise ValueError(
                "TextTrainConfig needs epochs > 0, batch_size >= 2, max_length >= 4; "
                f"got epochs={self.epochs}, batch_size={self.batch_size}, max_length={self.max_length}"
            )
        minimums = {
            "max_steps": 1,
            "descriptions_per_step": 1,
            "descriptions_per_label": 1,
            "trainable_layers": 0,
        }
        for name, minimum in minimums.items():
            value = getattr(self, name)
            if value is not None and value < minimum:
                raise ValueError(f"TextTrainConfig.{name} must be >= {minimum}, got {value}")


@dataclass
class SensorTrainConfig:
    epochs: int = 30  # central training; a federated client's local epochs are passed here too
    batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 0.01
    temperature: float = 0.07
    grad_clip: float = 1.0
    val_fraction: float = 0.0  # random hold-out for early stopping when no X_val is given (0: no early stop)
    # Std (deg, per axis) of a random rotation applied to each training window's accelerometer and gyroscope
    # triples. The interpretations are built from mostly orientation-invariant features, so a rotated window
    # keeps its target; this teaches the encoder the same invariance across users' mountings. 0: off.
    rotation_jitter_deg: float = 0.0
    patience: int = 5  # epochs without a better validation loss before stopping
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2 or self.lr <= 0:
            raise ValueError(
                f"SensorTrainConfig needs epochs >= 1, batch_size >= 2, lr > 0; got epochs={self.epochs}, "
                f"batch_size={self.batch_size}, lr={self.lr}"
            )
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"SensorTrainConfig.val_fraction must be in [0, 1), got {self.val_fraction}")
        if not 0.0 <= self.rotation_jitter_deg <= 180.0:
            raise ValueError(
                "SensorTrainConfig.rotation_jitter_deg must be in [0, 180] degrees, "
                f"got {self.rotation_jitter_deg}"
            )


# ----------------------------------------------------------------------------------------------- helpers


def _progress(iterable, enabled: bool, **options):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, **options)


def _adamw(groups: list[tuple[list[nn.Parameter], float]], weight_decay: float) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only: decaying biases and LayerNorm gains only hurts.

    foreach=True: torch picks it by itself on CUDA but loops over the tensors in Python on the CPU. The
    foreach update runs the same per-tensor operations with the same scalars, so the weights are bit-identical
    (tests/test_train.py checks it); it only drops that Python loop: a sixth of the optimiser's time for the
    128-wide sensor encoder's 50 tensors, about 2% of a stage-2 epoch on one thread.
    """
    param_groups = []
    for parameters, lr in groups:
        matrices = [p for p in parameters if p.requires_grad and p.dim() >= 2]
        vectors = [p for p in parameters if p.requires_grad and p.dim() < 2]
        param_groups.append({"params": matrices, "lr": lr, "weight_decay": weight_decay})
        param_groups.append({"params": vectors, "lr": lr, "weight_decay": 0.0})
    return torch.optim.AdamW([g for g in param_groups if g["params"]], foreach=True)


def _cycle_shuffled(items: Sequence[int], rng: random.Random) -> Iterator[int]:
    """Endless stream over items, reshuffled on every pass (each item once per pass)."""
    items = list(items)
    while True:
        rng.shuffle(items)
        yield from items


def _pad(sequences: list[list[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    """Token ids [B, L] padded with pad_id to the longest sequence, and the 0/1 attention mask [B, L]."""
    ids = pad_sequence([torch.tensor(s) for s in sequences], batch_first=True, padding_value=pad_id)
    mask = pad_sequence([torch.ones(len(s), dtype=torch.long) for s in sequences], batch_first=True)
    return ids, mask


def _tokenize_capped(encoder: TextEncoder, texts: list[str], max_length: int) -> tuple[list[list[int]], int]:
    """Token ids of each text, cut to max_length keeping the closing special token; also how many were cut."""
    full = encoder.tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
    capped = [ids[: max_length - 1] + ids[-1:] if len(ids) > max_length else list(ids) for ids in full]
    return capped, sum(len(ids) > max_length for ids in full)


def _length_stats(token_ids: list[list[int]]) -> dict[str, float]:
    lengths = np.array([len(ids) for ids in token_ids])
    return {
        "median": float(np.median(lengths)),
        "p95": float(np.percentile(lengths, 95)),
        "max": int(lengths.max()),
    }


# ------------------------------------------------------------------------------------------- stage 1


def _encoder_layers(encoder: TextEncoder) -> list[nn.Module]:
    """The transformer layers of a BERT-like text encoder (embeddings + encoder.layer), bottom first."""
    layers = getattr(getattr(encoder.model, "encoder", None), "layer", None)
    if layers is None or not hasattr(encoder.model, "embeddings"):
        raise ValueError(
            f"trainable_layers needs a BERT-like model (embeddings + encoder.layer); "
            f"{type(encoder.model).__name__} has another layout: use trainable_layers=None"
        )
    return list(layers)


def _freeze_lower_layers(encoder: TextEncoder, trainable_layers: int | None) -> list[nn.Parameter]:
    """Stop gradients below the top `trainable_layers` layers; returns the parameters that were frozen."""
    if trainable_layers is None:
        return []
    layers = _encoder_layers(encoder)
    frozen_modules = [encoder.model.embeddings, *layers[: max(0, len(layers) - trainable_layers)]]
    frozen = [p for module in frozen_modules for p in module.parameters() if p.requires_grad]
    for parameter in frozen:
        parameter.requires_grad_(False)
    return frozen


# Architectures whose layers take (hidden states, additive mask) and nothing else: their frozen bottom can
# be cached. MPNet, for one, also passes a relative position bias to every layer, so it runs whole.
LAYER_CACHE_MODEL_TYPES = ("bert", "roberta", "xlm-roberta", "electra")


def _run_layers(layers: list[nn.Module], hidden: Tensor, mask: Tensor) -> Tensor:
    """BERT layers on hidden [B, L, D]; the 0/1 mask [B, L] becomes the additive [B, 1, 1, L] one."""
    additive = (1.0 - mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
    for layer in layers:
        output = layer(hidden, additive)
        hidden = output[0] if isinstance(output, tuple) else output  # transformers 4.x returns a tuple
    return hidden


class _TextEmbedder:
    """Embeds stage 1's distinct texts by index, padding each batch only to its longest text.

    With `trainable_layers` = k the layers below the top k get no gradient, so their output for a text never
    changes: it is computed once per distinct text (eval mode, no dropout) and each step runs the top k only.
    """

    def __init__(
        self, encoder: TextEncoder, token_ids: list[list[int]], trainable_layers: int | None
    ) -> None:
        self.encoder = encoder
        self.token_ids = token_ids
        self.pad_id = encoder.pad_token_id
        self.top: list[nn.Module] | None = None
        self.states: list[Tensor] = []
        if trainable_layers is None or encoder.model.config.model_type not in LAYER_CACHE_MODEL_TYPES:
            return  # the whole model runs every step (frozen layers, if any, still get no update)
        layers = _encoder_layers(encoder)
        cut = max(0, len(layers) - trainable_layers)
        self.top = layers[cut:]
        self.states = self._lower_states(layers[:cut])

    @torch.no_grad()
    def _lower_states(self, bottom: list[nn.Module], chunk: int = 64) -> list[Tensor]:
        states: list[Tensor | None] = [None] * len(self.token_ids)
        order = sorted(range(len(self.token_ids)), key=lambda i: len(self.token_ids[i]))
        was_training = self.encoder.model.training
        self.encoder.model.eval()
        try:
            for start in range(0, len(order), chunk):
                rows = order[start : start + chunk]
                ids, mask = _pad([self.token_ids[i] for i in rows], self.pad_id)
                ids, mask = ids.to(self.encoder.device), mask.to(self.encoder.device)
                hidden = _run_layers(bottom, self.encoder.model.embeddings(input_ids=ids), mask)
                for row, index in enumerate(rows):
                    states[index] = hidden[row, : len(self.token_ids[index])].float()
        finally:
            self.encoder.model.train(was_training)
        return states

    def __call__(self, indices: list[int]) -> tuple[Tensor, Tensor, Tensor]:
        """Embeddings [B, dim] of these texts plus their padded ids and mask (the decoder reuses them)."""
        ids, mask = _pad([self.token_ids[i] for i in indices], self.pad_id)
        if self.top is None:
            return self.encoder.embed_tokens(ids, mask), ids, mask
        mask = mask.to(self.encoder.device)
        hidden = pad_sequence([self.states[i] for i in indices], batch_first=True)
        return mean_pool(_run_layers(self.top, hidden, mask), mask), ids, mask


@dataclass
class _Stage1Texts:
    """Stage 1's distinct texts by index: the (interpretation, label) pairs and the label descriptions, with
    the label and category of each. Rule interpretations repeat a lot: each distinct pair is embedded once."""

    labels: list[str]  # sorted
    categories: list[str]  # sorted
    category_of_label: Tensor  # [labels] category index of each label
    pairs: list[tuple[str, str]]  # the distinct (interpretation, label) pairs
    pair_label: list[int]  # label index of each pair
    texts_of_label: list[list[int]]  # the pairs of each label
    descriptions: list[str]
    description_label: list[int]  # label index of each description
    descriptions_of_label: list[list[int]]  # the descriptions of each label

    @classmethod
    def build(
        cls,
        sensor_texts: list[str],
        sensor_labels: list[str],
        label_descriptions: Mapping[str, Sequence[str]],
        category_of: Callable[[str], str],
        descriptions_per_label: int | None,
    ) -> _Stage1Texts:
        if len(sensor_texts) != len(sensor_labels):
            raise ValueError(
                f"sensor_texts has {len(sensor_texts)} rows but sensor_labels has {len(sensor_labels)}"
            )
        if not sensor_texts:
            raise ValueError("sensor_texts is empty: stage 1 needs labeled interpretations")
        labels = sorted({str(label) for label in sensor_labels})
        missing = [label for label in labels if not label_descriptions.get(label)]
        if missing:
            raise ValueError(f"label_descriptions has no description for labels {missing}")
        categories = sorted({category_of(label) for label in labels})
        label_index = {label: i for i, label in enumerate(labels)}
        pairs = sorted(
            {(str(text), str(label)) for text, label in zip(sensor_texts, sensor_labels, strict=True)}
        )
        pair_label = [label_index[label] for _, label in pairs]
        descriptions, description_label = [], []
        for label in labels:
            chosen = list(dict.fromkeys(label_descriptions[label]))[:descriptions_per_label]
            descriptions.extend(chosen)
            description_label.extend([label_index[label]] * len(chosen))
        return cls(
            labels=labels,
            categories=categories,
            category_of_label=torch.tensor([categories.index(category_of(label)) for label in labels]),
            pairs=pairs,
            pair_label=pair_label,
            texts_of_label=[
                [i for i, owner in enumerate(pair_label) if owner == c] for c in range(len(labels))
            ],
            descriptions=descriptions,
            description_label=description_label,
            descriptions_of_label=[
                [i for i, owner in enumerate(description_label) if owner == c] for c in range(len(labels))
            ],
        )


class _Stage1Sampler:
    """Draws each step's rows: `batch_size` interpretations with class balance, `descriptions_per_step`
    descriptions of each label present, and every interpretation paired with one of its label's drawn
    descriptions. Every stream is reshuffled on each pass, all from one seeded `random.Random`."""

    def __init__(self, texts: _Stage1Texts, rng: random.Random) -> None:
        self.texts = texts
        self.label_stream = _cycle_shuffled(range(len(texts.labels)), rng)
        self.text_streams = [_cycle_shuffled(index, rng) for index in texts.texts_of_label]
        self.description_streams = [_cycle_shuffled(index, rng) for index in texts.descriptions_of_label]

    def draw(self, config: TextTrainConfig) -> tuple[list[int], list[int], list[tuple[int, int]]]:
        """The step's distinct pair indices, its description indices, and its (pair row, description row)
        rows, indexing into the first two lists."""
        row_labels = [next(self.label_stream) for _ in range(config.batch_size)]
        row_texts = [next(self.text_streams[c]) for c in row_labels]
        step_texts = sorted(set(row_texts))
        drawn = {}
        for c in sorted(set(row_labels)):
            count = min(config.descriptions_per_step, len(self.texts.descriptions_of_label[c]))
            drawn[c] = list(dict.fromkeys(next(self.description_streams[c]) for _ in range(count)))
        step_descriptions = [d for c in sorted(drawn) for d in drawn[c]]
        seen_of_label = {c: 0 for c in drawn}
        pair_rows = []
        for text, c in zip(row_texts, row_labels, strict=True):
            description = drawn[c][seen_of_label[c] % len(drawn[c])]
            seen_of_label[c] += 1
            pair_rows.append((step_texts.index(text), step_descriptions.index(description)))
        return step_texts, step_descriptions, pair_rows


@dataclass
class _Stage1Tokens:
    """Token ids of stage 1's distinct texts, capped at `max_length`, and the decoder's compact vocabulary."""

    pairs: list[list[int]]  # of each distinct (interpretation, label) pair's text
    pairs_cut: int  # how many were longer than max_length
    descriptions: list[list[int]]
    descriptions_cut: int
    used_ids: list[int]  # the token ids that occur (sorted, padding included)
    to_compact: Tensor  # token id -> its index in used_ids

    @classmethod
    def build(cls, encoder: TextEncoder, texts: _Stage1Texts, max_length: int) -> _Stage1Tokens:
        pairs, pairs_cut = _tokenize_capped(encoder, [text for text, _ in texts.pairs], max_length)
        descriptions, descriptions_cut = _tokenize_capped(encoder, texts.descriptions, max_length)
        # The decoder only has to predict tokens that occur in the training texts: a compact output
        # vocabulary (hundreds of ids instead of 30k) makes the reconstruction loss cheap next to the encoder.
        used_ids = sorted({token for ids in pairs + descriptions for token in ids} | {encoder.pad_token_id})
        to_compact = torch.zeros(max(used_ids) + 1, dtype=torch.long)
        to_compact[torch.tensor(used_ids)] = torch.arange(len(used_ids))
        return cls(pairs, pairs_cut, descriptions, descriptions_cut, used_ids, to_compact)

    def facts(self) -> dict:
        """Token lengths (and how many texts were cut) and the decoder's vocabulary size, for the history."""
        return {
            "token_lengths": {
                "sensor": _length_stats(self.pairs) | {"cut": self.pairs_cut},
                "description": _length_stats(self.descriptions) | {"cut": self.descriptions_cut},
            },
            "decoder_vocab": len(self.used_ids),
        }


def _stage1_criterion(encoder: TextEncoder, vocab_size: int, config: TextTrainConfig) -> TextAlignmentLoss:
    """Stage 1's loss; with a reconstruction decoder (new weights from the torch RNG) when beta > 0."""
    reconstruction = None
    if config.beta > 0:
        reconstruction = ReconstructionLoss(
            vocab_size=vocab_size,
            dim=encoder.dim,
            num_layers=config.decoder_layers,
            num_heads=config.decoder_heads,
            max_length=config.max_length,
            hidden_dim=config.decoder_dim,
        ).to(encoder.device)
    return TextAlignmentLoss(config.alpha, config.beta, config.temperature, reconstruction)


class _Stage1Optimizer:
    """AdamW over the encoder (and the decoder, at its own rate) with linear warm-up, then linear decay;
    every step clips the gradient norm of everything it trains."""

    def __init__(
        self,
        encoder: TextEncoder,
        reconstruction: ReconstructionLoss | None,
        config: TextTrainConfig,
        total_steps: int,
    ) -> None:
        groups = [(list(encoder.parameters()), config.lr)]
        if reconstruction is not None:
            groups.append((list(reconstruction.parameters()), config.decoder_lr))
        self.optimizer = _adamw(groups, config.weight_decay)
        self.parameters = [p for group in self.optimizer.param_groups for p in group["params"]]
        self.grad_clip = config.grad_clip
        warmup = max(1, int(config.warmup_fraction * total_steps))
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda step: min(
                (step + 1) / warmup, max(0.0, (total_steps - step) / max(1, total_steps - warmup))
            ),
        )

    def step(self, loss: Tensor) -> float:
        """One update on `loss`; returns the learning rate the next step will use."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.parameters, self.grad_clip)
        self.optimizer.step()
        self.schedule.step()
        return self.optimizer.param_groups[0]["lr"]


def _stage1_loss(
    criterion: TextAlignmentLoss,
    texts: _Stage1Texts,
    embedders: tuple[_TextEmbedder, _TextEmbedder],
    to_compact: Tensor,
    step: tuple[list[int], list[int], list[tuple[int, int]]],
) -> dict[str, Tensor]:
    """The stage-1 loss terms of one step drawn by `_Stage1Sampler.draw`."""
    step_texts, step_descriptions, pair_rows = step
    embed_sensor_texts, embed_descriptions = embedders
    device = embed_sensor_texts.encoder.device
    sensor_labels = torch.tensor([texts.pair_label[i] for i in step_texts])
    description_labels = torch.tensor([texts.description_label[i] for i in step_descriptions])
    with autocast(device):
        Z, sensor_ids, sensor_mask = embed_sensor_texts(step_texts)
        H, description_ids, description_mask = embed_descriptions(step_descriptions)
        return criterion(
            Z,
            sensor_labels.to(device),
            texts.category_of_label[sensor_labels].to(device),
            H,
            description_labels.to(device),
            texts.category_of_label[description_labels].to(device),
            pairs=torch.tensor(pair_rows, device=device),
            sensor_tokens=(to_compact[sensor_ids.cpu()].to(device), sensor_mask.to(device)),
            description_tokens=(to_compact[description_ids.cpu()].to(device), description_mask.to(device)),
        )


def train_text_encoder(
    encoder: TextEncoder,
    sensor_texts: list[str],
    sensor_labels: list[str],
    label_descriptions: Mapping[str, Sequence[str]],
    category_of: Callable[[str], str],
    config: TextTrainConfig | None = None,
    progress: bool = True,
) -> dict:
    """Stage 1, in place on `encoder`. Returns a history of the loss terms per step plus run facts.

    Each step's rows come from `_Stage1Sampler` (class-balanced interpretations, each paired with one of its
    label's descriptions); the loss is TextAlignmentLoss: align + alpha (ca1 + ca2 + ca3) + beta re.
    """
    config = config or TextTrainConfig()
    texts = _Stage1Texts.build(
        sensor_texts, sensor_labels, label_descriptions, category_of, config.descriptions_per_label
    )
    tokens = _Stage1Tokens.build(encoder, texts, config.max_length)
    total_steps = config.max_steps or max(1, math.ceil(config.epochs * len(texts.pairs) / config.batch_size))

    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    criterion = _stage1_criterion(encoder, len(tokens.used_ids), config)
    frozen = _freeze_lower_layers(encoder, config.trainable_layers)
    cache_started = time.perf_counter()
    embedders = (
        _TextEmbedder(encoder, tokens.pairs, config.trainable_layers),
        _TextEmbedder(encoder, tokens.descriptions, config.trainable_layers),
    )
    cache_seconds = time.perf_counter() - cache_started  # the frozen bottom, once per distinct text
    optimizer = _Stage1Optimizer(encoder, criterion.reconstruction, config, total_steps)
    sampler = _Stage1Sampler(texts, rng)

    terms = ("loss", "align", "ca1", "ca2", "ca3", "re")
    history: dict = {term: [] for term in terms} | {"lr": [], "distinct_texts_per_step": []}
    encoder.train()
    criterion.train()
    started = time.perf_counter()
    try:
        bar = _progress(range(total_steps), progress, desc="stage 1: text encoder", unit="step")
        for step in bar:
            drawn = sampler.draw(config)
            result = _stage1_loss(criterion, texts, embedders, tokens.to_compact, drawn)
            history["lr"].append(optimizer.step(result["loss"]))
            for term in terms:
                history[term].append(float(result[term].detach()))
            history["distinct_texts_per_step"].append(len(drawn[0]) + len(drawn[1]))
            if progress and (step % config.log_every == 0 or step == total_steps - 1):
                bar.set_postfix({term: f"{history[term][-1]:.3f}" for term in ("loss", "align", "re")})
    finally:
        for parameter in frozen:  # the caller gets a fully trainable encoder back
            parameter.requires_grad_(True)
        encoder.eval()
    seconds = time.perf_counter() - started
    history.update(
        {
            "steps": total_steps,
            "seconds": seconds,
            "seconds_per_step": seconds / total_steps,
            "cache_seconds": cache_seconds,
            "unique_pairs": len(texts.pairs),
            "num_texts": len(sensor_texts),
            "num_descriptions": len(texts.descriptions),
            "labels": texts.labels,
            "categories": texts.categories,
            "max_length": config.max_length,
        }
        | tokens.facts()
        | {"config": asdict(config)}
    )
    return history


# ------------------------------------------------------------------------------------------- stage 2


def _check_targets(X: np.ndarray, Z: np.ndarray, model: SensorEncoder, field: str = "Z") -> None:
    check_windows(X, model.config)
    Z_shape = tuple(np.shape(Z))
    if len(Z_shape) != 2 or Z_shape[0] != len(X) or Z_shape[1] != model.config.out_dim:
        raise ValueError(
            f"{field} must be [{len(X)}, {model.config.out_dim}] (one text embedding per window, the sensor "
            f"encoder's out_dim), got {list(Z_shape)}"
        )
    if not np.all(np.isfinite(Z)):
        raise ValueError(f"{field} contains NaN or inf")


def distinct_targets(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of Z [G, D] and, per row of Z, the index of its distinct row (int64 [N]): rows that
    are exactly identical (the same interpretation text) share it."""
    bank, inverse = np.unique(np.ascontiguousarray(Z, dtype=np.float32), axis=0, return_inverse=True)
    return bank, inverse.reshape(-1).astype(np.int64)


def rotate_windows(X: Tensor, angles_deg: Tensor) -> Tensor:
    """Windows [N, T, 6] with each window's acc and gyro triples rotated by its Euler angles [N, 3] (deg)."""
    R = torch.from_numpy(rotation_matrix(angles_deg.cpu().numpy())).to(X.device, X.dtype)  # [N, 3, 3]
    acc = torch.einsum("nij,ntj->nti", R, X[..., :3])
    gyro = torch.einsum("nij,ntj->nti", R, X[..., 3:6])
    return torch.cat([acc, gyro, X[..., 6:]], dim=-1)


def _analysis_input(model: SensorEncoder, X: np.ndarray) -> Tensor | None:
    """The analysis-token input of windows X on the model's device; None for a model without the token."""
    if not model.config.analysis_token:
        return None
    return torch.from_numpy(window_analysis(X, model.config)).to(module_device(model))


@dataclass
class _Stage2Windows:
    """Windows and their text targets as tensors on the model's device, with what the loss reads of them."""

    X: torch.Tensor
    analysis: torch.Tensor | None  # the analysis token's input, computed once per window
    Z: torch.Tensor
    groups: torch.Tensor  # windows with identical targets share a group (positives of each other)

    @classmethod
    def build(cls, model: SensorEncoder, X: np.ndarray, Z: np.ndarray) -> _Stage2Windows:
        device = module_device(model)
        _, groups = distinct_targets(Z)
        return cls(
            X=torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)).to(device),
            analysis=_analysis_input(model, X),
            Z=torch.from_numpy(np.ascontiguousarray(Z, dtype=np.float32)).to(device),
            groups=torch.from_numpy(groups).to(device),
        )

    @torch.no_grad()
    def mean_loss(self, model: SensorEncoder, criterion: InfoNCELoss, batch_size: int) -> float:
        """Mean stage-2 loss over these windows in eval mode (the validation loss of the early stop)."""
        model.eval()
        total, count = 0.0, 0
        for start in range(0, len(self.X), batch_size):
            stop = min(start + batch_size, len(self.X))
            if stop - start < 2:
                continue
            X, same = self.X[start:stop], same_group_mask(self.groups[start:stop])
            with autocast(X.device):
                E = model(X, self.analysis[start:stop]) if self.analysis is not None else model(X)
                loss = criterion(E, self.Z[start:stop], same)["loss"]
            total += float(loss) * (stop - start)
            count += stop - start
        return total / max(count, 1)


@dataclass
class _Stage2Inputs:
    """What central stage 2 and a client's local update both train on: tensors, loss and a fresh optimizer."""

    windows: _Stage2Windows
    criterion: InfoNCELoss
    optimizer: torch.optim.Optimizer
    frozen_layers: int  # bottom transformer layers that get no gradient (a client's client-train-layers)
    frozen_states: Tensor | None  # each window's tokens after them, computed once (None: no frozen layer)

    @classmethod
    def build(
        cls, model: SensorEncoder, X: np.ndarray, Z: np.ndarray, config: SensorTrainConfig
    ) -> _Stage2Inputs:
        windows = _Stage2Windows.build(model, X, Z)
        # A rotated window changes the frozen layers' input, so rotation jitter turns the cache off.
        frozen_layers = model.frozen_bottom_layers() if config.rotation_jitter_deg == 0 else 0
        return cls(
            windows=windows,
            criterion=InfoNCELoss(config.temperature),
            optimizer=_adamw([(list(model.parameters()), config.lr)], config.weight_decay),
            frozen_layers=frozen_layers,
            frozen_states=_frozen_states(model, windows, frozen_layers, config.batch_size),
        )


@torch.no_grad()
def _frozen_states(
    model: SensorEncoder, windows: _Stage2Windows, layers: int, batch_size: int
) -> Tensor | None:
    """Each window's token states after the `layers` frozen bottom layers, in eval mode (no dropout), as
    stage 1's frozen text layers run (_TextEmbedder): they get no gradient, so every epoch would compute
    them again for nothing. The layers above train on them; the bottom layers stay as pre-trained."""
    if layers == 0:
        return None
    model.eval()
    states = []
    for start in range(0, len(windows.X), batch_size):
        stop = start + batch_size
        analysis = windows.analysis[start:stop] if windows.analysis is not None else None
        with autocast(windows.X.device):
            states.append(model.bottom_states(windows.X[start:stop], analysis, layers))
    return torch.cat(states)


def _batch_embeddings(
    model: SensorEncoder,
    data: _Stage2Inputs,
    index: Tensor,
    config: SensorTrainConfig,
    generator: torch.Generator,
) -> Tensor:
    """The training embeddings of the windows at `index`: over the stored frozen-layer states when there are
    some, otherwise through the whole model (each window rotated by the jitter, when it is on)."""
    if data.frozen_states is not None:
        return model.top_embeddings(data.frozen_states[index], data.frozen_layers)
    train = data.windows
    windows = train.X[index]
    analysis = train.analysis[index] if train.analysis is not None else None
    if config.rotation_jitter_deg > 0:
        angles = torch.randn(len(index), 3, generator=generator) * config.rotation_jitter_deg
        windows = rotate_windows(windows, angles)
        if analysis is not None and model.config.input_frame != "gravity":
            # The device frame's analysis reads per-axis features, which rotate with the window.
            rotated = window_analysis(windows.cpu().numpy(), model.config)
            analysis = torch.from_numpy(rotated).to(windows.device)
    return model(windows, analysis)


def _run_sensor_epoch(
    model: SensorEncoder,
    data: _Stage2Inputs,
    config: SensorTrainConfig,
    generator: torch.Generator,
    anchor: list[Tensor] | None = None,
    proximal_mu: float = 0.0,
) -> float:
    """One shuffled pass; returns the mean stage-2 loss (the proximal term is optimised, not reported)."""
    model.train()
    train = data.windows
    order = torch.randperm(len(train.X), generator=generator)
    total, count = 0.0, 0
    for start in range(0, len(order), config.batch_size):
        index = order[start : start + config.batch_size]
        if len(index) < 2:  # one pair has no negatives: the loss is identically 0
            continue
        with autocast(train.X.device):
            E = _batch_embeddings(model, data, index, config, generator)
            loss = data.criterion(E, train.Z[index], same_group_mask(train.groups[index]))["loss"]
        objective = loss
        if anchor is not None and proximal_mu > 0:
            drift = sum(((p - p0) ** 2).sum() for p, p0 in zip(model.parameters(), anchor, strict=True))
            objective = loss + proximal_mu / 2 * drift
        data.optimizer.zero_grad(set_to_none=True)
        objective.backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        data.optimizer.step()
        total += float(loss.detach()) * len(index)
        count += len(index)
    return total / max(count, 1)


def _validation_split(
    model: SensorEncoder,
    X: np.ndarray,
    Z: np.ndarray,
    X_val: np.ndarray | None,
    Z_val: np.ndarray | None,
    config: SensorTrainConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(X, Z, X_val, Z_val) of central stage 2: the validation set as given (checked), or a random
    `config.val_fraction` of X held out (seeded by `config.seed`), or none."""
    if X_val is None and config.val_fraction > 0:
        permutation = np.random.default_rng(config.seed).permutation(len(X))
        n_val = max(2, int(round(config.val_fraction * len(X))))
        X_val, Z_val = X[permutation[:n_val]], Z[permutation[:n_val]]
        X, Z = X[permutation[n_val:]], Z[permutation[n_val:]]
    if (X_val is None) != (Z_val is None):
        raise ValueError("pass both X_val and Z_val, or neither")
    if X_val is not None:
        _check_targets(X_val, Z_val, model, field="Z_val")
    return X, Z, X_val, Z_val


def train_sensor_encoder(
    model: SensorEncoder,
    X: np.ndarray,
    Z: np.ndarray,
    config: SensorTrainConfig | None = None,
    progress: bool = True,
    X_val: np.ndarray | None = None,
    Z_val: np.ndarray | None = None,
) -> dict:
    """Stage 2 (central), in place on `model`: InfoNCE between f(X) and the text targets Z.

    Rows with identical Z (the same interpretation) are positives of each other. With a validation set
    (X_val/Z_val, or `config.val_fraction` of X at random) the weights of the best validation epoch are kept
    and training stops after `config.patience` epochs without improvement. A random hold-out shares users and
    segments with training: pass a segment- or user-split X_val for an honest early stop.
    """
    config = config or SensorTrainConfig()
    _check_targets(X, Z, model)
    X, Z, X_val, Z_val = _validation_split(model, X, Z, X_val, Z_val, config)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    data = _Stage2Inputs.build(model, X, Z, config)
    validation = _Stage2Windows.build(model, X_val, Z_val) if X_val is not None else None

    history: dict = {"loss": [], "val_loss": [], "best_epoch": None}
    best_loss, best_state, stale = math.inf, None, 0
    started = time.perf_counter()
    bar = _progress(range(config.epochs), progress, desc="stage 2: sensor encoder", unit="epoch")
    for epoch in bar:
        history["loss"].append(_run_sensor_epoch(model, data, config, generator))
        postfix = {"loss": f"{history['loss'][-1]:.3f}"}
        if validation is not None:
            val_loss = validation.mean_loss(model, data.criterion, config.batch_size)
            history["val_loss"].append(val_loss)
            postfix["val"] = f"{val_loss:.3f}"
            if val_loss < best_loss:
                best_loss, best_state, stale = val_loss, copy.deepcopy(model.state_dict()), 0
                history["best_epoch"] = epoch
            else:
                stale += 1
        if progress:
            bar.set_postfix(postfix)
        if validation is not None and stale >= config.patience:
            break
    seconds = time.perf_counter() - started
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    epochs_run = len(history["loss"])
    groups = data.windows.groups
    return history | {
        "epochs_run": epochs_run,
        "seconds": seconds,
        "windows_per_second": epochs_run * len(X) / max(seconds, 1e-9),
        "num_examples": len(X),
        "distinct_targets": int(groups.max()) + 1 if len(groups) else 0,
        "config": asdict(config),
    }


def train_sensor_epochs(
    model: SensorEncoder,
    X: np.ndarray,
    Z: np.ndarray,
    config: SensorTrainConfig,
    seed: int | None = None,
    proximal_mu: float = 0.0,
) -> dict:
    """A federated client's local update: `config.epochs` passes of the stage-2 loss, in place on `model`.

    The same loss as central stage 2 (`train_sensor_encoder`). A fresh AdamW per call (clients keep no
    optimizer state between rounds). `proximal_mu` > 0 adds FedProx's mu/2 ||w - w_global||^2 with
    w_global = the weights received. The global RNG state is left untouched.
    Returns loss (mean of the last epoch), losses per epoch, num_examples, seconds.
    """
    _check_targets(X, Z, model)
    if proximal_mu < 0:
        raise ValueError(f"proximal_mu must be >= 0, got {proximal_mu}")
    seed = config.seed if seed is None else int(seed)
    data = _Stage2Inputs.build(model, X, Z, config)
    anchor = [p.detach().clone() for p in model.parameters()] if proximal_mu > 0 else None
    losses = []
    started = time.perf_counter()
    with torch.random.fork_rng(devices=[]):  # dropout draws from the global RNG; keep the caller's stream
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        for _ in range(config.epochs):
            losses.append(_run_sensor_epoch(model, data, config, generator, anchor, proximal_mu))
    model.eval()
    return {
        "loss": losses[-1],
        "losses": losses,
        "num_examples": len(X),
        "epochs": config.epochs,
        "seconds": time.perf_counter() - started,
    }


def average_state_dicts(
    states: Iterable[Mapping[str, Tensor]], weights: Sequence[float]
) -> dict[str, Tensor]:
    """The weighted mean of models' weights, key by key: FedAvg's aggregate (weights: window counts).

    `states` is consumed one at a time into a running sum, so a generator that trains each model on demand
    holds one state besides the sum, not all of them. Every state must hold the same floating-point keys
    and shapes. (The federation itself aggregates with Flower's FedAvg.)
    """
    weights = [float(w) for w in weights]
    if not weights or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"average_state_dicts: weights must be >= 0 with a positive sum, got {weights}")
    total = sum(weights)
    averaged: dict[str, Tensor] = {}
    count = 0
    for count, state in enumerate(states, start=1):
        if count > len(weights):
            raise ValueError(f"average_state_dicts: more states than the {len(weights)} weights")
        if count == 1:
            for key, value in state.items():
                if not value.is_floating_point():
                    raise ValueError(f"average_state_dicts: '{key}' is {value.dtype}, not floating point")
        elif list(state) != list(averaged):
            raise ValueError(f"average_state_dicts: state {count - 1} has other keys than state 0")
        share = weights[count - 1] / total
        for key, value in state.items():
            term = value.detach() * share
            # The first term is copied, not summed onto zero: the same result as sum() over all states.
            averaged[key] = term if count == 1 else averaged[key] + term
    if count != len(weights):
        raise ValueError(f"average_state_dicts: {count} states for {len(weights)} weights")
    return averaged
