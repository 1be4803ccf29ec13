"""Loss modules against closed-form values on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from common.models.losses import (
    CategoryRankingLoss,
    InfoNCELoss,
    InformationMaximization,
    LabelPosteriorDistillation,
    ReconstructionLoss,
    SensorAlignmentLoss,
    SourceLabelCrossEntropy,
    TargetBankInfoNCELoss,
    TextAlignmentLoss,
    TextSimilarityInfoNCELoss,
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


# ----------------------------------------------------------------------- InfoNCE, text-similarity targets


def test_text_similarity_infonce_of_orthonormal_targets_matches_the_closed_form() -> None:
    """Orthonormal targets: each row's target puts e^(1/t) on itself and 1 on each other row; with a = b the
    logits are the same, so the loss is that distribution's entropy."""
    batch, temperature = 4, 0.5
    b = torch.eye(batch)
    own = math.exp(1 / temperature) / (math.exp(1 / temperature) + batch - 1)
    other = 1 / (math.exp(1 / temperature) + batch - 1)
    entropy = -(own * math.log(own) + (batch - 1) * other * math.log(other))
    loss = TextSimilarityInfoNCELoss(temperature)(b.clone(), b)
    assert loss["loss"].item() == pytest.approx(entropy, rel=1e-6)
    assert loss["a_to_b"].item() == pytest.approx(loss["b_to_a"].item(), rel=1e-6)


def test_text_similarity_infonce_is_minimal_where_the_sensor_embedding_is_its_target() -> None:
    """E = Z is a stationary point and the minimum: the gradient vanishes there, and any move away (also one
    towards a near-identical target of another row, which hard InfoNCE would ask for) costs loss."""
    generator = torch.Generator().manual_seed(0)
    prototype = torch.randn(2, 16, generator=generator)
    b = prototype[[0, 0, 0, 1, 1, 1]] + 0.1 * torch.randn(6, 16, generator=generator)  # two "activities"
    a = b.clone().requires_grad_(True)
    at_target = TextSimilarityInfoNCELoss(0.07)(a, b)["loss"]
    at_target.backward()
    assert a.grad.abs().max().item() < 1e-5
    for step in (0.05, 0.3, 1.0):
        moved = b + step * torch.randn(6, 16, generator=generator)
        assert TextSimilarityInfoNCELoss(0.07)(moved, b)["loss"].item() > at_target.item()
    swapped = b[[1, 0, 2, 3, 4, 5]]  # rows 0 and 1 point at each other's (near-identical) wording
    assert TextSimilarityInfoNCELoss(0.07)(swapped, b)["loss"].item() > at_target.item()


def test_text_similarity_targets_spare_near_identical_wordings_that_hard_infonce_pushes_apart() -> None:
    """Two rows whose targets are two wordings of one activity (cosine 0.98): at E = Z hard InfoNCE still
    asks each sensor embedding to move away from the other wording; the text-similarity loss does not."""
    b = F.normalize(torch.tensor([[1.0, 0.1, 0.0], [1.0, -0.1, 0.0], [0.0, 0.0, 1.0]]), dim=-1)
    hard_a = b.clone().requires_grad_(True)
    InfoNCELoss(0.07)(hard_a, b, torch.eye(3, dtype=torch.bool))["loss"].backward()
    soft_a = b.clone().requires_grad_(True)
    TextSimilarityInfoNCELoss(0.07)(soft_a, b)["loss"].backward()
    # Gradient descent moves a_0 along -grad: hard InfoNCE turns it away from b_1 (its second coordinate up).
    assert -hard_a.grad[0, 1].item() > 0.1
    assert soft_a.grad.abs().max().item() < 1e-5


def test_text_similarity_infonce_gives_identical_targets_identical_mass_and_rejects_bad_shapes() -> None:
    b = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    a = torch.tensor([[0.6, 0.8], [0.8, 0.6], [0.0, 1.0]])
    loss = TextSimilarityInfoNCELoss(1.0)(a, b)["a_to_b"]
    logits = F.normalize(a, dim=-1) @ b.T
    row = torch.tensor([math.e, math.e, 1.0]) / (2 * math.e + 1)  # the target of rows 0 and 1
    last = torch.tensor([1.0, 1.0, math.e]) / (2 + math.e)
    targets = torch.stack([row, row, last])
    expected = -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError, match="same shape"):
        TextSimilarityInfoNCELoss()(torch.randn(3, 4), torch.randn(3, 5))
    with pytest.raises(ValueError, match="temperature"):
        TextSimilarityInfoNCELoss(0.0)


