from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from common.language.interpreter import Interpreter
from common.language.prompts import SensorContext
from common.language.regeneration import RegenerationConfig, RegenerationReport, regenerate

CONTEXT = SensorContext(20.0, "waist", "phone", ["walking", "sitting"])

# Fake text embedding: each text is a fixed unit vector in 2-D.
VECTORS = {
    "good": (1.0, 0.0),
    "good too": (0.995, 0.0998),
    "bad": (0.0, 1.0),
    "worse": (-1.0, 0.0),
    "better": (0.8, 0.6),
    "still": (0.0, -1.0),
    "still too": (0.0998, -0.995),
    "odd": (1.0, 0.0),
}


def fake_embed(texts: list[str]) -> np.ndarray:
    return np.asarray([VECTORS[text] for text in texts], dtype=np.float32)


class ScriptedInterpreter:
    """Answers each re-ask from a script: previous text -> new text (unchanged when not scripted)."""

    name = "scripted"

    def __init__(self, script: dict[str, str]) -> None:
        self.script = script
        self.asked: list[list[str]] = []

    def interpret(
        self, features: np.ndarray, context: SensorContext, windows: np.ndarray | None = None
    ) -> list[str]:
        raise AssertionError("regenerate must only re-ask")

    def reinterpret(
        self,
        features: np.ndarray,
        previous: list[str],
        context: SensorContext,
        windows: np.ndarray | None = None,
    ) -> list[str]:
        assert len(features) == len(previous)
        self.asked.append(list(previous))
        return [self.script.get(text, text) for text in previous]

    def describe_labels(self, labels: Sequence[str], n: int) -> dict[str, list[str]]:
        return {label: [label] * n for label in labels}


def _features(n: int) -> np.ndarray:
    return np.arange(n * 3, dtype=np.float32).reshape(n, 3)


def test_scripted_interpreter_follows_the_protocol() -> None:
    assert isinstance(ScriptedInterpreter({}), Interpreter)


def test_outlier_is_found_and_a_better_answer_accepted() -> None:
    texts = ["good"] * 9 + ["bad"]
    interpreter = ScriptedInterpreter({"bad": "good too"})
    new_texts, report = regenerate(
        texts, np.zeros(10), _features(10), CONTEXT, interpreter, fake_embed, RegenerationConfig(outliers=1)
    )
    assert interpreter.asked[0] == ["bad"]  # the one window farther than the mean distance
    assert new_texts == ["good"] * 9 + ["good too"]
    assert report.replaced.tolist() == [False] * 9 + [True]
    assert report.fraction_regenerated == pytest.approx(0.1)
    assert report.accepted_per_iteration[0] == 1
    assert report.mean_distances[1] < report.mean_distances[0]
    assert texts[-1] == "bad"  # the input list is not modified


def test_a_worse_answer_is_rejected() -> None:
    texts = ["good"] * 9 + ["bad"]
    interpreter = ScriptedInterpreter({"bad": "worse"})
    config = RegenerationConfig(outliers=1, max_attempts_per_window=3, max_iterations=5, patience=5)
    new_texts, report = regenerate(
        texts, np.zeros(10), _features(10), CONTEXT, interpreter, fake_embed, config
    )
    assert new_texts == texts
    assert report.fraction_regenerated == 0.0
    assert report.fraction_asked == pytest.approx(0.1)
    assert report.attempts.tolist() == [0] * 9 + [3]  # asked until its attempts ran out
    assert report.stop_reason == "no_outliers"
    assert all(accepted == 0 for accepted in report.accepted_per_iteration)


def test_an_answer_that_is_better_but_not_best_is_still_accepted() -> None:
    texts = ["good"] * 9 + ["bad"]
    new_texts, report = regenerate(
        texts, np.zeros(10), _features(10), CONTEXT, ScriptedInterpreter({"bad": "better"}), fake_embed
    )
    assert new_texts[-1] == "better"
    assert report.replaced[-1]


def test_only_the_k_farthest_beyond_the_mean_are_asked() -> None:
    texts = ["good"] * 6 + ["good too", "better", "bad", "worse"]
    interpreter = ScriptedInterpreter({})
    regenerate(
        texts,
        np.zeros(10),
        _features(10),
        CONTEXT,
        interpreter,
        fake_embed,
        RegenerationConfig(outliers=2, max_iterations=1),
    )
    assert sorted(interpreter.asked[0]) == ["bad", "worse"]
    fraction = ScriptedInterpreter({})
    regenerate(
        texts,
        np.zeros(10),
        _features(10),
        CONTEXT,
        fraction,
        fake_embed,
        RegenerationConfig(outliers=0.3, max_iterations=1),
    )
    # k = ceil(0.3 * 10) = 3, but "better" lies closer to the centre than the mean distance: not an outlier
    assert sorted(fraction.asked[0]) == ["bad", "worse"]


