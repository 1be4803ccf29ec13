"""Loss modules of the two LanHAR training stages. Each returns a dict whose "loss" entry is minimised.

- `InfoNCELoss`: symmetric CLIP loss (L_align of section 3.4.2, and the stage-2 sensor/text loss of 3.5.2),
  with multi-positive soft targets: rule-based interpretations repeat verbatim, and several windows of one
  label share a label text, so rows with identical targets must not be pushed apart.
- `CategoryRankingLoss`: -mean log sigmoid(s(i, j) - s(i, k)) for j in i's group and k outside it (L_Ca1..3).
- `ReconstructionLoss`: a small Transformer decoder rebuilding the tokens of a text from its embedding (L_re).
- `TextAlignmentLoss`: L = align + alpha (ca1 + ca2 + ca3) + beta re for stage 1.

Means instead of the paper's sums (ranking losses) keep the scale independent of the batch size.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

IGNORE_INDEX = -100


def same_group_mask(groups: Tensor) -> Tensor:
    """[B, B] bool: True where rows i and j belong to the same group (diagonal included)."""
    if groups.dim() != 1:
        raise ValueError(f"groups must be a 1-D tensor of ids, got shape {list(groups.shape)}")
    return groups.unsqueeze(0) == groups.unsqueeze(1)


def identical_rows_mask(targets: Tensor, tolerance: float = 1e-6) -> Tensor:
    """[B, B] bool: True where two target rows point the same way (cosine >= 1 - tolerance).

    `TextEncoder.encode` gives bit-identical rows to identical texts; the tolerance only absorbs rounding.
    """
    unit = F.normalize(targets.detach().float(), dim=-1)
    return unit @ unit.T >= 1.0 - tolerance


class InfoNCELoss(nn.Module):
    """Symmetric InfoNCE over B matching pairs (a_i, b_i) with cosine similarity / temperature.

    `same[i, j]` marks b_j as a positive for a_i as well (and a_i for b_j); each row's target distribution is
    uniform over its positives. Without `same`, positives are the rows whose target b is identical.
    With all-False off-diagonal `same` this is exactly CLIP's loss (mean of the two directions).
    """

    def __init__(self, temperature: float = 0.07) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)

    def forward(self, a: Tensor, b: Tensor, same: Tensor | None = None) -> dict[str, Tensor]:
        if a.dim() != 2 or a.shape != b.shape:
            raise ValueError(
                f"expected two [B, D] tensors of the same shape, got {list(a.shape)} and {list(b.shape)}"
            )
        batch = a.shape[0]
        if same is None:
            same = identical_rows_mask(b)
        if same.shape != (batch, batch) or same.dtype != torch.bool:
            raise ValueError(
                f"same must be a bool tensor [{batch}, {batch}], got {same.dtype} {list(same.shape)}"
            )
        if not bool(same.diagonal().all()):
            raise ValueError("same must be True on its diagonal: every pair (a_i, b_i) is a positive")
        logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / self.temperature
        positives = same.to(logits.dtype)
        targets_a = positives / positives.sum(dim=1, keepdim=True)
        targets_b = positives.T / positives.T.sum(dim=1, keepdim=True)
        a_to_b = -(targets_a * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
        b_to_a = -(targets_b * F.log_softmax(logits.T, dim=1)).sum(dim=1).mean()
        return {"loss": (a_to_b + b_to_a) / 2, "a_to_b": a_to_b, "b_to_a": b_to_a}


class CategoryRankingLoss(nn.Module):
    """-mean log sigmoid(s(i, j) - s(i, k)) over all triplets with j != i in i's group and k outside it.

    Triplets are enumerated as a [B, B, B] tensor (vectorised; 32 rows -> 32k entries). No valid triplet
    (one group only, or only singletons) -> loss 0.
    """

    def forward(self, embeddings: Tensor, groups: Tensor) -> dict:
        if embeddings.dim() != 2:
            raise ValueError(f"embeddings must be [B, D], got {list(embeddings.shape)}")
        if groups.shape != (embeddings.shape[0],):
            raise ValueError(f"groups must be [{embeddings.shape[0]}], got {list(groups.shape)}")
        unit = F.normalize(embeddings, dim=-1)
        similarity = unit @ unit.T
        same = same_group_mask(groups.to(embeddings.device))
        eye = torch.eye(len(groups), dtype=torch.bool, device=embeddings.device)
        positive = same & ~eye  # [i, j]
        negative = ~same  # [i, k]
        valid = positive.unsqueeze(2) & negative.unsqueeze(1)  # [i, j, k]
        count = int(valid.sum())
        if count == 0:
            zero = embeddings.sum() * 0.0  # keeps the graph connected for callers that always backprop
            return {"loss": zero, "triplets": torch.tensor(0)}
        margins = (similarity.unsqueeze(2) - similarity.unsqueeze(1))[valid]  # s(i, j) - s(i, k)
        return {"loss": -F.logsigmoid(margins).mean(), "triplets": torch.tensor(margins.numel())}


class ReconstructionLoss(nn.Module):
    """Token cross-entropy of a small Transformer decoder that rebuilds a text from its sentence embedding.

    The embedding is projected to `memory_tokens` memory vectors the decoder cross-attends to; the decoder
    sees the true previous tokens (teacher forcing) under a causal mask and predicts the next one; padding is
    ignored. The output projection is tied to the decoder's own token embedding table. Token ids must be in
    [0, vocab_size): training maps the text encoder's ids to a compact vocabulary first (method/train.py).
    """

    def __init__(
        self,
        vocab_size: int,
        dim: int,
        num_layers: int = 2,
        num_heads: int = 4,
        max_length: int = 64,
        hidden_dim: int = 256,
        memory_tokens: int = 4,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if vocab_size < 2 or dim < 1 or max_length < 2 or memory_tokens < 1:
            raise ValueError(
                f"invalid ReconstructionLoss sizes: vocab_size={vocab_size}, dim={dim}, "
                f"max_length={max_length}, memory_tokens={memory_tokens}"
            )
        if hidden_dim % num_heads != 0:
            raise ValueError(f"hidden_dim ({hidden_dim}) must be divisible by num_heads ({num_heads})")
        self.vocab_size = vocab_size
        self.dim = dim
        self.max_length = max_length
        self.hidden_dim = hidden_dim
        self.memory_tokens = memory_tokens
        self.memory_projection = nn.Linear(dim, memory_tokens * hidden_dim)
        self.memory_norm = nn.LayerNorm(hidden_dim)
        self.token_embedding = nn.Embedding(vocab_size, hidden_dim)
        self.position_embedding = nn.Embedding(max_length, hidden_dim)
        layer = nn.TransformerDecoderLayer(
            hidden_dim,
            num_heads,
            dim_feedforward=4 * hidden_dim,
            dropout=dropout,
            batch_first=True,
            norm_first=True,
        )
        self.decoder = nn.TransformerDecoder(layer, num_layers=num_layers, norm=nn.LayerNorm(hidden_dim))
        # Small embeddings (GPT-2 style): with the tied output projection the untrained decoder then predicts
        # a near-uniform distribution (loss ~ log vocab_size) instead of confident nonsense.
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.position_embedding.weight, std=0.02)

    def _memory(self, embeddings: Tensor) -> Tensor:
        memory = self.memory_projection(embeddings).view(len(embeddings), self.memory_tokens, self.hidden_dim)
        return self.memory_norm(memory)

    def logits(self, embeddings: Tensor, input_ids: Tensor) -> Tensor:
        """Next-token logits [B, L, vocab_size] given the embedding and the tokens so far."""
        length = input_ids.shape[1]
        positions = torch.arange(length, device=input_ids.device)
        tokens = self.token_embedding(input_ids) + self.position_embedding(positions)
        causal = nn.Transformer.generate_square_subsequent_mask(length, device=input_ids.device)
        hidden = self.decoder(tokens, self._memory(embeddings), tgt_mask=causal, tgt_is_causal=True)
        return hidden @ self.token_embedding.weight.T

    def forward(self, embeddings: Tensor, token_ids: Tensor, attention_mask: Tensor) -> dict[str, Tensor]:
        """embeddings [B, dim]; token_ids, attention_mask [B, L] (first token = start token, e.g. [CLS])."""
        if embeddings.dim() != 2 or embeddings.shape[1] != self.dim:
            raise ValueError(f"embeddings must be [B, {self.dim}], got {list(embeddings.shape)}")
        if (
            token_ids.dim() != 2
            or token_ids.shape != attention_mask.shape
            or token_ids.shape[0] != len(embeddings)
        ):
            raise ValueError(
                f"token_ids and attention_mask must be [B, L] with B={len(embeddings)}, got "
                f"{list(token_ids.shape)} and {list(attention_mask.shape)}"
            )
        if token_ids.shape[1] > self.max_length:
            raise ValueError(
                f"texts have {token_ids.shape[1]} tokens, the decoder takes at most {self.max_length}"
            )
        if token_ids.numel() and (int(token_ids.min()) < 0 or int(token_ids.max()) >= self.vocab_size):
            raise ValueError(
                f"token ids must be in [0, {self.vocab_size}); map them to the decoder vocabulary"
            )
        inputs = token_ids[:, :-1]
        targets = token_ids[:, 1:].masked_fill(attention_mask[:, 1:] == 0, IGNORE_INDEX)
        if inputs.shape[1] == 0 or bool((targets == IGNORE_INDEX).all()):
            zero = embeddings.sum() * 0.0
            return {"loss": zero, "tokens": torch.tensor(0)}
        logits = self.logits(embeddings, inputs)
        loss = F.cross_entropy(
            logits.reshape(-1, self.vocab_size), targets.reshape(-1), ignore_index=IGNORE_INDEX
        )
        return {"loss": loss, "tokens": (targets != IGNORE_INDEX).sum()}


class TextAlignmentLoss(nn.Module):
    """Stage-1 objective L = align + alpha (ca1 + ca2 + ca3) + beta re (LanHAR section 3.4).

    A batch holds S distinct sensor interpretations (Z) and M distinct label descriptions (H), each with a
    label id and a category id, plus `pairs` [P, 2] of matching (sensor row, description row); without
    `pairs`, row i of Z matches row i of H. Texts are embedded once even when several pairs use them: repeated
    rows add no signal (their gradients equal those of soft multi-positive targets) but cost a forward pass.
    - align: InfoNCE over the P pairs; pairs of the same label are positives of each other.
    - ca1: ranking on H by category; ca2: ranking on Z by category; ca3: ranking on H by label (several
      descriptions of one label closer to each other than to other labels' descriptions).
    - re: reconstruction of the sensor texts from Z plus of the descriptions from H (paper: sum of both CEs);
      0 when no decoder is given or beta == 0.
    """

    def __init__(
        self,
        alpha: float = 0.5,
        beta: float = 0.1,
        temperature: float = 0.07,
        reconstruction: ReconstructionLoss | None = None,
    ) -> None:
        super().__init__()
        if alpha < 0 or beta < 0:
            raise ValueError(f"alpha and beta must be >= 0, got alpha={alpha}, beta={beta}")
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.align = InfoNCELoss(temperature)
        self.ranking = CategoryRankingLoss()
        self.reconstruction = reconstruction

    def forward(
        self,
        sensor_embeddings: Tensor,
        sensor_labels: Tensor,
        sensor_categories: Tensor,
        description_embeddings: Tensor,
        description_labels: Tensor,
        description_categories: Tensor,
        pairs: Tensor | None = None,
        sensor_tokens: tuple[Tensor, Tensor] | None = None,
        description_tokens: tuple[Tensor, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """Embeddings [S, D] / [M, D]; labels and categories are int ids [S] / [M]; pairs [P, 2]."""
        if sensor_embeddings.dim() != 2 or description_embeddings.dim() != 2:
            raise ValueError("sensor_embeddings and description_embeddings must be [rows, dim] tensors")
        if sensor_embeddings.shape[1] != description_embeddings.shape[1]:
            raise ValueError(
                f"embedding dims differ: sensor {sensor_embeddings.shape[1]}, "
                f"description {description_embeddings.shape[1]}"
            )
        n_sensor, n_description = len(sensor_embeddings), len(description_embeddings)
        for name, ids, rows in (
            ("sensor_labels", sensor_labels, n_sensor),
            ("sensor_categories", sensor_categories, n_sensor),
            ("description_labels", description_labels, n_description),
            ("description_categories", description_categories, n_description),
        ):
            if ids.shape != (rows,):
                raise ValueError(f"{name} must be [{rows}], got {list(ids.shape)}")
        if pairs is None:
            if n_sensor != n_description:
                raise ValueError(f"without pairs, need as many sensor rows ({n_sensor}) as descriptions")
            pairs = torch.arange(n_sensor, device=sensor_embeddings.device).unsqueeze(1).repeat(1, 2)
        if pairs.dim() != 2 or pairs.shape[1] != 2:
            raise ValueError(f"pairs must be [P, 2] (sensor row, description row), got {list(pairs.shape)}")
        pair_labels = sensor_labels[pairs[:, 0]]
        if not torch.equal(pair_labels, description_labels[pairs[:, 1]]):
            raise ValueError("every pair must join a sensor text and a description of the same label")

        align = self.align(
            description_embeddings[pairs[:, 1]], sensor_embeddings[pairs[:, 0]], same_group_mask(pair_labels)
        )["loss"]
        ca1 = self.ranking(description_embeddings, description_categories)["loss"]
        ca2 = self.ranking(sensor_embeddings, sensor_categories)["loss"]
        ca3 = self.ranking(description_embeddings, description_labels)["loss"]
        re = sensor_embeddings.new_zeros(())
        if self.reconstruction is not None and self.beta > 0:
            if sensor_tokens is None or description_tokens is None:
                raise ValueError(
                    "reconstruction needs sensor_tokens and description_tokens as (ids, attention_mask)"
                )
            decoder = self.reconstruction
            re = (
                decoder(F.normalize(sensor_embeddings, dim=-1), *sensor_tokens)["loss"]
                + decoder(F.normalize(description_embeddings, dim=-1), *description_tokens)["loss"]
            )
        loss = align + self.alpha * (ca1 + ca2 + ca3) + self.beta * re
        return {"loss": loss, "align": align, "ca1": ca1, "ca2": ca2, "ca3": ca3, "re": re}