def test_sensor_alignment_loss_with_text_similarity_targets_ignores_the_hard_mask() -> None:
    generator = torch.Generator().manual_seed(1)
    sensor = torch.randn(5, 8, generator=generator)
    text = torch.randn(3, 8, generator=generator)[[0, 0, 1, 1, 2]] + 0.1 * torch.randn(
        5, 8, generator=generator
    )
    soft = SensorAlignmentLoss(0.07, text_similarity_targets=True)
    expected = TextSimilarityInfoNCELoss(0.07)(sensor, text)["loss"].item()
    for same in (torch.eye(5, dtype=torch.bool), torch.ones(5, 5, dtype=torch.bool)):
        assert soft(sensor, text, same)["infonce"].item() == pytest.approx(expected, rel=1e-6)
    hard = SensorAlignmentLoss(0.07)(sensor, text, torch.eye(5, dtype=torch.bool))["loss"].item()
    assert hard != pytest.approx(expected, rel=1e-3)


# ------------------------------------------------------------------------------------- InfoNCE, target bank


def test_target_bank_infonce_equals_infonce_when_the_batch_holds_the_whole_bank() -> None:
    generator = torch.Generator().manual_seed(0)
    bank, a = torch.randn(5, 8, generator=generator), torch.randn(5, 8, generator=generator)
    index = torch.arange(5)
    same = torch.eye(5, dtype=torch.bool)
    loss = TargetBankInfoNCELoss(0.5)(a, bank[index], same, bank, index)
    reference = InfoNCELoss(0.5)(a, bank, same)
    for key in ("loss", "a_to_b", "b_to_a"):
        assert loss[key].item() == pytest.approx(reference[key].item(), rel=1e-6)


def test_target_bank_infonce_scores_each_row_against_every_target_of_the_bank() -> None:
    """A batch of 2 rows aligned with their targets, out of an orthonormal bank of 5: each row's sensor-to-
    text term is -log(e^(1/t) / (e^(1/t) + 4)), where in-batch InfoNCE would see only 1 negative."""
    temperature = 0.5
    bank = torch.eye(5)
    index = torch.tensor([1, 3])
    a = bank[index].clone()
    same = torch.eye(2, dtype=torch.bool)
    loss = TargetBankInfoNCELoss(temperature)(a, bank[index], same, bank, index)
    e = math.exp(1 / temperature)
    assert loss["a_to_b"].item() == pytest.approx(-math.log(e / (e + 4)), rel=1e-6)
    assert loss["b_to_a"].item() == pytest.approx(-math.log(e / (e + 1)), rel=1e-6)
    assert loss["loss"].item() == pytest.approx(
        (-math.log(e / (e + 4)) - math.log(e / (e + 1))) / 2, rel=1e-6
    )


def test_target_bank_infonce_rejects_bad_inputs() -> None:
    a, bank = torch.randn(2, 4), torch.randn(3, 4)
    same = torch.eye(2, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"bank must be \[G, 4\]"):
        TargetBankInfoNCELoss()(a, a, same, torch.randn(3, 5), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="index must be int64"):
        TargetBankInfoNCELoss()(a, a, same, bank, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"index must name rows of the bank \(0..2\)"):
        TargetBankInfoNCELoss()(a, a, same, bank, torch.tensor([0, 3]))


def test_sensor_alignment_loss_uses_the_target_bank_when_given_one() -> None:
    generator = torch.Generator().manual_seed(2)
    bank, sensor = torch.randn(6, 8, generator=generator), torch.randn(3, 8, generator=generator)
    index = torch.tensor([0, 2, 2])
    same = same_group_mask(index)
    loss = SensorAlignmentLoss(0.07)(sensor, bank[index], same, bank=bank, bank_index=index)
    expected = TargetBankInfoNCELoss(0.07)(sensor, bank[index], same, bank, index)["loss"]
    assert loss["infonce"].item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError, match="both bank and bank_index"):
        SensorAlignmentLoss(0.07)(sensor, bank[index], same, bank=bank)
    with pytest.raises(ValueError, match="two different InfoNCE terms"):
        SensorAlignmentLoss(0.07, text_similarity_targets=True)(
            sensor, bank[index], same, bank=bank, bank_index=index
        )


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


