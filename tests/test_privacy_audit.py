"""The leakage audit's attacks (simulations/privacy_audit.py): each succeeds where it must and fails where
nothing can be learned; and the `fedlanhar experiment privacy-audit` path at its smallest budget."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from client.device_client import window_summaries
from client.privacy import uploaded_summaries
from common.data.loading import load_dataset
from common.data.windows import split_by_user
from common.federation.partition import client_spec, load_client_data
from common.federation.run_config import FederationConfig
from simulations import privacy_audit as attacks

ACTIVITIES = ["walking", "upstairs", "downstairs", "sitting"]


@pytest.fixture(scope="module")
def uci_split(data_dir):
    """UCI-HAPT's four activities, split by user: the attacker's labeled users and the targets."""
    windows = load_dataset("uci", data_dir).select_activities(ACTIVITIES)
    return split_by_user(windows, 0.5, 0)


def test_activity_classifier_names_windows_of_a_device_it_was_trained_on(uci_split):
    source, targets = uci_split
    assert not set(source.user.tolist()) & set(targets.user.tolist())  # never trained on a target
    classifier = attacks.train_activity_classifier(window_summaries(source), source.labels())
    guesses = attacks.infer_activities(classifier, window_summaries(targets))
    scores = attacks.inference_scores(targets.labels(), guesses, ACTIVITIES)
    chance = attacks.chance_scores(targets.labels(), ACTIVITIES)
    assert scores["n"] == len(targets)
    assert scores["accuracy"] > 0.8 and scores["macro_f1"] > 0.75
    assert scores["accuracy"] > chance["accuracy"] + 0.4


def test_activity_classifier_is_at_chance_on_random_features():
    rng = np.random.default_rng(0)
    labels = [ACTIVITIES[i] for i in rng.integers(0, 4, 2000)]
    classifier = attacks.train_activity_classifier(rng.standard_normal((2000, 30)), labels)
    truth = [ACTIVITIES[i] for i in rng.integers(0, 4, 2000)]
    scores = attacks.inference_scores(
        truth, attacks.infer_activities(classifier, rng.standard_normal((2000, 30))), ACTIVITIES
    )
    chance = attacks.chance_scores(truth, ACTIVITIES)
    assert abs(scores["accuracy"] - 0.25) < 0.05 and abs(chance["accuracy"] - 0.25) < 0.05
    assert scores["macro_f1"] < 0.3


def test_activity_mix_from_good_guesses_beats_a_uniform_guess(uci_split):
    source, targets = uci_split
    classifier = attacks.train_activity_classifier(window_summaries(source), source.labels())
    truth, guesses = [], []
    for k, user in enumerate(np.unique(targets.user)):
        # UCI users follow one script (near-uniform mixes): keep two of the four activities per user, so that
        # the mixes differ and a uniform guess is far off.
        kept = [ACTIVITIES[k % 4], ACTIVITIES[(k + 1) % 4]]
        own = targets.subset(np.flatnonzero((targets.user == user) & np.isin(targets.labels(), kept)))
        truth.append(own.labels())
        guesses.append(attacks.infer_activities(classifier, window_summaries(own)))
    errors = attacks.mix_errors(truth, guesses, ACTIVITIES)
    assert errors["clients"] == len(np.unique(targets.user)) == len(errors["tvd_per_client"])
    assert errors["tvd_uniform"] > 0.4
    assert errors["tvd"] < 0.5 * errors["tvd_uniform"]


def test_activity_mix_of_random_guesses_is_no_better_than_uniform():
    rng = np.random.default_rng(1)
    # Each client did mostly one activity; the guesses know nothing of it.
    truth = [[ACTIVITIES[k]] * 40 + [ACTIVITIES[(k + 1) % 4]] * 10 for k in range(4)]
    guesses = [[ACTIVITIES[i] for i in rng.integers(0, 4, 50)] for _ in truth]
    errors = attacks.mix_errors(truth, guesses, ACTIVITIES)
    assert errors["tvd"] > 0.85 * errors["tvd_uniform"] > 0.4
    perfect = attacks.mix_errors(truth, truth, ACTIVITIES)
    assert perfect["tvd"] == 0.0


def test_histogram_and_total_variation():
    histogram = attacks.activity_histogram(["walking", "walking", "sitting", "running"], ACTIVITIES)
    np.testing.assert_allclose(histogram, [2 / 3, 0, 0, 1 / 3])  # "running" is not a label: not counted
    assert attacks.activity_histogram([], ACTIVITIES).sum() == 0
    assert attacks.total_variation([1, 0], [0, 1]) == 1.0
    assert attacks.total_variation([0.5, 0.5], [0.5, 0.5]) == 0.0


def _overfitted_encoder(members: np.ndarray, targets: np.ndarray) -> torch.nn.Module:
    """A tiny MLP trained to map 32 member inputs onto their random targets until it has memorised them."""
    torch.manual_seed(0)
    encoder = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8))
    optimiser = torch.optim.Adam(encoder.parameters(), lr=1e-2)
    x, z = torch.as_tensor(members, dtype=torch.float32), torch.as_tensor(targets, dtype=torch.float32)
    for _ in range(400):
        optimiser.zero_grad()
        loss = -torch.nn.functional.cosine_similarity(encoder(x), z).mean()
        loss.backward()
        optimiser.step()
    return encoder


def _embed(encoder: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return encoder(torch.as_tensor(x, dtype=torch.float32)).numpy()


def test_membership_separates_the_windows_an_overfitted_encoder_trained_on():
    rng = np.random.default_rng(2)
    members, nonmembers = rng.standard_normal((32, 16)), rng.standard_normal((32, 16))
    member_targets, nonmember_targets = rng.standard_normal((32, 8)), rng.standard_normal((32, 8))
    encoder = _overfitted_encoder(members, member_targets)
    auc = attacks.membership_auc(
        attacks.target_similarity(_embed(encoder, members), member_targets),
        attacks.target_similarity(_embed(encoder, nonmembers), nonmember_targets),
    )
    assert auc > 0.9


def test_membership_is_a_coin_when_members_and_nonmembers_look_alike():
    rng = np.random.default_rng(3)
    torch.manual_seed(3)
    encoder = torch.nn.Linear(16, 8)  # trained on nothing: members are like any other input
    labels = rng.standard_normal((4, 8))
    scores = [
        attacks.nearest_label_similarity(_embed(encoder, rng.standard_normal((1000, 16))), labels)
        for _ in "ab"
    ]
    assert abs(attacks.membership_auc(*scores) - 0.5) < 0.05
    with pytest.raises(ValueError, match="at least one member"):
        attacks.membership_auc(scores[0], np.zeros(0))


def test_similarities_are_cosines():
    embeddings = np.array([[3.0, 0.0], [0.0, 2.0]])
    np.testing.assert_allclose(
        attacks.target_similarity(embeddings, np.array([[1.0, 0.0], [1.0, 0.0]])), [1, 0]
    )
    labels = np.array([[1.0, 1.0], [0.0, -1.0]])
    np.testing.assert_allclose(attacks.nearest_label_similarity(embeddings, labels), [2**-0.5, 2**-0.5])


def test_window_truth_looks_windows_up_by_content(uci_split):
    source, _ = uci_split
    picked = source.subset(np.array([5, 0, 17]))
    assert attacks.window_truth(picked.X, source) == picked.labels()
    with pytest.raises(ValueError, match="1 of 1 windows"):
        attacks.window_truth(picked.X[:1] + 1.0, source)


def test_the_audit_rebuilds_exactly_what_a_client_uploads(data_dir):
    """uploaded_summaries is what client_app sends; with summary noise the rows are blurred, each time anew:
    the noise comes from OS entropy, so neither the audit nor the server can replay what a client sent."""
    config = FederationConfig(
        source="dsads_torso",
        clients_data="uci",
        activities=",".join(ACTIVITIES),
        new_activities="",
        device_types="native",
        data_dir=str(data_dir),
        clients_per_user=1,
        users_per_data_set=1,
    )
    data = load_client_data(client_spec(0, 2, config), config)
    clean = uploaded_summaries(data, config)
    assert list(clean) == ["features"]
    np.testing.assert_array_equal(clean["features"], window_summaries(data.train))
    noisy_config = dataclasses.replace(config, summary_noise=0.3)
    noisy = uploaded_summaries(data, noisy_config)["features"]
    assert not np.allclose(noisy, clean["features"])
    again = uploaded_summaries(data, noisy_config)["features"]
    assert not np.allclose(again, noisy)  # not replayable from the run config
    blur = noisy / clean["features"] - 1.0  # features x (1 + N(0, 0.3))
    finite = np.isfinite(blur) & (np.abs(clean["features"]) > 1e-6)
    assert np.std(blur[finite]) == pytest.approx(0.3, rel=0.15)


@pytest.mark.slow
def test_privacy_audit_command_at_the_smallest_budget(data_dir, tmp_path):
    from simulations.cli import main

    out = tmp_path / "audit"
    assert (
        main(
            [
                "experiment",
                "privacy-audit",
                "--budget",
                "small",
                "--data-dir",
                str(data_dir),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    results = json.loads((out / "results.json").read_text())
    rows = {row["setting"]: row for row in results["rows"]}
    assert list(rows) == ["none", "local interpretation"]
    none, local = rows["none"], rows["local interpretation"]
    assert none["per_window"]["classifier"]["n"] == none["per_window"]["chance"]["n"] > 0
    assert none["per_window_arrays_uploaded"] and not local["per_window_arrays_uploaded"]
    assert local["per_window"] == {"available": False, "reason": attacks_reason()}
    assert local["mix"]["text_path"]["clients"] == none["mix"]["classifier"]["clients"] == 4
    for row in (*rows.values(), results["reference"]):
        assert 0.0 <= row["membership"]["auc_target"] <= 1.0
        assert row["membership"]["members"] > 0 and row["membership"]["non_members"] > 0
    report = (out / "report.md").read_text()
    assert "| none |" in report and "| local interpretation |" in report
    assert (out / "privacy_audit.png").stat().st_size > 0


def attacks_reason() -> str:
    from simulations.experiments.privacy_audit import NOT_PER_WINDOW

    return NOT_PER_WINDOW
