"""Reasons for a score: which features pushed it up, by occlusion.

The contribution of feature ``j`` to the score of row ``x`` is how much the score would drop if
that feature were typical: ``score(x) - score(x with x_j replaced by reference_j)``, where the
reference is the feature's training median. It needs nothing but the scorer, so it explains
every kind alike, and it reads in the units of the score: a contribution of 0.3 means the score
would fall by 0.3 were this feature at its median. Contributions of features are not additive
(two features may each matter only together), and a feature already at its median contributes 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from stream_detector.errors import DataError
from stream_detector.scoring.base import Scorer, check_rows

__all__ = ["top_reasons"]


def top_reasons(
    scorer: Scorer,
    X: npt.ArrayLike,
    reference: npt.ArrayLike,
    features: Sequence[str],
    top: int = 3,
) -> list[list[dict[str, Any]]]:
    """The features that raise each row's score most, with their contributions.

    Parameters
    ----------
    scorer
        Any scorer.
    X
        Rows, shape ``(n_rows, n_features)``.
    reference
        Typical value of each feature (training medians), shape ``(n_features,)``.
    features
        Feature names, in column order.
    top
        At most this many reasons per row.

    Returns
    -------
    list of list of dict
        For each row, up to ``top`` dicts ``{"feature": name, "value": x_j, "contribution":
        score(x) - score(x with x_j = reference_j)}``, largest contribution first; features whose
        contribution is not positive are left out. All rows are scored in one scorer call.

    Raises
    ------
    DataError
        If ``X``, ``reference`` and ``features`` do not match the scorer's features.

    Examples
    --------
    >>> from stream_detector.scoring import LinearScorer
    >>> scorer = LinearScorer(coef=[2.0, -1.0, 0.0], intercept=0.0)
    >>> reasons = top_reasons(scorer, [[1.0, -1.0, 5.0]], [0.0, 0.0, 0.0], ["a", "b", "c"])
    >>> [(r["feature"], r["value"], round(r["contribution"], 4)) for r in reasons[0]]
    [('a', 1.0, 0.2215), ('b', -1.0, 0.0718)]
    """
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
    n = rows.shape[0]
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