def test_ranking_loss_can_sample_triplets() -> None:
    embeddings = torch.randn(12, 5, generator=torch.Generator().manual_seed(0))
    groups = torch.arange(12) % 3
    full = CategoryRankingLoss()(embeddings, groups)
    sampled = CategoryRankingLoss(max_triplets=10)(embeddings, groups, torch.Generator().manual_seed(1))
    assert int(full["triplets"]) == 12 * 3 * 8 and int(sampled["triplets"]) == 10
    assert abs(sampled["loss"].item() - full["loss"].item()) < 0.5


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


# ------------------------------------------------------------------ stage 2: label-posterior distillation


def test_distillation_is_zero_when_sensor_and_text_agree_and_kl_otherwise() -> None:
    labels = torch.eye(3, 4)  # three orthonormal label embeddings in 4-D
    text = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0]])
    loss = LabelPosteriorDistillation(temperature=0.5)
    same = loss(text * 3.0, text, labels)  # only the direction counts (cosine)
    assert same["loss"].item() == pytest.approx(0.0, abs=1e-6) and same["agreement"].item() == 1.0
    # Closed form for one row: text on label 0, sensor on label 2; logits are cos / T = 2 or 0.
    sensor = torch.tensor([[0.0, 0.0, 1.0, 0.0]])
    p = torch.softmax(torch.tensor([2.0, 0.0, 0.0]), dim=0)
    q = torch.softmax(torch.tensor([0.0, 0.0, 2.0]), dim=0)
    expected = float((p * (p.log() - q.log())).sum())
    result = loss(sensor, text[:1], labels)
    assert result["loss"].item() == pytest.approx(expected, rel=1e-5)
    assert result["agreement"].item() == 0.0


def test_distillation_moves_only_the_sensor_embedding_towards_the_text_label() -> None:
    labels = torch.eye(3, 4)
    text = torch.tensor([[1.0, 0.2, 0.0, 0.0]], requires_grad=True)
    sensor = torch.tensor([[0.1, 0.0, 1.0, 0.0]], requires_grad=True)
    LabelPosteriorDistillation(0.1)(sensor, text, labels)["loss"].backward()
    assert text.grad is None or torch.count_nonzero(text.grad) == 0  # the text path is the teacher
    step = sensor - 0.01 * sensor.grad
    assert (step @ labels.T)[0, 0] > (sensor @ labels.T)[0, 0]  # closer to label 0
    assert (step @ labels.T)[0, 2] < (sensor @ labels.T)[0, 2]  # further from label 2


def test_a_known_label_replaces_the_text_teacher_with_its_one_hot() -> None:
    labels = torch.eye(3, 4)
    text = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])  # the text path says label 0 twice
    sensor = torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    loss = LabelPosteriorDistillation(temperature=0.5)
    result = loss(sensor, text, labels, known=torch.tensor([1, -1]))  # row 0 is known to be label 1
    q = torch.log_softmax(torch.tensor([0.0, 2.0, 0.0]), dim=0)
    p = torch.softmax(torch.tensor([2.0, 0.0, 0.0]), dim=0)
    cross_entropy = float(-q[1])  # one-hot teacher: KL = cross-entropy
    kl_text = float((p * (p.log() - q)).sum())
    assert result["loss"].item() == pytest.approx((cross_entropy + kl_text) / 2, rel=1e-5)
    assert result["agreement"].item() == 0.5
    with pytest.raises(ValueError, match="known must be"):
        loss(sensor, text, labels, known=torch.tensor([3, -1]))


