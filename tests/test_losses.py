"""Loss modules against closed-form values on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch

from common.models.losses import (
    CategoryRankingLoss,
    InfoNCELoss,
    ReconstructionLoss,
    TextAlignmentLoss,
    identical_rows_mask,
    same_group_mask,
)

torch.set_num_threads(1)


# ------------------------------------------------------------------------------------------------ InfoNCE


def test_infonce_of_aligned_orthogonal_pairs_matches_the_closed_form() -> None:
    batch, temperature = 4, 0.5
    identity = torch.eye(batch)
    result = InfoNCELoss(temperature)(identity, identity.clone())
    # Each row: logit 1/T on the match, 0 on the B-1 others -> -log(e^{1/T} / (e^{1/T} + B - 1)).
    expected = math.log(1 + (batch - 1) * math.exp(-1 / temperature))
    assert result["loss"].item() == pytest.approx(expected, rel=1e-6)
    assert result["a_to_b"].item() == pytest.approx(result["b_to_a"].item())


def test_infonce_is_scale_invariant_and_symmetric() -> None:
    a, b = torch.randn(6, 5, generator=torch.Generator().manual_seed(0)), torch.randn(6, 5)
    loss = InfoNCELoss(0.1)
    same = torch.eye(6, dtype=torch.bool)
    assert loss(3 * a, b, same)["loss"].item() == pytest.approx(loss(a, b, same)["loss"].item(), rel=1e-5)
    assert loss(a, b, same)["loss"].item() == pytest.approx(loss(b, a, same)["loss"].item(), rel=1e-5)


def test_infonce_multi_positive_matches_the_closed_form() -> None:
    # Rows 0 and 1 share an identical target; each puts half of its target mass on both.
    e1, e2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    a = torch.stack([e1, e1, e2])
    b = torch.stack([e1, e1, e2])
    result = InfoNCELoss(1.0)(a, b)  # `same` computed from the identical targets
    e = math.e
    row_shared = -0.5 * 2 * math.log(e / (2 * e + 1))  # logits [1, 1, 0], targets [1/2, 1/2, 0]
    row_single = -math.log(e / (e + 2))  # logits [0, 0, 1], target [0, 0, 1]
    assert result["loss"].item() == pytest.approx((2 * row_shared + row_single) / 3, rel=1e-6)
    explicit = InfoNCELoss(1.0)(a, b, same_group_mask(torch.tensor([7, 7, 3])))
    assert explicit["loss"].item() == pytest.approx(result["loss"].item(), rel=1e-6)


def test_rows_of_the_same_label_pull_together_instead_of_apart() -> None:
    # Rows 0 and 1 carry different texts of the same label (stage 1). Single-positive InfoNCE moves Z_0 away
    # from H_1 (a description of its own label); with `same` marking them positives, Z_0 moves towards it.
    e = torch.eye(3)
    H = e.clone()
    same_label = same_group_mask(torch.tensor([0, 0, 1]))
    moves = []
    for same in (torch.eye(3, dtype=torch.bool), same_label):
        Z = e.clone().requires_grad_(True)
        (gradient,) = torch.autograd.grad(InfoNCELoss(0.5)(H, Z, same)["loss"], Z)
        moves.append(float(-gradient[0] @ H[1]))  # descent direction of Z_0 projected on H_1
    single, multi = moves
    assert single < 0 < multi


def test_exact_duplicate_targets_give_the_same_gradients_as_single_positives() -> None:
    # When targets are bit-identical (repeated rule texts), soft targets change the loss floor but not the
    # gradient w.r.t. the other side: a useful sanity check of the soft-target algebra.
    b = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    a = torch.randn(3, 3, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    (single,) = torch.autograd.grad(InfoNCELoss(0.1)(a, b, torch.eye(3, dtype=torch.bool))["loss"], a)
    (multi,) = torch.autograd.grad(InfoNCELoss(0.1)(a, b)["loss"], a)
    torch.testing.assert_close(single, multi)


def test_infonce_rejects_bad_inputs() -> None:
    loss = InfoNCELoss(0.07)
    with pytest.raises(ValueError, match="same shape"):
        loss(torch.zeros(3, 4), torch.zeros(3, 5))
    with pytest.raises(ValueError, match="diagonal"):
        loss(torch.randn(3, 4), torch.randn(3, 4), torch.zeros(3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"bool tensor \[3, 3\]"):
        loss(torch.randn(3, 4), torch.randn(3, 4), torch.eye(2, dtype=torch.bool))
    with pytest.raises(ValueError, match="temperature"):
        InfoNCELoss(0.0)


def test_identical_rows_mask_finds_duplicates_only() -> None:
    targets = torch.tensor([[1.0, 2.0], [1.0, 2.0], [2.0, 1.0]])
    expected = [[True, True, False], [True, True, False], [False, False, True]]
    assert identical_rows_mask(targets).tolist() == expected


# ---------------------------------------------------------------------------------------- ranking loss


def test_ranking_loss_is_log2_when_similarities_are_equal() -> None:
    embeddings = torch.ones(4, 3)
    result = CategoryRankingLoss()(embeddings, torch.tensor([0, 0, 1, 1]))
    assert result["loss"].item() == pytest.approx(math.log(2), rel=1e-6)
    assert int(result["triplets"]) == 4 * 1 * 2  # each anchor: 1 positive x 2 negatives


def test_ranking_loss_closed_form_on_orthogonal_groups() -> None:
    e1, e2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    # Anchors 0 and 1: s(positive) = 1, s(negative) = 0; anchor 2 has no positive.
    embeddings = torch.stack([e1, e1, e2])
    result = CategoryRankingLoss()(embeddings, torch.tensor([0, 0, 1]))
    assert result["loss"].item() == pytest.approx(math.log(1 + math.exp(-1)), rel=1e-6)
    assert int(result["triplets"]) == 2


def test_ranking_loss_without_triplets_is_zero_and_still_backpropagates() -> None:
    embeddings = torch.randn(3, 4, requires_grad=True)
    for groups in (torch.tensor([0, 0, 0]), torch.tensor([0, 1, 2])):
        result = CategoryRankingLoss()(embeddings, groups)
        assert result["loss"].item() == 0.0 and int(result["triplets"]) == 0
        result["loss"].backward()


# ---------------------------------------------------------------------------------------- reconstruction


def make_decoder(vocab: int = 11) -> ReconstructionLoss:
    torch.manual_seed(0)
    return ReconstructionLoss(
        vocab_size=vocab, dim=8, num_layers=1, num_heads=2, max_length=10, hidden_dim=16, dropout=0.0
    ).eval()


def test_reconstruction_ignores_padding() -> None:
    decoder = make_decoder()
    embeddings = torch.randn(2, 8)
    ids = torch.tensor([[1, 5, 6, 2], [1, 7, 2, 0]])
    mask = (ids != 0).long()
    padded_ids = torch.cat([ids, torch.zeros(2, 3, dtype=torch.long)], dim=1)
    padded_mask = torch.cat([mask, torch.zeros(2, 3, dtype=torch.long)], dim=1)
    short = decoder(embeddings, ids, mask)
    long = decoder(embeddings, padded_ids, padded_mask)
    assert short["loss"].item() == pytest.approx(long["loss"].item(), rel=1e-5)
    assert int(short["tokens"]) == 3 + 2
    assert short["loss"].item() == pytest.approx(math.log(11), abs=1.5)  # untrained: about uniform


def test_reconstruction_is_causal() -> None:
    decoder = make_decoder()
    embeddings = torch.randn(1, 8)
    ids = torch.tensor([[1, 5, 6, 7, 8]])
    changed = ids.clone()
    changed[0, 4] = 3
    with torch.no_grad():
        before, after = decoder.logits(embeddings, ids), decoder.logits(embeddings, changed)
    torch.testing.assert_close(before[:, :4], after[:, :4])
    assert not torch.allclose(before[:, 4], after[:, 4])


def test_reconstruction_learns_to_rebuild_texts_from_their_embeddings() -> None:
    decoder = make_decoder().train()
    embeddings = torch.tensor([[1.0] + [0.0] * 7, [0.0] * 7 + [1.0]])
    ids = torch.tensor([[1, 3, 4, 5, 2], [1, 6, 7, 8, 2]])
    mask = torch.ones_like(ids)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=1e-2)
    first = decoder(embeddings, ids, mask)["loss"].item()
    for _ in range(60):
        loss = decoder(embeddings, ids, mask)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.2 * first


def test_reconstruction_rejects_bad_inputs() -> None:
    decoder = make_decoder()
    with pytest.raises(ValueError, match="decoder vocabulary"):
        decoder(torch.randn(1, 8), torch.tensor([[1, 11]]), torch.ones(1, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"embeddings must be \[B, 8\]"):
        decoder(torch.randn(1, 9), torch.tensor([[1, 2]]), torch.ones(1, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="at most 10"):
        decoder(torch.randn(1, 8), torch.ones(1, 12, dtype=torch.long), torch.ones(1, 12, dtype=torch.long))


# ---------------------------------------------------------------------------------------- combined loss


def test_text_alignment_loss_combines_its_terms() -> None:
    generator = torch.Generator().manual_seed(0)
    Z, H = torch.randn(6, 8, generator=generator), torch.randn(6, 8, generator=generator)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    categories = torch.tensor([0, 0, 0, 0, 1, 1])
    tokens = (torch.randint(1, 11, (6, 5), generator=generator), torch.ones(6, 5, dtype=torch.long))
    combined = TextAlignmentLoss(alpha=0.3, beta=0.2, temperature=0.1, reconstruction=make_decoder())
    terms = combined(
        Z, labels, categories, H, labels, categories, sensor_tokens=tokens, description_tokens=tokens
    )
    assert set(terms) == {"loss", "align", "ca1", "ca2", "ca3", "re"}
    expected = terms["align"] + 0.3 * (terms["ca1"] + terms["ca2"] + terms["ca3"]) + 0.2 * terms["re"]
    assert terms["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert terms["re"].item() > 0
    assert terms["ca1"].item() == pytest.approx(CategoryRankingLoss()(H, categories)["loss"].item(), rel=1e-6)
    assert terms["ca2"].item() == pytest.approx(CategoryRankingLoss()(Z, categories)["loss"].item(), rel=1e-6)
    assert terms["ca3"].item() == pytest.approx(CategoryRankingLoss()(H, labels)["loss"].item(), rel=1e-6)
    align_only = TextAlignmentLoss(alpha=0.0, beta=0.0, temperature=0.1)(
        Z, labels, categories, H, labels, categories
    )
    reference = InfoNCELoss(0.1)(H, Z, same_group_mask(labels))["loss"]
    assert align_only["loss"].item() == pytest.approx(reference.item(), rel=1e-6)
    assert align_only["re"].item() == 0.0


def test_text_alignment_loss_with_explicit_pairs() -> None:
    # Three distinct sensor texts, two descriptions; pairs reuse description rows.
    generator = torch.Generator().manual_seed(1)
    Z, H = torch.randn(3, 8, generator=generator), torch.randn(2, 8, generator=generator)
    sensor_labels, description_labels = torch.tensor([0, 0, 1]), torch.tensor([0, 1])
    pairs = torch.tensor([[0, 0], [1, 0], [2, 1]])
    loss = TextAlignmentLoss(alpha=0.0, beta=0.0, temperature=0.2)
    terms = loss(Z, sensor_labels, sensor_labels, H, description_labels, description_labels, pairs=pairs)
    reference = InfoNCELoss(0.2)(H[[0, 0, 1]], Z, same_group_mask(sensor_labels))["loss"]
    assert terms["align"].item() == pytest.approx(reference.item(), rel=1e-6)
    mismatched = torch.tensor([[0, 1]])  # a walking text with a description of another label
    with pytest.raises(ValueError, match="same label"):
        loss(Z, sensor_labels, sensor_labels, H, description_labels, description_labels, pairs=mismatched)
    with pytest.raises(ValueError, match="without pairs"):
        loss(Z, sensor_labels, sensor_labels, H, description_labels, description_labels)


def test_text_alignment_loss_needs_tokens_for_reconstruction() -> None:
    combined = TextAlignmentLoss(beta=0.1, reconstruction=make_decoder())
    ids = torch.tensor([0, 1])
    with pytest.raises(ValueError, match="sensor_tokens and description_tokens"):
        combined(torch.randn(2, 8), ids, ids, torch.randn(2, 8), ids, ids)
