"""compare: every candidate on the same folds, ranked by PR-AUC, failures recorded."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

from offline.compare import (
    Candidate,
    CandidateResult,
    evaluate_candidate,
    run_compare,
    select_winner,
)
from offline.config import TrainSettings
from offline.data import Dataset
from offline.evaluation import evaluate_scores
from offline.progress import Progress
from offline.validation import make_folds
from stream_detector.errors import DataError

ROW_KEYS = {"technique", "scorer", "pr_auc", "roc_auc", "precision", "recall", "f1", "fit_seconds"}


@pytest.fixture(scope="module")
def ds(make_data: Callable[..., pd.DataFrame]) -> Dataset:
    frame = make_data(400, seed=5)
    features = ("amount", "hour", "distance", "velocity")
    return Dataset(
        X=frame[list(features)].to_numpy(float),
        y=frame["is_fraud"].to_numpy(),
        features=features,
        label="is_fraud",
        amount=frame["amount"].to_numpy(float),
    )


@pytest.fixture(scope="module")
def settings(make_settings: Callable[..., TrainSettings]) -> TrainSettings:
    return make_settings(
        compare={"techniques": ["none", "smote"], "models": ["logistic", "hgb"]},
    )


def test_compare_ranks_every_candidate(ds: Dataset, settings: TrainSettings) -> None:
    out = io.StringIO()
    best_rule = settings.model_copy(
        update={"compare": settings.compare.model_copy(update={"selection": "best"})}
    )
    cmp = run_compare(ds, best_rule, progress=Progress(0, stream=out))
    names = [r.candidate.name for r in cmp.results]
    # 2 techniques x 2 models, the anomaly scorer, one hybrid on the best classifier, the blend.
    assert len(names) == 7
    assert len(set(names)) == 7
    assert sum(r.candidate.scorer == "hybrid" for r in cmp.results) == 1
    assert sum(r.candidate.scorer == "blend" for r in cmp.results) == 1
    pr = [r.metrics.pr_auc for r in cmp.results if r.metrics]
    assert pr == sorted(pr, reverse=True)
    assert cmp.winner is cmp.results[0]
    best_classifier = max(
        (r for r in cmp.results if r.candidate.scorer == "classifier"),
        key=lambda r: r.metrics.pr_auc,  # type: ignore[union-attr]
    )
    hybrid = next(r for r in cmp.results if r.candidate.scorer == "hybrid")
    assert (hybrid.candidate.technique, hybrid.candidate.model) == (
        best_classifier.candidate.technique,
        best_classifier.candidate.model,
    )
    for row in cmp.rows():
        assert set(row) >= ROW_KEYS
    # Metrics are those of the out-of-fold scores.
    for r in cmp.results:
        assert r.scores is not None
        assert r.metrics is not None
        assert r.metrics.pr_auc == pytest.approx(
            average_precision_score(ds.y[cmp.mask], r.scores[cmp.mask])
        )
    lines = out.getvalue().splitlines()
    assert len(lines) == 6  # the blend is not fitted: it averages its members' scores
    assert lines[0].startswith("[1/6] classifier/logistic none  PR-AUC ")


def test_blend_averages_the_best_logistic_and_the_best_hgb_candidate(
    ds: Dataset, settings: TrainSettings
) -> None:
    cmp = run_compare(ds, settings)
    blend = next(r for r in cmp.results if r.candidate.scorer == "blend")
    ok = [r for r in cmp.results if r.ok and r.candidate.scorer in ("classifier", "hybrid")]
    expected = []
    for model in ("logistic", "hgb"):
        best = max(
            (r for r in ok if r.candidate.model == model),
            key=lambda r: (r.metrics.pr_auc, r.metrics.roc_auc),  # type: ignore[union-attr]
        )
        expected.append(best.candidate)
    assert blend.candidate.members == tuple(expected)
    assert blend.candidate.model == "logistic+hgb"
    # Its out-of-fold scores are exactly those of the blend refitted on the same folds.
    folds = make_folds(ds, settings.validation, random_state=settings.seed)
    refit = evaluate_candidate(blend.candidate, ds, folds, settings)
    assert refit.scores is not None
    assert blend.scores is not None
    np.testing.assert_allclose(blend.scores[cmp.mask], refit.scores[cmp.mask], rtol=0, atol=1e-12)
    # First in selection order: with one_se it wins unless beaten by more than the noise.
    assert cmp.winner is select_winner([blend, *[r for r in cmp.results if r is not blend]])
    off = settings.model_copy(
        update={"compare": settings.compare.model_copy(update={"blend": False})}
    )
    assert not any(r.candidate.scorer == "blend" for r in run_compare(ds, off).results)


def test_a_blend_needs_both_kinds_of_member(ds: Dataset, settings: TrainSettings) -> None:
    only_logistic = settings.model_copy(
        update={"compare": settings.compare.model_copy(update={"models": ("logistic",)})}
    )
    cmp = run_compare(ds, only_logistic)
    assert not any(r.candidate.scorer == "blend" for r in cmp.results)


def test_same_folds_and_seed_give_the_same_ranking(ds: Dataset, settings: TrainSettings) -> None:
    a = run_compare(ds, settings)
    b = run_compare(ds, settings)
    strip = [{k: v for k, v in row.items() if k != "fit_seconds"} for row in a.rows()]
    assert strip == [{k: v for k, v in row.items() if k != "fit_seconds"} for row in b.rows()]


def test_candidate_scores_match_a_single_evaluation(ds: Dataset, settings: TrainSettings) -> None:
    cmp = run_compare(ds, settings, scorers=("classifier",))
    folds = make_folds(ds, settings.validation, random_state=settings.seed)
    single = evaluate_candidate(Candidate("smote", "classifier", "hgb"), ds, folds, settings)
    listed = next(r for r in cmp.results if r.candidate == Candidate("smote", "classifier", "hgb"))
    assert single.scores is not None
    assert listed.scores is not None
    np.testing.assert_array_equal(single.scores, listed.scores)


def test_scorers_filter_limits_the_winner(ds: Dataset, settings: TrainSettings) -> None:
    cmp = run_compare(ds, settings, scorers=("hybrid",))
    assert cmp.winner.candidate.scorer == "hybrid"
    assert not any(r.candidate.scorer == "anomaly" for r in cmp.results)
    anomaly_only = run_compare(ds, settings, scorers=("anomaly",))
    assert [r.candidate for r in anomaly_only.results] == [Candidate("none", "anomaly", None)]


def test_failing_candidates_are_skipped_and_reported(
    ds: Dataset, make_settings: Callable[..., TrainSettings]
) -> None:
    y = np.zeros(ds.n, dtype=np.int64)
    y[np.arange(0, 400, 40)] = 1  # 10 positives: about 6-7 per training fold
    few = Dataset(X=ds.X, y=y, features=ds.features, label="y")
    settings = make_settings(
        resampling={"k_neighbors": 8},
        compare={
            "techniques": ["class_weight", "smote"],
            "models": ["logistic"],
            "scorers": ["classifier"],
        },
    )
    cmp = run_compare(few, settings)
    skipped = [r for r in cmp.results if not r.ok]
    assert [r.candidate.technique for r in skipped] == ["smote"]
    assert skipped[0].error is not None
    assert "smote with k_neighbors=8 needs at least 9" in skipped[0].error
    row = cmp.rows()[-1]
    assert row["pr_auc"] is None
    assert "needs at least 9" in row["error"]
    assert cmp.winner.candidate.technique == "class_weight"
    only_smote = make_settings(
        resampling={"k_neighbors": 8},
        compare={"techniques": ["smote"], "models": ["logistic"], "scorers": ["classifier"]},
    )
    with pytest.raises(DataError, match="no candidate could be trained on this data"):
        run_compare(few, only_smote)


def result(name: str, pooled: float, folds: list[float]) -> CandidateResult:
    technique, model = name.split("/")
    metrics = evaluate_scores([0, 1], [0.0, 1.0], 0.5)
    return CandidateResult(
        Candidate(technique, "classifier", model),  # type: ignore[arg-type]
        None,
        replace(metrics, pr_auc=pooled),
        None,
        0.0,
        fold_pr_auc=tuple(folds),
    )


def test_one_standard_error_rule() -> None:
    simple = result("none/logistic", 0.90, [0.95, 0.85, 0.90, 0.80, 1.00])
    complex_ = result("smote/hgb", 0.93, [0.97, 0.90, 0.86, 0.92, 1.00])
    # Paired differences 0.02, 0.05, -0.04, 0.12, 0.0: mean 0.03, SE 0.0269... -> 0.03 > SE.
    diff = np.array([0.02, 0.05, -0.04, 0.12, 0.0])
    assert diff.mean() > diff.std(ddof=1) / np.sqrt(5)
    assert select_winner([simple, complex_], "one_se") is complex_
    # A noisier comparison: the simple model is within one SE and runs first, so it wins.
    noisy = result("smote/hgb", 0.93, [1.00, 0.70, 0.99, 0.95, 0.95])
    assert select_winner([simple, noisy], "one_se") is simple
    assert select_winner([simple, noisy], "best") is noisy
    # Order matters: the candidate that runs first is taken as the simpler one.
    assert select_winner([noisy, simple], "one_se") is noisy
    assert select_winner([], "one_se") is None