def test_sensor_alignment_loss_adds_the_weighted_distillation() -> None:
    generator = torch.Generator().manual_seed(0)
    sensor, text = torch.randn(6, 8, generator=generator), torch.randn(6, 8, generator=generator)
    labels = torch.randn(3, 8, generator=generator)
    same = torch.eye(6, dtype=torch.bool)
    plain = SensorAlignmentLoss(0.07, distill_weight=0.0)(sensor, text, same, labels)
    assert plain["loss"].item() == pytest.approx(InfoNCELoss(0.07)(sensor, text, same)["loss"].item())
    assert plain["distill"].item() == 0.0
    weighted = SensorAlignmentLoss(0.07, distill_weight=2.0)(sensor, text, same, labels)
    kl = LabelPosteriorDistillation(0.07)(sensor, text, labels)["loss"].item()
    assert weighted["loss"].item() == pytest.approx(plain["loss"].item() + 2.0 * kl, rel=1e-5)
    assert SensorAlignmentLoss(0.07, 2.0)(sensor, text, same)["distill"].item() == 0.0  # no labels: off
    with pytest.raises(ValueError, match="distill_weight"):
        SensorAlignmentLoss(0.07, distill_weight=-1.0)
    with pytest.raises(ValueError, match=r"label_embeddings must be \[C, 8\]"):
        LabelPosteriorDistillation()(sensor, text, torch.randn(3, 5))


# ----------------------------------------------------------------- stage 2: the source windows' own labels


def test_source_label_cross_entropy_reads_only_the_labeled_rows() -> None:
    labels = torch.eye(3, 4)
    rows = [[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 5.0, 0.0]]
    sensor = torch.tensor(rows, requires_grad=True)
    loss = SourceLabelCrossEntropy(temperature=0.5)
    result = loss(sensor, labels, known=torch.tensor([1, 2, -1]))
    # Closed form: logits are cos / T = 2 on the sensor's own label, 0 elsewhere.
    q = torch.log_softmax(torch.tensor([2.0, 0.0, 0.0]), dim=0)
    expected = float(-(q[0] + q[1])) / 2  # row 0 right (its logit 2), row 1 wrong (label 2's logit 0)
    assert result["loss"].item() == pytest.approx(expected, rel=1e-5)
    assert result["accuracy"].item() == 0.5
    result["loss"].backward()
    assert torch.count_nonzero(sensor.grad[2]) == 0  # the unlabeled row is not taught
    assert torch.count_nonzero(sensor.grad[:2]) > 0
    nothing_known = loss(sensor, labels, known=torch.tensor([-1, -1, -1]))
    assert nothing_known["loss"].item() == 0.0 and nothing_known["loss"].requires_grad
    with pytest.raises(ValueError, match="known must be"):
        loss(sensor, labels, known=torch.tensor([3, -1, -1]))
    with pytest.raises(ValueError, match="known must be"):
        loss(sensor, labels, known=torch.tensor([0, -1]))


def test_sensor_alignment_loss_adds_the_weighted_source_label_term() -> None:
    generator = torch.Generator().manual_seed(0)
    sensor, text = torch.randn(6, 8, generator=generator), torch.randn(6, 8, generator=generator)
    labels = torch.randn(3, 8, generator=generator)
    same = torch.eye(6, dtype=torch.bool)
    known = torch.tensor([0, 1, 2, -1, -1, -1])
    plain = SensorAlignmentLoss(0.07)(sensor, text, same, labels, known)
    assert plain["source_label"].item() == 0.0
    weighted = SensorAlignmentLoss(0.07, source_label_weight=0.5)(sensor, text, same, labels, known)
    cross_entropy = SourceLabelCrossEntropy(0.07)(sensor, labels, known)["loss"].item()
    assert weighted["source_label"].item() == pytest.approx(cross_entropy, rel=1e-6)
    assert weighted["loss"].item() == pytest.approx(plain["loss"].item() + 0.5 * cross_entropy, rel=1e-5)
    assert weighted["distill"].item() == 0.0 and weighted["im"].item() == 0.0
    # Without known labels (a client's windows, a validation pass) there is nothing to read: 0.
    unlabeled = SensorAlignmentLoss(0.07, source_label_weight=0.5)(sensor, text, same, labels)
    assert unlabeled["source_label"].item() == 0.0
    with pytest.raises(ValueError, match="source_label_weight must be >= 0"):
        SensorAlignmentLoss(0.07, source_label_weight=-1.0)


