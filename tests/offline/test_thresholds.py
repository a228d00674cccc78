"""Threshold policies: the parser, and exact choices on small fixtures."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import get_args

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import f1_score, fbeta_score, precision_score, recall_score

from offline.thresholds import (
    POLICIES,
    AlertRatePolicy,
    CostPolicy,
    FixedPolicy,
    MaxF1Policy,
    MaxFBetaPolicy,
    PolicyKind,
    PrecisionPolicy,
    RecallPolicy,
    ThresholdPolicy,
    choose_threshold,
    parse_policy,
)
from stream_detector.errors import ConfigError, DataError

# Six rows, scores descending: flagging the top j rows gives
#   j:         1     2     3     4     5     6
#   threshold 0.9   0.8   0.7   0.6   0.5   0.4
#   TP         1     2     2     3     3     3
#   FP         0     0     1     1     2     3
Y = np.array([1, 1, 0, 1, 0, 0])
S = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("max_f1", MaxF1Policy()),
        ("MAX_F1", MaxF1Policy()),
        ("max_fbeta:2", MaxFBetaPolicy(2.0)),
        ("precision:0.9", PrecisionPolicy(0.9)),
        ("recall: 0.5", RecallPolicy(0.5)),
        ("cost:1,10", CostPolicy(1.0, 10.0)),
        ("cost:2.5, amount", CostPolicy(2.5, "amount")),
        ("alert_rate:0.01", AlertRatePolicy(0.01)),
        ("fixed:0", FixedPolicy(0.0)),
        ("fixed:1", FixedPolicy(1.0)),
    ],
)
def test_parse_valid(spec: str, expected: ThresholdPolicy) -> None:
    assert parse_policy(spec) == expected
    assert parse_policy(str(expected)) == expected


def test_every_policy_is_registered_under_its_kind() -> None:
    assert tuple(POLICIES) == get_args(PolicyKind)
    assert all(cls.kind == kind for kind, cls in POLICIES.items())


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "is unknown"),
        ("best", "is unknown"),
        ("max_f1:2", "takes no argument"),
        ("precision", "needs an argument"),
        ("precision:", "needs an argument"),
        ("precision:x", "P must be a number; got 'x'"),
        ("precision:0", "P must be in (0, 1]; got 0"),
        ("precision:1.5", "P must be in (0, 1]; got 1.5"),
        ("recall:nan", "R must be finite"),
        ("alert_rate:-0.1", "R must be in (0, 1]"),
        ("fixed:1.01", "T must be in [0, 1]"),
        ("max_fbeta:0", "BETA must be > 0"),
        ("cost:1", "cost needs two values FP,FN; got 1"),
        ("cost:1,2,3", "got 3"),
        ("cost:-1,5", "costs must be >= 0"),
        ("cost:0,5", "both costs must be > 0"),
        ("cost:1,dollars", "FN must be a number; got 'dollars'"),
    ],
)
def test_parse_invalid_names_the_problem(spec: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_policy(spec)
    text = str(info.value)
    assert message in text
    assert repr(spec) in text
    assert "\n" not in text


@given(st.text(max_size=30))
def test_parse_never_fails_otherwise(spec: str) -> None:
    policy: ThresholdPolicy | None = None
    message = ""
    try:
        policy = parse_policy(spec)
    except ConfigError as exc:
        message = str(exc)
    if policy is None:
        assert message.startswith("threshold policy ")
        assert "\n" not in message
    else:
        assert parse_policy(str(policy)) == policy


@given(
    st.sampled_from(["max_fbeta", "precision", "recall", "alert_rate", "fixed"]),
    st.floats(min_value=1e-6, max_value=1.0, allow_nan=False),
)
def test_canonical_spec_round_trips(kind: str, value: float) -> None:
    policy = parse_policy(f"{kind}:{value!r}")
    assert dataclasses.astuple(policy) == (value,)
    assert parse_policy(str(policy)) == policy


def test_max_f1_exact() -> None:
    c = choose_threshold("max_f1", Y, S)
    assert (c.threshold, c.precision, c.recall, c.alert_rate) == (0.6, 0.75, 1.0, 4 / 6)
    assert c.f1 == pytest.approx(6 / 7)
    assert c.feasible
    assert c.note is None


def test_max_f1_agrees_with_sklearn_on_random_scores() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(400) < 0.1).astype(int)
    s = np.round(rng.random(400) * 0.6 + y * 0.3, 3)  # many ties
    c = choose_threshold("max_f1", y, s)
    best = max(f1_score(y, s >= t) for t in np.unique(s))
    assert c.f1 == pytest.approx(best)
    assert c.f1 == pytest.approx(f1_score(y, s >= c.threshold))
    assert c.precision == pytest.approx(precision_score(y, s >= c.threshold))
    assert c.recall == pytest.approx(recall_score(y, s >= c.threshold))


def test_max_fbeta_exact() -> None:
    # beta=0.5 favours precision: top 2 rows (P=1, R=2/3) beat top 4 (P=.75, R=1).
    assert choose_threshold("max_fbeta:0.5", Y, S).threshold == 0.8
    assert choose_threshold("max_fbeta:3", Y, S).threshold == 0.6
    c = choose_threshold("max_fbeta:0.5", Y, S)
    assert fbeta_score(Y, c.threshold <= S, beta=0.5) == pytest.approx(
        max(fbeta_score(Y, t <= S, beta=0.5) for t in S)
    )


def test_ties_choose_the_higher_threshold() -> None:
    y = [1, 0, 0, 1]
    s = [0.9, 0.8, 0.7, 0.6]
    # cost:1,2 -> flag top 1: FN 1 = 2; top 2: 3; top 3: 4; top 4: FP 2 = 2; nothing: 4.
    # Top 1 and top 4 tie at 2: the higher threshold (fewer alerts) wins.
    assert choose_threshold("cost:1,2", y, s).threshold == 0.9
    # cost:1,1 -> top 1: 1; top 4: 2; nothing: 2.
    assert choose_threshold("cost:1,1", y, s).threshold == 0.9
    # cost:1,3 -> top 1: 3; top 4: 2: now flagging all four is cheaper.
    assert choose_threshold("cost:1,3", y, s).threshold == 0.6


def test_precision_policy_exact_and_infeasible_fallback(caplog: pytest.LogCaptureFixture) -> None:
    c = choose_threshold("precision:0.75", Y, S)
    assert (c.threshold, c.precision, c.recall) == (0.6, 0.75, 1.0)
    assert choose_threshold("precision:0.76", Y, S).threshold == 0.8
    # Top row negative: precision 1 is never reached.
    y = [0, 1, 1, 0]
    s = [0.9, 0.8, 0.7, 0.6]
    c = choose_threshold("precision:0.9", y, s)
    assert not c.feasible
    assert c.threshold == choose_threshold("max_f1", y, s).threshold == 0.7
    assert c.note is not None
    assert "precision:0.9 cannot be met" in c.note
    assert "highest precision 0.6667" in c.note
    assert "fell back to max_f1" in c.note


def test_recall_policy_exact() -> None:
    assert choose_threshold("recall:0.5", Y, S).threshold == 0.8
    assert choose_threshold("recall:0.67", Y, S).threshold == 0.6
    assert choose_threshold("recall:1", Y, S).threshold == 0.6


def test_cost_policy_exact() -> None:
    # cost:1,10: missing a fraud is expensive: flag the top 4 (FP=1, FN=0) -> cost 1.
    c = choose_threshold("cost:1,10", Y, S)
    assert c.threshold == 0.6
    # cost:10,1: false positives expensive: top 2 (FP=0, FN=1) -> cost 1.
    assert choose_threshold("cost:10,1", Y, S).threshold == 0.8


def test_cost_policy_can_flag_nothing() -> None:
    y = [0, 1, 0, 0]
    s = [0.9, 0.5, 0.4, 0.3]
    c = choose_threshold("cost:100,1", y, s)
    assert c.threshold > 0.9
    assert (c.precision, c.recall, c.alert_rate) == (0.0, 0.0, 0.0)


def test_cost_policy_with_amounts() -> None:
    y = [1, 0, 1, 0]
    s = [0.9, 0.8, 0.7, 0.6]
    amount = [5.0, 1.0, 500.0, 1.0]
    # FP costs 50: catching the 500 fraud (threshold 0.7, one FP) costs 50 + 0 = 50 vs
    # flagging only the top row: 500 missed.
    assert choose_threshold("cost:50,amount", y, s, amount=amount).threshold == 0.7
    # With a small fraud instead, the FP is not worth it.
    amount = [5.0, 1.0, 20.0, 1.0]
    assert choose_threshold("cost:50,amount", y, s, amount=amount).threshold == 0.9
    with pytest.raises(DataError, match="needs an amount column"):
        choose_threshold("cost:50,amount", y, s)


def test_alert_rate_exact_and_ties() -> None:
    c = choose_threshold("alert_rate:0.5", Y, S)
    assert (c.threshold, c.alert_rate) == (0.7, 0.5)
    assert choose_threshold("alert_rate:0.49", Y, S).threshold == 0.8
    s = [0.9, 0.9, 0.9, 0.1]
    c = choose_threshold("alert_rate:0.25", [0, 1, 0, 0], s)
    assert not c.feasible
    assert (c.threshold, c.alert_rate) == (0.9, 0.75)
    assert c.note is not None
    assert "alert_rate:0.25 cannot be met" in c.note


def test_alert_rate_and_fixed_need_no_positives() -> None:
    y = [0, 0, 0, 0]
    assert choose_threshold("alert_rate:0.5", y, [0.4, 0.3, 0.2, 0.1]).threshold == 0.3
    assert choose_threshold("fixed:0.25", y, [0.4, 0.3, 0.2, 0.1]).alert_rate == 0.5
    with pytest.raises(DataError, match="needs positive rows"):
        choose_threshold("max_f1", y, [0.4, 0.3, 0.2, 0.1])


def test_fixed_exact() -> None:
    c = choose_threshold("fixed:0.65", Y, S)
    assert (c.threshold, c.precision, c.recall, c.alert_rate) == (0.65, 2 / 3, 2 / 3, 0.5)


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(DataError, match="equal-length"):
        choose_threshold("max_f1", [0, 1], [0.1])


def _by_definition(
    policy: ThresholdPolicy, y: np.ndarray, s: np.ndarray, amount: np.ndarray
) -> float:
    """The threshold ``policy`` defines, by trying every distinct score (highest first, so a
    tie keeps the higher threshold)."""
    candidates = sorted(set(s.tolist()), reverse=True)

    def best(value: Callable[[float], float], allowed: Callable[[float], bool]) -> float | None:
        chosen, top = None, -np.inf
        for t in candidates:
            if allowed(t) and value(t) > top:
                chosen, top = t, value(t)
        return chosen

    def counts(t: float) -> tuple[float, float, float]:
        flagged = s >= t
        return float((flagged & (y == 1)).sum()), float(flagged.sum()), float(y.sum())

    def precision(t: float) -> float:
        tp, flagged, _ = counts(t)
        return tp / flagged

    def recall(t: float) -> float:
        tp, _, positives = counts(t)
        return tp / positives

    def fbeta(t: float, beta: float = 1.0) -> float:
        tp, flagged, positives = counts(t)  # integers: equal F-betas compare equal
        b2 = beta**2
        return (1 + b2) * tp / ((1 + b2) * tp + b2 * (positives - tp) + (flagged - tp))

    def anywhere(t: float) -> bool:
        return True

    if isinstance(policy, MaxF1Policy):
        found = best(fbeta, anywhere)
    elif isinstance(policy, MaxFBetaPolicy):
        found = best(lambda t: fbeta(t, policy.beta), anywhere)
    elif isinstance(policy, PrecisionPolicy):
        found = best(recall, lambda t: precision(t) >= policy.precision - 1e-12)
        found = best(fbeta, anywhere) if found is None else found
    elif isinstance(policy, RecallPolicy):
        found = best(precision, lambda t: recall(t) >= policy.recall - 1e-12)
    elif isinstance(policy, CostPolicy):
        missed_each = amount if policy.fn == "amount" else np.full(y.size, float(policy.fn))

        def cost(t: float | None) -> float:
            flagged = s >= t if t is not None else np.zeros(y.size, bool)
            fp = float(((y == 0) & flagged).sum())
            return policy.fp * fp + float(missed_each[(y == 1) & ~flagged].sum())

        found = best(lambda t: -cost(t), anywhere)
        if cost(None) <= cost(found) and s.max() < 1.0:
            return float(np.nextafter(s.max(), np.inf))
    elif isinstance(policy, AlertRatePolicy):
        within = [t for t in candidates if (s >= t).mean() <= policy.rate + 1e-12]
        found = within[-1] if within else candidates[0]
    else:
        assert isinstance(policy, FixedPolicy)
        found = policy.threshold
    assert found is not None
    return found


EVERY_POLICY = [
    "max_f1",
    "max_fbeta:0.5",
    "max_fbeta:3",
    "precision:0.7",
    "precision:1",
    "recall:0.6",
    "cost:1,3",
    "cost:4,1",
    "cost:2,amount",
    "alert_rate:0.3",
    "fixed:0.45",
]


def test_every_policy_kind_is_checked_by_definition() -> None:
    assert {parse_policy(spec).kind for spec in EVERY_POLICY} == set(POLICIES)


@pytest.mark.parametrize("spec", EVERY_POLICY)
@settings(deadline=None)  # brute force on a shared machine: no time limit per example
@given(
    st.lists(
        st.tuples(
            st.integers(0, 1), st.sampled_from([0.1, 0.2, 0.3, 0.5, 0.6, 0.9]), st.integers(1, 9)
        ),
        min_size=1,
        max_size=12,
    )
)
def test_every_policy_meets_its_definition(spec: str, rows: list[tuple[int, float, int]]) -> None:
    """On small fixtures with many ties, each policy picks the threshold its definition names,
    and reports scikit-learn's precision, recall and F1 at that threshold."""
    y = np.array([r[0] for r in rows])
    y[0] = 1  # every policy can run
    s = np.array([r[1] for r in rows])
    amount = np.array([float(r[2]) for r in rows])
    policy = parse_policy(spec)
    c = choose_threshold(policy, y, s, amount=amount)
    assert c.threshold == _by_definition(policy, y, s, amount)
    flagged = s >= c.threshold
    assert c.policy == spec
    assert c.alert_rate == pytest.approx(flagged.mean())
    assert c.precision == pytest.approx(precision_score(y, flagged, zero_division=0))
    assert c.recall == pytest.approx(recall_score(y, flagged))
    assert c.f1 == pytest.approx(f1_score(y, flagged))