def test_groups_are_clustered_separately() -> None:
    # group 0 is around "good", group 1 around "still"; "good" inside group 1 is its outlier
    texts = ["good"] * 5 + ["still"] * 5 + ["good"]
    groups = np.array([0] * 5 + [1] * 6)
    interpreter = ScriptedInterpreter({"good": "still too"})
    new_texts, report = regenerate(
        texts, groups, _features(11), CONTEXT, interpreter, fake_embed, RegenerationConfig(outliers=1)
    )
    assert interpreter.asked[0] == ["good"]  # group 0 is perfectly compact: nothing to ask there
    assert new_texts == ["good"] * 5 + ["still"] * 5 + ["still too"]
    assert report.replaced.sum() == 1


def test_stops_when_the_distance_is_stable() -> None:
    texts = ["good"] * 9 + ["bad"] + ["good too"] * 10
    interpreter = ScriptedInterpreter({})  # same answer again: nothing changes
    config = RegenerationConfig(outliers=1, patience=2, threshold=0.0005, max_iterations=10)
    _, report = regenerate(texts, np.zeros(20), _features(20), CONTEXT, interpreter, fake_embed, config)
    assert report.stop_reason == "stable"
    assert report.iterations == 2
    assert len(report.mean_distances) == 3
    assert report.mean_distances[0] == pytest.approx(report.mean_distances[-1])


def test_stops_at_max_iterations() -> None:
    texts = ["good"] * 9 + ["bad"] + ["good too"] * 10
    config = RegenerationConfig(outliers=1, patience=5, max_iterations=3, max_attempts_per_window=10)
    _, report = regenerate(
        texts, np.zeros(20), _features(20), CONTEXT, ScriptedInterpreter({}), fake_embed, config
    )
    assert report.stop_reason == "max_iterations"
    assert report.iterations == 3


def test_compact_groups_need_nothing() -> None:
    texts = ["good"] * 4
    interpreter = ScriptedInterpreter({})
    new_texts, report = regenerate(texts, np.zeros(4), _features(4), CONTEXT, interpreter, fake_embed)
    assert new_texts == texts and interpreter.asked == []
    assert report.stop_reason == "no_outliers"
    assert report.fraction_regenerated == 0.0
    assert isinstance(report, RegenerationReport)
    assert report.summary()["iterations"] == 0


def test_several_clusters_per_group() -> None:
    # two modes in one group ("good" and "still"); with 2 clusters neither is an outlier, "bad" is
    texts = ["good"] * 5 + ["still"] * 5 + ["bad"]
    interpreter = ScriptedInterpreter({})
    regenerate(
        texts,
        np.zeros(11),
        _features(11),
        CONTEXT,
        interpreter,
        fake_embed,
        RegenerationConfig(n_clusters=2, outliers=1, max_iterations=1),
    )
    assert interpreter.asked[0] == ["bad"]


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="groups must have shape"):
        regenerate(["good"] * 3, np.zeros(2), _features(3), CONTEXT, ScriptedInterpreter({}), fake_embed)
    with pytest.raises(ValueError, match="features must have shape"):
        regenerate(["good"] * 3, np.zeros(3), np.zeros(3), CONTEXT, ScriptedInterpreter({}), fake_embed)

    class Broken(ScriptedInterpreter):
        def reinterpret(self, features, previous, context, windows=None):  # noqa: ANN001, ANN202
            return []

    with pytest.raises(ValueError, match="returned 0 answers for 1 windows"):
        regenerate(["good"] * 9 + ["bad"], np.zeros(10), _features(10), CONTEXT, Broken({}), fake_embed)
    with pytest.raises(ValueError, match="embed returned shape"):
        regenerate(
            ["good", "bad"], np.zeros(2), _features(2), CONTEXT, ScriptedInterpreter({}), lambda t: np.ones(3)
        )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n_clusters": 0}, "n_clusters"),
        ({"outliers": 0}, "outliers"),
        ({"outliers": 1.5}, "outliers"),
        ({"threshold": -1.0}, "threshold"),
        ({"patience": 0}, "patience"),
        ({"max_iterations": 0}, "max_iterations"),
    ],
)
def test_config_is_validated(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RegenerationConfig(**options)