def test_information_maximization_closed_forms() -> None:
    labels = torch.eye(3)
    loss = InformationMaximization(temperature=0.01)
    confident_and_spread = loss(torch.eye(3) * 5.0, labels)  # each row certain, every label used once
    assert confident_and_spread["entropy"].item() == pytest.approx(0.0, abs=1e-6)
    assert confident_and_spread["diversity"].item() == pytest.approx(math.log(3), rel=1e-6)
    assert confident_and_spread["loss"].item() == pytest.approx(-math.log(3), rel=1e-6)  # the minimum
    uniform = loss(torch.ones(4, 3), labels)  # equidistant from every label: no information
    assert uniform["loss"].item() == pytest.approx(0.0, abs=1e-6)
    collapsed = loss(torch.tensor([[1.0, 0.0, 0.0]] * 4), labels)  # certain, but one label for everything
    assert collapsed["loss"].item() == pytest.approx(0.0, abs=1e-6)
    # A general case against the definition, at a soft temperature.
    generator = torch.Generator().manual_seed(0)
    sensor, bank = torch.randn(5, 4, generator=generator), torch.randn(3, 4, generator=generator)
    p = torch.softmax(F.normalize(sensor, dim=-1) @ F.normalize(bank, dim=-1).T / 0.5, dim=-1)
    expected = -(p * p.log()).sum(-1).mean() + (p.mean(0) * p.mean(0).log()).sum()
    assert InformationMaximization(0.5)(sensor, bank)["loss"].item() == pytest.approx(
        expected.item(), rel=1e-5
    )


def test_information_maximization_reads_only_the_unlabeled_rows_and_leaves_labels_constant() -> None:
    generator = torch.Generator().manual_seed(1)
    sensor = torch.randn(6, 8, generator=generator, requires_grad=True)
    bank = torch.randn(3, 8, generator=generator, requires_grad=True)
    unlabeled = torch.tensor([True, False, True, True, False, False])
    loss = InformationMaximization(0.07)
    masked = loss(sensor, bank, unlabeled)
    assert masked["loss"].item() == pytest.approx(loss(sensor[unlabeled], bank)["loss"].item(), rel=1e-6)
    masked["loss"].backward()
    assert bank.grad is None  # the label embeddings are constants
    assert torch.all(sensor.grad[~unlabeled] == 0) and torch.any(sensor.grad[unlabeled] != 0)
    one_row = loss(sensor, bank, torch.tensor([True] + [False] * 5))  # no batch mean to spread
    assert one_row["loss"].item() == 0.0
    with pytest.raises(ValueError, match=r"rows must be a bool mask \[6\]"):
        loss(sensor, bank, torch.tensor([1, 0, 1, 1, 0, 0]))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        InformationMaximization(0.0)


def test_sensor_alignment_loss_adds_information_maximization_on_unknown_rows() -> None:
    generator = torch.Generator().manual_seed(2)
    sensor, text = torch.randn(6, 8, generator=generator), torch.randn(6, 8, generator=generator)
    labels = torch.randn(3, 8, generator=generator)
    same = torch.eye(6, dtype=torch.bool)
    known = torch.tensor([0, 2, -1, -1, -1, 1])  # rows 2-4: the unlabeled target windows
    plain = SensorAlignmentLoss(0.07)(sensor, text, same, labels, known)
    assert plain["im"].item() == 0.0
    weighted = SensorAlignmentLoss(0.07, im_weight=0.5)(sensor, text, same, labels, known)
    im = InformationMaximization(0.07)(sensor[2:5], labels)["loss"].item()
    assert weighted["im"].item() == pytest.approx(im, rel=1e-6)
    assert weighted["loss"].item() == pytest.approx(plain["loss"].item() + 0.5 * im, rel=1e-5)
    every_row = SensorAlignmentLoss(0.07, im_weight=0.5)(sensor, text, same, labels)  # known=None: all rows
    assert every_row["im"].item() == pytest.approx(
        InformationMaximization(0.07)(sensor, labels)["loss"].item()
    )
    assert SensorAlignmentLoss(0.07, im_weight=0.5)(sensor, text, same)["im"].item() == 0.0  # no labels: off
    with pytest.raises(ValueError, match="im_weight and source_label_weight must be >= 0"):
        SensorAlignmentLoss(0.07, im_weight=-1.0)
