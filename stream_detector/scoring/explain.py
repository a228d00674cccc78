"""Reasons for a score: the features that moved it most, with contributions that add up.

:func:`top_reasons` ranks the features of each row by the size of their contribution
(see :mod:`stream_detector.scoring.attribution`): exact for linear models, path-dependent
TreeSHAP for tree ensembles, carried through the link of hybrids and blends. The contributions
of all the features add up to the score minus the baseline score, in the units of the score
(``contribution``) and in its log-odds (``contribution_logit``); a negative contribution pulled
the score down. Reasons list the largest ones only.

:func:`occlusion_reasons` is the former method, kept for scorers compiled without the node
covers TreeSHAP needs: how much the score drops when one feature is set to its median. Its
contributions do not add up, and a tree model's score collapses whichever feature is replaced.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from stream_detector.errors import DataError
from stream_detector.scoring.base import Scorer, check_rows

__all__ = ["occlusion_reasons", "top_reasons"]


def _check(
    scorer: Scorer, X: npt.ArrayLike, reference: npt.ArrayLike, features: Sequence[str], top: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ValueError(f"top must be an integer >= 1; got {top!r}")
    d = scorer.n_features
    rows = check_rows(X, d, allow_nan=scorer.allow_nan)
    ref = np.asarray(reference, dtype=np.float64)
    if ref.shape != (d,) or len(features) != d:
        raise DataError(
            f"expected a reference of {d} values and {d} feature names; "
            f"got shape {ref.shape} and {len(features)} names"
        )
    return rows, ref


def top_reasons(
    scorer: Scorer,
    X: npt.ArrayLike,
    reference: npt.ArrayLike,
    features: Sequence[str],
    top: int = 3,
) -> list[list[dict[str, Any]]]:
    """The features that moved each row's score most, with contributions that add up.

    Parameters
    ----------
    scorer
        Any scorer; one that cannot attribute (:attr:`Scorer.can_attribute`) is explained by
        :func:`occlusion_reasons` instead.
    X
        Rows, shape ``(n_rows, n_features)``.
    reference
        Typical value of each feature (training medians), shape ``(n_features,)``: the
        baseline row of linear models.
    features
        Feature names, in column order.
    top
        At most this many reasons per row.

    Returns
    -------
    list of list of dict
        For each row, up to ``top`` dicts ``{"feature": name, "value": x_j, "contribution":
        c_j, "contribution_logit": l_j}``, the largest ``|c_j|`` first; features that
        contribute nothing are left out. ``c_j`` is in the units of the score and ``l_j`` in
        its log-odds; over all the features they add up to the score, and to its log-odds,
        minus those of the baseline.

    Raises
    ------
    DataError
        If ``X``, ``reference`` and ``features`` do not match the scorer's features.

    Examples
    --------
    >>> from stream_detector.scoring import LinearScorer
    >>> scorer = LinearScorer(coef=[2.0, -1.0, 0.0], intercept=0.0)
    >>> reasons = top_reasons(scorer, [[1.0, 1.0, 5.0]], [0.0, 0.0, 0.0], ["a", "b", "c"])
    >>> [(r["feature"], r["value"], round(r["contribution"], 4), r["contribution_logit"])
    ...  for r in reasons[0]]
    [('a', 1.0, 0.4621, 2.0), ('b', 1.0, -0.2311, -1.0)]
    """
    rows, ref = _check(scorer, X, reference, features, top)
    if rows.shape[0] == 0:
        return []
    if not scorer.can_attribute:
        return occlusion_reasons(scorer, rows, ref, features, top)
    attribution = scorer._attribute(rows, ref)
    scores = attribution.scores()  # one monotone map each way, not two
    logits = attribution if attribution.space == "logit" else scores.logits()
    order = np.argsort(-np.abs(scores.phi), axis=1, kind="stable")[:, :top]
    reasons: list[list[dict[str, Any]]] = []
    for i, row_order in enumerate(order.tolist()):
        reasons.append(
            [
                {
                    "feature": features[j],
                    "value": float(rows[i, j]),
                    "contribution": float(scores.phi[i, j]),
                    "contribution_logit": float(logits.phi[i, j]),
                }
                for j in row_order
                if scores.phi[i, j] != 0.0
            ]
        )
    return reasons


def occlusion_reasons(
    scorer: Scorer,
    X: npt.ArrayLike,
    reference: npt.ArrayLike,
    features: Sequence[str],
    top: int = 3,
) -> list[list[dict[str, Any]]]:
    """The features whose replacement by their reference lowers each row's score most.

    The contribution of feature ``j`` to the score of row ``x`` is
    ``score(x) - score(x with x_j replaced by reference_j)``: it needs nothing but the scorer,
    reads in the units of the score, and is not additive (two features may each matter only
    together); a feature already at its reference contributes 0. All rows are scored in one
    scorer call.

    Returns
    -------
    list of list of dict
        For each row, up to ``top`` dicts ``{"feature", "value", "contribution"}``, largest
        contribution first; features whose contribution is not positive are left out.

    Examples
    --------
    >>> from stream_detector.scoring import LinearScorer
    >>> scorer = LinearScorer(coef=[2.0, -1.0, 0.0], intercept=0.0)
    >>> reasons = occlusion_reasons(scorer, [[1.0, -1.0, 5.0]], [0.0, 0.0, 0.0], ["a", "b", "c"])
    >>> [(r["feature"], r["value"], round(r["contribution"], 4)) for r in reasons[0]]
    [('a', 1.0, 0.2215), ('b', -1.0, 0.0718)]
    """
    rows, ref = _check(scorer, X, reference, features, top)
    n, d = rows.shape
    if n == 0:
        return []
    # Block i holds row i, then row i with each feature in turn set to its reference.
    batch = np.repeat(rows[:, None, :], d + 1, axis=1)
    columns = np.arange(d)
    batch[:, columns + 1, columns] = ref
    scores = scorer.score_samples(batch.reshape(n * (d + 1), d)).reshape(n, d + 1)
    contribution = scores[:, :1] - scores[:, 1:]
    order = np.argsort(-contribution, axis=1, kind="stable")[:, :top]
    reasons: list[list[dict[str, Any]]] = []
    for i in range(n):
        reasons.append(
            [
                {
                    "feature": features[j],
                    "value": float(rows[i, j]),
                    "contribution": float(contribution[i, j]),
                }
                for j in order[i].tolist()
                if contribution[i, j] > 0.0
            ]
        )
    return reasons
