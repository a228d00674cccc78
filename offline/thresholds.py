"""Threshold moving: pick the score above which an event is flagged, by a named policy.

A policy is written as a short spec string (``configs/train.yaml`` key ``threshold_policy``,
flag ``--threshold-policy``):

=====================  =========================================================================
``max_f1``             the threshold with the highest F1
``max_fbeta:BETA``     the highest F-beta (``BETA`` > 1 favours recall, < 1 precision)
``precision:P``        the highest recall among thresholds with precision >= ``P``
``recall:R``           the highest precision among thresholds with recall >= ``R``
``cost:FP,FN``         the lowest total cost ``FP * false positives + FN * missed frauds``;
                       ``FN`` may be ``amount``: a missed fraud then costs its amount
``alert_rate:R``       flag at most the top ``R`` fraction of events (analysts' capacity)
``fixed:T``            the threshold ``T`` itself
=====================  =========================================================================

An event is flagged when ``score >= threshold``. The threshold is chosen on out-of-fold
validation scores, never on test data. Ties are broken towards the higher threshold (fewer
alerts). When a policy cannot be met on the validation scores (no threshold reaches the
precision asked for; the top tied scores already exceed the alert budget), the choice falls
back explicitly (to ``max_f1``, or to the smallest alert rate available) and says so in
:attr:`ThresholdChoice.note`, which ``train`` logs and records in the bundle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from stream_detector.errors import ConfigError, DataError

__all__ = ["PolicyKind", "ThresholdChoice", "ThresholdPolicy", "choose_threshold", "parse_policy"]

PolicyKind = Literal["max_f1", "max_fbeta", "precision", "recall", "cost", "alert_rate", "fixed"]

_SYNTAX = (
    "max_f1, max_fbeta:BETA, precision:P, recall:R, cost:FP,FN (FN a number or 'amount'), "
    "alert_rate:R, fixed:T"
)


def _num(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


@dataclass(frozen=True)
class ThresholdPolicy:
    """A parsed threshold policy; ``str(policy)`` is its canonical spec.

    Examples
    --------
    >>> str(parse_policy(" Precision:0.90 "))
    'precision:0.9'
    >>> parse_policy("cost:1,amount").cost_fn
    'amount'
    """

    kind: PolicyKind
    value: float | None = None
    cost_fp: float | None = None
    cost_fn: float | Literal["amount"] | None = None

    def __str__(self) -> str:
        if self.kind == "max_f1":
            return "max_f1"
        if self.kind == "cost":
            assert self.cost_fp is not None
            assert self.cost_fn is not None
            fn = self.cost_fn if isinstance(self.cost_fn, str) else _num(self.cost_fn)
            return f"cost:{_num(self.cost_fp)},{fn}"
        assert self.value is not None
        return f"{self.kind}:{_num(self.value)}"

    @property
    def needs_labels(self) -> bool:
        """Whether choosing the threshold needs positive rows (all but alert_rate and fixed)."""
        return self.kind not in ("alert_rate", "fixed")


def _number(spec: str, name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(
            f"threshold policy {spec!r}: {name} must be a number; got {text!r}"
        ) from None
    if not math.isfinite(value):
        raise ConfigError(f"threshold policy {spec!r}: {name} must be finite; got {text!r}")
    return value


def _in_range(spec: str, name: str, value: float, low: float, closed_low: bool) -> float:
    ok = (value >= low if closed_low else value > low) and value <= 1.0
    if not ok:
        bracket = "[" if closed_low else "("
        raise ConfigError(
            f"threshold policy {spec!r}: {name} must be in {bracket}{_num(low)}, 1]; got {_num(value)}"
        )
    return value


def parse_policy(spec: str) -> ThresholdPolicy:
    """Parse a policy spec such as ``"precision:0.9"``; raise ConfigError saying what is wrong.

    Examples
    --------
    >>> parse_policy("alert_rate:0.01")
    ThresholdPolicy(kind='alert_rate', value=0.01, cost_fp=None, cost_fn=None)
    >>> parse_policy("precision:1.5")
    Traceback (most recent call last):
    ...
    stream_detector.errors.ConfigError: threshold policy 'precision:1.5': P must be in (0, 1]; got 1.5
    """
    text = spec.strip()
    kind, sep, arg = text.partition(":")
    kind = kind.strip().lower()
    arg = arg.strip()
    if kind == "max_f1":
        if sep:
            raise ConfigError(f"threshold policy {spec!r}: max_f1 takes no argument")
        return ThresholdPolicy("max_f1")
    if kind not in ("max_fbeta", "precision", "recall", "cost", "alert_rate", "fixed"):
        raise ConfigError(f"threshold policy {spec!r} is unknown; expected one of {_SYNTAX}")
    if not arg:
        raise ConfigError(f"threshold policy {spec!r}: {kind} needs an argument ({_SYNTAX})")
    if kind == "max_fbeta":
        beta = _number(spec, "BETA", arg)
        if beta <= 0:
            raise ConfigError(f"threshold policy {spec!r}: BETA must be > 0; got {_num(beta)}")
        return ThresholdPolicy("max_fbeta", value=beta)
    if kind == "cost":
        parts = [p.strip() for p in arg.split(",")]
        if len(parts) != 2:
            raise ConfigError(
                f"threshold policy {spec!r}: cost needs two values FP,FN; got {len(parts)}"
            )
        fp = _number(spec, "FP", parts[0])
        fn: float | Literal["amount"]
        fn = "amount" if parts[1].lower() == "amount" else _number(spec, "FN", parts[1])
        if fp < 0 or (not isinstance(fn, str) and fn < 0):
            raise ConfigError(f"threshold policy {spec!r}: costs must be >= 0")
        if fp == 0 or fn == 0:
            raise ConfigError(
                f"threshold policy {spec!r}: a zero cost makes flagging everything or nothing "
                "optimal; both costs must be > 0"
            )
        return ThresholdPolicy("cost", cost_fp=fp, cost_fn=fn)
    names = {"precision": "P", "recall": "R", "alert_rate": "R", "fixed": "T"}
    value = _number(spec, names[kind], arg)
    value = _in_range(spec, names[kind], value, 0.0, closed_low=kind == "fixed")
    return ThresholdPolicy(kind, value=value)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ThresholdChoice:
    """A chosen threshold and how it performed on the scores it was chosen on."""

    threshold: float
    policy: str
    precision: float
    recall: float
    f1: float
    alert_rate: float
    feasible: bool = True
    note: str | None = None


def _above(score: float) -> float:
    """The smallest threshold that flags nothing at or below ``score`` (capped at 1)."""
    return float(min(np.nextafter(score, np.inf), 1.0))


def choose_threshold(
    policy: ThresholdPolicy | str,
    y_true: npt.ArrayLike,
    scores: npt.ArrayLike,
    *,
    amount: npt.ArrayLike | None = None,
) -> ThresholdChoice:
    """Choose a threshold on validation scores following ``policy``.

    Parameters
    ----------
    policy
        A :class:`ThresholdPolicy` or its spec string.
    y_true
        0/1 labels of the validation rows.
    scores
        Their scores in [0, 1], higher meaning more suspicious.
    amount
        Amount per row; required by ``cost:FP,amount``.

    Examples
    --------
    >>> y = [1, 1, 0, 1, 0, 0]
    >>> s = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    >>> c = choose_threshold("max_f1", y, s)
    >>> c.threshold, round(c.precision, 3), c.recall
    (0.6, 0.75, 1.0)
    >>> choose_threshold("precision:0.9", y, s).threshold
    0.8
    """
    pol = parse_policy(policy) if isinstance(policy, str) else policy
    y = np.asarray(y_true, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1 or y.size == 0:
        raise DataError(
            f"labels and scores must be equal-length 1-d arrays; got {y.shape}, {s.shape}"
        )
    n_pos = int(y.sum())
    if pol.needs_labels and n_pos == 0:
        raise DataError(
            f"threshold policy {pol} needs positive rows in the validation predictions; got none"
        )
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), s.size - 1]  # end of each run of equal scores
    thresholds = s_sorted[last]
    tp = np.cumsum(y_sorted)[last].astype(np.float64)
    flagged = (last + 1).astype(np.float64)
    fp = flagged - tp
    precision = tp / flagged
    recall = tp / n_pos if n_pos else np.zeros_like(tp)
    f1 = 2 * tp / (flagged + n_pos)

    def at(j: int, feasible: bool = True, note: str | None = None) -> ThresholdChoice:
        return ThresholdChoice(
            threshold=float(thresholds[j]),
            policy=str(pol),
            precision=float(precision[j]),
            recall=float(recall[j]),
            f1=float(f1[j]),
            alert_rate=float(flagged[j] / s.size),
            feasible=feasible,
            note=note,
        )

    def flag_nothing(note: str | None = None) -> ThresholdChoice:
        return ThresholdChoice(
            _above(float(thresholds[0])), str(pol), 0.0, 0.0, 0.0, 0.0, True, note
        )

    if pol.kind == "max_f1":
        return at(int(np.argmax(f1)))
    if pol.kind == "max_fbeta":
        b2 = float(pol.value) ** 2  # type: ignore[arg-type]
        fbeta = (1 + b2) * tp / ((1 + b2) * tp + b2 * (n_pos - tp) + fp)
        return at(int(np.argmax(fbeta)))
    if pol.kind == "precision":
        ok = precision >= float(pol.value) - 1e-12  # type: ignore[arg-type]
        if ok.any():
            return at(int(np.argmax(np.where(ok, recall, -1.0))))
        best = int(np.argmax(precision))
        fallback = int(np.argmax(f1))
        return at(
            fallback,
            feasible=False,
            note=(
                f"threshold policy {pol} cannot be met on validation (highest precision "
                f"{precision[best]:.4f} at threshold {thresholds[best]:.6g}); fell back to max_f1"
            ),
        )
    if pol.kind == "recall":
        ok = recall >= float(pol.value) - 1e-12  # type: ignore[arg-type]
        return at(int(np.argmax(np.where(ok, precision, -1.0))))
    if pol.kind == "cost":
        if pol.cost_fn == "amount":
            if amount is None:
                raise DataError(f"threshold policy {pol} needs an amount column; the data has none")
            amt = np.asarray(amount, dtype=np.float64)[order]
            caught = np.cumsum(np.where(y_sorted == 1, amt, 0.0))[last]
            missed = float(amt[y_sorted == 1].sum()) - caught
            nothing = float(amt[y_sorted == 1].sum())
        else:
            fn_cost = float(pol.cost_fn)  # type: ignore[arg-type]
            missed = fn_cost * (n_pos - tp)
            nothing = fn_cost * n_pos
        cost = float(pol.cost_fp) * fp + missed  # type: ignore[arg-type]
        j = int(np.argmin(cost))
        if nothing <= cost[j] and thresholds[0] < 1.0:
            return flag_nothing()
        return at(j)
    if pol.kind == "alert_rate":
        rate = flagged / s.size
        ok = rate <= float(pol.value) + 1e-12  # type: ignore[arg-type]
        if ok.any():
            return at(int(np.flatnonzero(ok)[-1]))
        return at(
            0,
            feasible=False,
            note=(
                f"threshold policy {pol} cannot be met on validation: the highest score is "
                f"shared by {rate[0]:.4%} of rows; flagging those"
            ),
        )
    # fixed
    t = float(pol.value)  # type: ignore[arg-type]
    hit = s >= t
    n_hit = int(hit.sum())
    tp_t = float(y[hit].sum())
    return ThresholdChoice(
        threshold=t,
        policy=str(pol),
        precision=tp_t / n_hit if n_hit else 0.0,
        recall=tp_t / n_pos if n_pos else 0.0,
        f1=2 * tp_t / (n_hit + n_pos) if n_hit + n_pos else 0.0,
        alert_rate=n_hit / s.size,
    )
