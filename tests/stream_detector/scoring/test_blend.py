"""BlendScorer: the weighted mean against scikit-learn's probabilities, and its payload."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest
from sklearn.pipeline import Pipeline

from stream_detector.scoring import (
    BlendScorer,
    GradientBoostingScorer,
    IsolationForestScorer,
    LinearScorer,
    Scorer,
)

from .conftest import refusal

ATOL = 1e-9


@pytest.fixture(scope="module")
def members(shuttle_linear: Pipeline, shuttle_hgb: HistGradientBoostingClassifier) -> list[Scorer]:
    return [
        LinearScorer.from_sklearn(shuttle_linear),
        GradientBoostingScorer.from_sklearn(shuttle_hgb),
    ]


def test_shuttle_matches_the_mean_of_scikit_learn_probabilities(
    shuttle: tuple[np.ndarray, np.ndarray],
    shuttle_linear: Pipeline,
    shuttle_hgb: HistGradientBoostingClassifier,
    members: list[Scorer],
) -> None:
    X, _ = shuttle
    p_linear = shuttle_linear.predict_proba(X)[:, 1]
    p_hgb = shuttle_hgb.predict_proba(X)[:, 1]
    equal = BlendScorer(members)
    np.testing.assert_allclose(equal.score_samples(X), (p_linear + p_hgb) / 2, rtol=0, atol=ATOL)
    weighted = BlendScorer(members, [1.0, 3.0])
    assert weighted.weights == (0.25, 0.75)
    np.testing.assert_allclose(
        weighted.score_samples(X), 0.25 * p_linear + 0.75 * p_hgb, rtol=0, atol=ATOL
    )


def test_payload_round_trip(
    shuttle: tuple[np.ndarray, np.ndarray],
    members: list[Scorer],
    roundtrip: Callable[[Scorer], Scorer],
) -> None:
    X, _ = shuttle
    blend = BlendScorer(members, [2.0, 1.0])
    spec, arrays = blend.to_payload()
    assert spec["kind"] == "blend"
    assert [m["kind"] for m in spec["members"]] == ["linear", "gbdt"]
    assert all(name.startswith(("member0.", "member1.")) for name in arrays)
    again = roundtrip(blend)
    assert isinstance(again, BlendScorer)
    assert again.weights == blend.weights
    np.testing.assert_array_equal(again.score_samples(X[:2000]), blend.score_samples(X[:2000]))


def test_nan_is_accepted_only_when_every_member_accepts_it(members: list[Scorer]) -> None:
    assert not BlendScorer(members).allow_nan  # the linear member refuses NaN
    gbdt = members[1]
    assert BlendScorer([gbdt, gbdt]).allow_nan


def _payload(members: list[Scorer]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    return BlendScorer(members).to_payload()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s, a: a.pop("member1.value"), "scorer array 'value' is missing"),
        (lambda s, a: a.update({"member2.coef": np.zeros(1)}), "does not use: ['member2.coef']"),
        (lambda s, a: s.update({"weights": [1.0]}), "'weights' must be a list of 2 numbers"),
        (lambda s, a: s.update({"weights": [1.0, True]}), "'weights' must be a list of 2"),
        (lambda s, a: s.update({"weights": [1.0, -1.0]}), "need one positive, finite weight"),
        (lambda s, a: s.update({"members": s["members"][:1]}), "list of 2 to 16 scorer specs"),
        (lambda s, a: s.update({"n_features": 4}), "blend members must read the spec's 4"),
        (lambda s, a: s["members"].__setitem__(0, 3), "blend member 0 must be a scorer spec"),
        (
            lambda s, a: s["members"][0].update({"kind": "isolation_forest"}),
            "blend member 0 must be one of ('linear', 'gbdt', 'hybrid')",
        ),
    ],
)
def test_bad_payloads_are_bundle_errors(
    members: list[Scorer],
    edit: Callable[[dict[str, Any], dict[str, Any]], Any],
    message: str,
) -> None:
    assert message in refusal(_payload(members), edit)


def test_constructor_checks_its_members(shuttle_iforest: IsolationForest) -> None:
    two = LinearScorer(coef=[1.0, 2.0], intercept=0.0)
    three = LinearScorer(coef=[1.0, 2.0, 3.0], intercept=0.0)
    with pytest.raises(ValueError, match="needs 2 to 16 members; got 1"):
        BlendScorer([two])
    with pytest.raises(ValueError, match="must read the same features"):
        BlendScorer([two, three])
    with pytest.raises(ValueError, match="must be probability scorers"):
        BlendScorer([two, IsolationForestScorer.from_sklearn(shuttle_iforest)])
    with pytest.raises(ValueError, match="need one positive, finite weight per member"):
        BlendScorer([two, two], [1.0, np.inf])
