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

Each policy is a class over :class:`ThresholdPolicy` (one per row above, registered in
:data:`POLICIES` under its name); :func:`parse_policy` turns a spec into one.

An event is flagged when ``score >= threshold``. The threshold is chosen on out-of-fold
validation scores, never on test data. Ties are broken towards the higher threshold (fewer
alerts). When a policy cannot be met on the validation scores (no threshold reaches the
precision asked for; the top tied scores already exceed the alert budget), the choice falls
back explicitly (to ``max_f1``, or to the smallest alert rate available) and says so in
:attr:`ThresholdChoice.note`, which ``train`` logs and records in the bundle.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from stream_detector.errors import ConfigError, DataError

__all__ = [
    "POLICIES",
    "AlertRatePolicy",
    "CostPolicy",
    "FixedPolicy",
    "MaxF1Policy",
    "MaxFBetaPolicy",
    "PolicyBound",
    "PolicyKind",
    "PrecisionPolicy",
    "RecallPolicy",
    "ThresholdChoice",
    "ThresholdPolicy",
    "choose_threshold",
    "parse_policy",
]

PolicyKind = Literal["max_f1", "max_fbeta", "precision", "recall", "cost", "alert_rate", "fixed"]

Array = npt.NDArray[np.float64]


def _num(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


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


def _fraction(spec: str, name: str, text: str, *, zero_allowed: bool = False) -> float:
    """``text`` as a number in (0, 1], or [0, 1] when ``zero_allowed``."""
    value = _number(spec, name, text)
    if not ((value >= 0.0 if zero_allowed else value > 0.0) and value <= 1.0):
        bracket = "[" if zero_allowed else "("
        raise ConfigError(
            f"threshold policy {spec!r}: {name} must be in {bracket}0, 1]; got {_num(value)}"
        )
    return value


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


class PolicyBound(NamedTuple):
    """The metric a policy promises to bound: ``metric >= target`` (or ``<=``)."""

    metric: Literal["precision", "recall", "alert_rate"]
    target: float
    at_least: bool


class _Curve:
    """Every distinct threshold of the scores, highest first, and what flagging at it gives."""

    def __init__(self, y: npt.NDArray[np.int64], s: Array) -> None:
        self.y, self.s = y, s
        self.n_pos = int(y.sum())
        self.order = np.argsort(-s, kind="mergesort")
        s_sorted, self.y_sorted = s[self.order], y[self.order]
        # The end of each run of equal scores.
        self.last = np.r_[np.flatnonzero(np.diff(s_sorted)), s.size - 1]
        self.thresholds = s_sorted[self.last]
        self.tp = np.cumsum(self.y_sorted)[self.last].astype(np.float64)
        self.flagged = (self.last + 1).astype(np.float64)
        self.fp = self.flagged - self.tp
        self.precision = self.tp / self.flagged
        self.recall = self.tp / self.n_pos if self.n_pos else np.zeros_like(self.tp)
        self.f1 = 2 * self.tp / (self.flagged + self.n_pos)

    def at(
        self, j: int, policy: ThresholdPolicy, *, feasible: bool = True, note: str | None = None
    ) -> ThresholdChoice:
        """The choice of the ``j``-th highest threshold."""
        return ThresholdChoice(
            threshold=float(self.thresholds[j]),
            policy=str(policy),
            precision=float(self.precision[j]),
            recall=float(self.recall[j]),
            f1=float(self.f1[j]),
            alert_rate=float(self.flagged[j] / self.s.size),
            feasible=feasible,
            note=note,
        )


class ThresholdPolicy(ABC):
    """A rule that picks a threshold from validation labels and scores.

    Each policy is a frozen dataclass holding its parsed arguments. ``kind`` is its name in a
    spec, ``syntax`` its spec's form; ``str(policy)`` is its canonical spec, which
    :func:`parse_policy` turns back into an equal policy. :meth:`choose` checks the inputs
    and hands the policy every distinct threshold with the precision, recall, F1 and counts
    of flagging at it (highest threshold first); the policy returns its
    :class:`ThresholdChoice`, falling back explicitly when it cannot be met.

    Examples
    --------
    >>> str(parse_policy(" Precision:0.90 "))
    'precision:0.9'
    >>> parse_policy("cost:1,amount").fn
    'amount'
    """

    kind: ClassVar[PolicyKind]
    syntax: ClassVar[str]
    needs_labels: ClassVar[bool] = True
    """Whether choosing the threshold needs positive rows (all but alert_rate and fixed)."""

    @classmethod
    @abstractmethod
    def from_argument(cls, spec: str, argument: str | None) -> ThresholdPolicy:
        """The policy of ``spec``, whose text after the colon is ``argument`` (None: no colon)."""

    @abstractmethod
    def __str__(self) -> str: ...

    @property
    def needs_amount(self) -> bool:
        """Whether choosing the threshold needs the amount of each row."""
        return False

    @property
    def bound(self) -> PolicyBound | None:
        """The metric this policy bounds, checked again by ``evaluate`` on new data."""
        return None

    @classmethod
    def _required(cls, spec: str, argument: str | None) -> str:
        if not argument:
            raise ConfigError(
                f"threshold policy {spec!r}: {cls.kind} needs an argument ({_SYNTAX})"
            )
        return argument

    def choose(
        self,
        y_true: npt.ArrayLike,
        scores: npt.ArrayLike,
        *,
        amount: npt.ArrayLike | None = None,
    ) -> ThresholdChoice:
        """Choose a threshold on validation scores; see :func:`choose_threshold`."""
        y = np.asarray(y_true, dtype=np.int64)
        s = np.asarray(scores, dtype=np.float64)
        if y.shape != s.shape or y.ndim != 1 or y.size == 0:
            raise DataError(
                f"labels and scores must be equal-length 1-d arrays; got {y.shape}, {s.shape}"
            )
        if self.needs_labels and not y.any():
            raise DataError(
                f"threshold policy {self} needs positive rows in the validation predictions; "
                "got none"
            )
        if self.needs_amount and amount is None:
            raise DataError(f"threshold policy {self} needs an amount column; the data has none")
        return self._choose(_Curve(y, s), amount)

    @abstractmethod
    def _choose(self, curve: _Curve, amount: npt.ArrayLike | None) -> ThresholdChoice: ...


@dataclass(frozen=True)
class MaxF1Policy(ThresholdPolicy):
    """``max_f1``: the threshold with the highest F1."""

    kind: ClassVar[PolicyKind] = "max_f1"
    syntax: ClassVar[str] = "max_f1"

    @classmethod
    def from_argument(cls, spec: str, argument: str | None) -> MaxF1Policy:
        if argument is not None:
            raise ConfigError(f"threshold policy {spec!r}: max_f1 takes no argument")
        return cls()

    def __str__(self) -> str:
        return "max_f1"

    def _choose(self, curve: _Curve, amount: npt.ArrayLike | None) -> ThresholdChoice:
        return curve.at(int(np.argmax(curve.f1)), self)


@dataclass(frozen=True)
class MaxFBetaPolicy(ThresholdPolicy):
    """``max_fbeta:BETA``: the threshold with the highest F-beta."""

    beta: float
    kind: ClassVar[PolicyKind] = "max_fbeta"
    syntax: ClassVar[str] = "max_fbeta:BETA"

    @classmethod
    def from_argument(cls, spec: str, argument: str | None) -> MaxFBetaPolicy:
        beta = _number(spec, "BETA", cls._required(spec, argument))
        if beta <= 0:
            raise ConfigError(f"threshold policy {spec!r}: BETA must be > 0; got {_num(beta)}")
        return cls(beta)

    def __str__(self) -> str:
        return f"max_fbeta:{_num(self.beta)}"

    def _choose(self, curve: _Curve, amount: npt.ArrayLike | None) -> ThresholdChoice:
        b2 = self.beta**2
        tp = curve.tp
        fbeta = (1 + b2) * tp / ((1 + b2) * tp + b2 * (curve.n_pos - tp) + curve.fp)
        return curve.at(int(np.argmax(fbeta)), self)


@dataclass(frozen=True)
class PrecisionPolicy(ThresholdPolicy):
    """``precision:P``: the highest recall with precision >= ``P``; else ``max_f1``, noted."""

    precision: float
    kind: ClassVar[PolicyKind] = "precision"
    syntax: ClassVar[str] = "precision:P"

    @classmethod
    def from_argument(cls, spec: str, argument: str | None) -> PrecisionPolicy:
        return cls(_fraction(spec, "P", cls._required(spec, argument)))

    def __str__(self) -> str:
        return f"precision:{_num(self.precision)}"

    @property
    def bound(self) -> PolicyBound:
        return PolicyBound("precision", self.precision, at_least=True)

    def _choose(self, curve: _Curve, amount: npt.ArrayLike | None) -> ThresholdChoice:
        ok = curve.precision >= self.precision - 1e-12
        if ok.any():
            return curve.at(int(np.argmax(np.where(ok, curve.recall, -1.0))), self)
        best = int(np.argmax(curve.precision))
        return curve.at(
            int(np.argmax(curve.f1)),
            self,
            feasible=False,
            note=(
                f"threshold policy {self} cannot be met on validation (highest precision "
                f"{curve.precision[best]:.4f} at threshold {curve.thresholds[best]:.6g}); "
                "fell back to max_f1"
            ),
        )


@dataclass(frozen=True)
class RecallPolicy(ThresholdPolicy):
    """``recall:R``: the highest precision among thresholds with recall >= ``R``."""

    recall: float
    kind: ClassVar[PolicyKind] = "recall"
    syntax: ClassVar[str] = "recall:R"

    @classmethod
    def from_argument(cls, spec: str, argument: str | None) -> RecallPolicy:
        return cls(_fraction(spec, "R", cls._required(spec, argument)))

    def __str__(self) -> str:
        return f"recall:{_num(self.recall)}"

    @property
    def bound(self) -> PolicyBound:
        return PolicyBound("recall", self.recall, at_least=True)

    def _choose(self, curve: _Curve, amount: npt.ArrayLike | None) -> ThresholdChoice:
        ok = curve.recall >= self.recall - 1e-12
        return curve.at(int(np.argmax(np.where(ok, curve.precision, -1.0))), self)


@dataclass(frozen=True)
class CostPolicy(ThresholdPolicy):
    """``cost:FP,FN``: the lowest ``FP * false positives + FN * missed frauds``.

    ``fn="amount"``: a missed fraud costs its amount. Flagging nothing is a choice too (a
    threshold just above the highest score), taken when it costs no more.
    """

    fp: float
    fn: float | Literal["amount"]
    kind: ClassVar[PolicyKind] = "cost"
    syntax: ClassVar[str] = "cost:FP,FN (FN a number or 'amount')"

    @classmethod
    def from_argument(cls, spec: str, argument: str | None) -> CostPolicy:
        parts = [p.strip() for p in cls._required(spec, argument).split(",")]
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
        return cls(fp, fn)

    def __str__(self) -> str:
        fn = self.fn if isinstance(self.fn, str) else _num(self.fn)
        return f"cost:{_num(self.fp)},{fn}"

    @property
    def needs_amount(self) -> bool:
        return self.fn == "amount"

    def _choose(self, curve: _Curve, amount: npt.ArrayLike | None) -> ThresholdChoice:
        if isinstance(self.fn, str):
            amt = np.asarray(amount, dtype=np.float64)[curve.order]
            fraud = curve.y_sorted == 1
            caught = np.cumsum(np.where(fraud, amt, 0.0))[curve.last]
            missed = float(amt[fraud].sum()) - caught
            nothing = float(amt[fraud].sum())
        else:
            missed = self.fn * (curve.n_pos - curve.tp)
            nothing = self.fn * curve.n_pos
        cost = self.fp * curve.fp + missed
        j = int(np.argmin(cost))
        top = float(curve.thresholds[0])
        if nothing <= cost[j] and top < 1.0:
            above = float(min(np.nextafter(top, np.inf), 1.0))
            return ThresholdChoice(above, str(self), 0.0, 0.0, 0.0, 0.0)
        return curve.at(j, self)


@dataclass(frozen=True)
class AlertRatePolicy(ThresholdPolicy):
    """``alert_rate:R``: flag at most the top ``R`` fraction; the top tied scores if fewer."""

    rate: float
    kind: ClassVar[PolicyKind] = "alert_rate"
    syntax: ClassVar[str] = "alert_rate:R"
    needs_labels: ClassVar[bool] = False

    @classmethod
    def from_argument(cls, spec: str, argument: str | None) -> AlertRatePolicy:
        return cls(_fraction(spec, "R", cls._required(spec, argument)))

    def __str__(self) -> str:
        return f"alert_rate:{_num(self.rate)}"

    @property
    def bound(self) -> PolicyBound:
        return PolicyBound("alert_rate", self.rate, at_least=False)

    def _choose(self, curve: _Curve, amount: npt.ArrayLike | None) -> ThresholdChoice:
        rate = curve.flagged / curve.s.size
        ok = rate <= self.rate + 1e-12
        if ok.any():
            return curve.at(int(np.flatnonzero(ok)[-1]), self)
        return curve.at(
            0,
            self,
            feasible=False,
            note=(
                f"threshold policy {self} cannot be met on validation: the highest score is "
                f"shared by {rate[0]:.4%} of rows; flagging those"
            ),
        )


@dataclass(frozen=True)
class FixedPolicy(ThresholdPolicy):
    """``fixed:T``: the threshold ``T`` itself."""

    threshold: float
    kind: ClassVar[PolicyKind] = "fixed"
    syntax: ClassVar[str] = "fixed:T"
    needs_labels: ClassVar[bool] = False

    @classmethod
    def from_argument(cls, spec: str, argument: str | None) -> FixedPolicy:
        return cls(_fraction(spec, "T", cls._required(spec, argument), zero_allowed=True))

    def __str__(self) -> str:
        return f"fixed:{_num(self.threshold)}"

    def _choose(self, curve: _Curve, amount: npt.ArrayLike | None) -> ThresholdChoice:
        t, n_pos = self.threshold, curve.n_pos
        hit = curve.s >= t
        n_hit = int(hit.sum())
        tp = float(curve.y[hit].sum())
        return ThresholdChoice(
            threshold=t,
            policy=str(self),
            precision=tp / n_hit if n_hit else 0.0,
            recall=tp / n_pos if n_pos else 0.0,
            f1=2 * tp / (n_hit + n_pos) if n_hit + n_pos else 0.0,
            alert_rate=n_hit / curve.s.size,
        )


POLICIES: dict[str, type[ThresholdPolicy]] = {
    cls.kind: cls
    for cls in (
        MaxF1Policy,
        MaxFBetaPolicy,
        PrecisionPolicy,
        RecallPolicy,
        CostPolicy,
        AlertRatePolicy,
        FixedPolicy,
    )
}
"""Every policy class under its name in a spec."""

_SYNTAX = ", ".join(cls.syntax for cls in POLICIES.values())


def parse_policy(spec: str) -> ThresholdPolicy:
    """Parse a policy spec such as ``"precision:0.9"``; raise ConfigError saying what is wrong.

    Examples
    --------
    >>> parse_policy("alert_rate:0.01")
    AlertRatePolicy(rate=0.01)
    >>> parse_policy("precision:1.5")
    Traceback (most recent call last):
    ...
    stream_detector.errors.ConfigError: threshold policy 'precision:1.5': P must be in (0, 1]; got 1.5
    """
    kind, sep, argument = spec.strip().partition(":")
    cls = POLICIES.get(kind.strip().lower())
    if cls is None:
        raise ConfigError(f"threshold policy {spec!r} is unknown; expected one of {_SYNTAX}")
    return cls.from_argument(spec, argument.strip() if sep else None)


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
    return pol.choose(y_true, scores, amount=amount)
