"""The logistic link between log-odds and probabilities, computed without overflow.

Scorers that produce probabilities do it through :func:`sigmoid`; the hybrid scorer reads a
classifier's probability back as log-odds with :func:`clipped_logit`.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = ["clipped_logit", "sigmoid", "sigmoid_of"]

Array = npt.NDArray[np.float64]


def sigmoid(z: Array) -> Array:
    """The logistic function ``1 / (1 + exp(-z))``, accurate and warning-free for any ``z``.

    Examples
    --------
    >>> sigmoid(np.array([-800.0, 0.0, 2.0, 800.0]))
    array([0.        , 0.5       , 0.88079708, 1.        ])
    """
    return np.exp(-np.logaddexp(0.0, -z))


def sigmoid_of(z: float) -> float:
    """:func:`sigmoid` of one finite float, in plain Python (for one-row paths).

    It agrees with :func:`sigmoid` to a few units in the last place.

    >>> sigmoid_of(2.0), sigmoid_of(-800.0)
    (0.8807970779778823, 0.0)
    """
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def clipped_logit(p: Array, eps: float) -> Array:
    """Log-odds ``log(p / (1 - p))`` of ``p`` clipped to ``[eps, 1 - eps]``.

    Examples
    --------
    >>> clipped_logit(np.array([0.0, 0.5, 0.880797077977882]), 1e-6).round(4)
    array([-13.8155,   0.    ,   2.    ])
    """
    q = np.clip(p, eps, 1.0 - eps)
    return np.log(q) - np.log1p(-q)
