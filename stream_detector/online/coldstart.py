"""Cold start: an online anomaly scorer for ``serve`` before any model is trained.

:class:`HalfSpaceTreesScorer` wraps River's ``HalfSpaceTrees`` (Tan, Ting & Liu 2011) behind
the :class:`~stream_detector.scoring.Scorer` interface, so the decision step, explanations and
the service treat it like a trained scorer: a batch of feature rows in, scores in [0, 1] out,
higher meaning more anomalous. Unlike a compiled scorer it learns as the stream goes:

- features are min-max scaled online (the range of the events learned so far, values beyond
  it clipped to [0, 1], which is the space half-space trees cut);
- the service calls :meth:`HalfSpaceTreesScorer.learn` only with events that passed validation
  and were decided and committed, never with dead letters;
- until ``warmup`` events were learned the scorer is warming up, and the service flags nothing.

:func:`cold_start_bundle` puts it in a :class:`~stream_detector.bundle.ModelBundle` with a
manifest that says what it is (``scorer: halfspacetrees``, no files). It is never written to
disk: the scorer's state lives in the process.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from stream_detector.bundle import FORMAT_VERSION, Manifest, ModelBundle
from stream_detector.errors import BundleError, ConfigError
from stream_detector.scoring import Scorer, check_rows

__all__ = ["COLD_START_SCORER", "HalfSpaceTreesScorer", "cold_start_bundle"]

COLD_START_SCORER = "halfspacetrees"
"""The manifest's ``scorer`` (and ``stream_detector_model_info``'s) for the cold-start model."""


class HalfSpaceTreesScorer(Scorer):
    """River's HalfSpaceTrees as a scorer that learns online.

    Parameters
    ----------
    n_features
        Number of feature columns.
    n_trees, height, window_size
        HalfSpaceTrees' parameters: trees, their depth, and the events per reference window.
    warmup
        Events to learn before :attr:`warming_up` turns false.
    random_state
        Seed of the trees' random cuts.

    Attributes
    ----------
    n_learned_ : int
        Events learned.
    low_, high_ : ndarray of shape (n_features,)
        The range of each feature among the events learned.
    mean_ : ndarray of shape (n_features,)
        Mean of each feature among the events learned: the reference of explanations.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.metrics import roc_auc_score
    >>> rng = np.random.default_rng(0)
    >>> normal = rng.normal(0, 1, size=(3_000, 2))
    >>> scorer = HalfSpaceTreesScorer(n_features=2, n_trees=10, height=8, window_size=250,
    ...                               warmup=1_000, random_state=0)
    >>> scorer.warming_up
    True
    >>> scorer.learn(normal)
    >>> scorer.warming_up, scorer.n_learned_
    (False, 3000)
    >>> test = np.vstack([rng.normal(0, 1, size=(200, 2)), rng.normal(4, 1, size=(20, 2))])
    >>> truth = np.r_[np.zeros(200), np.ones(20)]
    >>> scores = scorer.score_samples(test)
    >>> bool(((scores >= 0) & (scores <= 1)).all()), round(roc_auc_score(truth, scores), 2)
    (True, 0.99)
    """

    allow_nan = False

    def __init__(
        self,
        *,
        n_features: int,
        n_trees: int = 25,
        height: int = 10,
        window_size: int = 500,
        warmup: int = 1_000,
        random_state: int | None = 42,
    ) -> None:
        if n_features < 1 or n_trees < 1 or height < 1 or window_size < 1 or warmup < 1:
            raise ConfigError(
                "cold start needs n_features, n_trees, height, window_size and warmup >= 1; "
                f"got {n_features}, {n_trees}, {height}, {window_size}, {warmup}"
            )
        # River's anomaly package imports scikit-learn (about a second); only cold start pays it.
        from river.anomaly import HalfSpaceTrees

        self.n_features = n_features
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.warmup = warmup
        self.random_state = random_state
        self._trees = HalfSpaceTrees(
            n_trees=n_trees,
            height=height,
            window_size=window_size,
            limits={j: (0.0, 1.0) for j in range(n_features)},
            seed=random_state,
        )
        self.n_learned_ = 0
        self.low_ = np.full(n_features, np.inf)
        self.high_ = np.full(n_features, -np.inf)
        self.mean_ = np.zeros(n_features)

    @property
    def warming_up(self) -> bool:
        """True until ``warmup`` events were learned."""
        return self.n_learned_ < self.warmup

    def _scale(self, X: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        if self.n_learned_ == 0:
            return np.full_like(X, 0.5)
        span = self.high_ - self.low_
        scaled = np.divide(X - self.low_, span, out=np.full_like(X, 0.5), where=span > 0)
        return np.clip(scaled, 0.0, 1.0)

    def _score_samples(self, X: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        score_one = self._trees.score_one
        scaled = self._scale(X)
        out = np.fromiter(
            (score_one(dict(enumerate(row))) for row in scaled.tolist()),
            dtype=np.float64,
            count=scaled.shape[0],
        )
        return np.clip(out, 0.0, 1.0)

    def learn(self, X: npt.ArrayLike) -> None:
        """Learn validated events, in order: extend the feature ranges, then the trees."""
        rows = check_rows(X, self.n_features)
        learn_one = self._trees.learn_one
        for row in rows:
            np.minimum(self.low_, row, out=self.low_)
            np.maximum(self.high_, row, out=self.high_)
            self.n_learned_ += 1
            self.mean_ += (row - self.mean_) / self.n_learned_
            learn_one(dict(enumerate(self._scale(row[None, :])[0].tolist())))

    def to_payload(self) -> tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]:
        raise BundleError("the cold-start scorer learns in the process and is never saved")

    @classmethod
    def from_payload(cls, spec: Mapping[str, Any], arrays: Mapping[str, npt.ArrayLike]) -> Self:
        raise BundleError("the cold-start scorer cannot be loaded from a bundle")


# Set after the class exists, so the scorer registry (bundle loading) never lists it.
HalfSpaceTreesScorer.kind = COLD_START_SCORER


def cold_start_bundle(
    *,
    features: Sequence[str],
    threshold: float,
    class_prior: float,
    n_trees: int = 25,
    height: int = 10,
    window_size: int = 500,
    warmup: int = 1_000,
    random_state: int | None = 42,
) -> ModelBundle:
    """A bundle, in memory only, around a fresh :class:`HalfSpaceTreesScorer`.

    Its reference for explanations is the scorer's running mean of the events learned.

    >>> bundle = cold_start_bundle(features=["amount"], threshold=0.9, class_prior=0.01)
    >>> bundle.manifest.scorer, bundle.threshold, bundle.model_version.startswith("coldstart-")
    ('halfspacetrees', 0.9, True)
    """
    scorer = HalfSpaceTreesScorer(
        n_features=len(features),
        n_trees=n_trees,
        height=height,
        window_size=window_size,
        warmup=warmup,
        random_state=random_state,
    )
    created = datetime.now(UTC)
    try:
        manifest = Manifest.model_validate(
            {
                "format_version": FORMAT_VERSION,
                "model_version": f"coldstart-{created:%Y%m%dT%H%M%SZ}",
                "created_at": created.isoformat(),
                "features": list(features),
                "label": "unknown",
                "technique": "none",
                "scorer": COLD_START_SCORER,
                "threshold": threshold,
                "threshold_policy": f"fixed:{threshold:g}",
                "class_prior_train": class_prior,
                "metrics": {},
                "files": {},
                "versions": {"river": version("river")},
                "warmup": warmup,
            }
        )
    except ValueError as exc:
        raise ConfigError(f"invalid cold-start settings: {exc}") from exc
    # The bundle reads the reference at explanation time: share the scorer's running mean.
    return ModelBundle(manifest, scorer, scorer.mean_)
