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
    _promote,
    _sample_settings,
    evaluate_candidate,
    run_compare,
    select_winner,
)
from offline.config import BudgetSettings, TrainSettings
from offline.data import Dataset
from offline.evaluation import evaluate_scores
from offline.progress import Progress
from offline.validation import make_folds, validated_rows
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


def hybrid(technique: str, model: str, pooled: float, folds: list[float]) -> CandidateResult:
    r = result(f"{technique}/{model}", pooled, folds)
    return replace(r, candidate=Candidate(technique, "hybrid", model))  # type: ignore[arg-type]


def test_promotion_takes_close_calls_up_to_the_cap() -> None:
    ranked = [
        result("none/hgb", 0.90, [0.90, 0.91, 0.89]),
        result("smote/hgb", 0.80, [0.81, 0.79, 0.80]),  # the cut when one is kept
        result("adasyn/hgb", 0.79, [0.70, 0.88, 0.79]),  # within one SE of the cut
        result("class_weight/hgb", 0.78, [0.69, 0.87, 0.78]),  # within too
        result("random_under/hgb", 0.50, [0.50, 0.51, 0.49]),  # far behind
    ]
    wanted = ("classifier", "hybrid")

    def names(close_calls: int) -> list[str]:
        kept = _promote(ranked, wanted, 2, False, close_calls)  # type: ignore[arg-type]
        return [c.technique for c in kept]

    assert names(0) == ["none", "smote"]
    assert names(1) == ["none", "smote", "adasyn"]
    assert names(5) == ["none", "smote", "adasyn", "class_weight"]


def test_a_hybrid_no_better_than_its_classifier_goes_no_further() -> None:
    base = result("class_weight/hgb", 0.80, [0.80, 0.82, 0.78])
    tied = hybrid("class_weight", "hgb", 0.81, [0.79, 0.84, 0.80])
    ahead = hybrid("class_weight", "hgb", 0.90, [0.90, 0.92, 0.88])
    other = result("none/logistic", 0.60, [0.60, 0.61, 0.59])
    wanted = ("classifier", "hybrid")
    for one_se, hyb, kept in (
        (True, tied, {"classifier", "blend member"}),
        (False, tied, {"classifier", "hybrid", "blend member"}),
        (True, ahead, {"classifier", "hybrid", "blend member"}),
    ):
        chosen = _promote([base, other, hyb], wanted, 2, True, simplest=one_se)  # type: ignore[arg-type]
        got = {c.scorer if c.model == "hgb" else "blend member" for c in chosen}
        assert got == kept, (one_se, hyb.metrics)


def test_a_sample_is_judged_with_its_folds_and_early_stopping_as_all_rows_will_be(
    settings: TrainSettings,
) -> None:
    auto = settings.model_copy(
        update={
            "hgb": settings.hgb.model_copy(update={"early_stopping": "auto"}),
            "compare": settings.compare.model_copy(update={"sample_folds": 2}),
        }
    )

    def rows(n: int, positives: int = 200) -> Dataset:
        y = np.zeros(n, dtype=np.int64)
        y[:positives] = 1
        return Dataset(X=np.zeros((n, 1)), y=y, features=("a",), label="y")

    # 3 folds: all rows train on 2/3 of them; above 10,000, scikit-learn's "auto" stops early.
    sample = rows(1_000)
    big = _sample_settings(auto, rows(15_003), sample)
    small = _sample_settings(auto, rows(15_000), sample)
    assert big.hgb.early_stopping is True
    assert small.hgb.early_stopping == "auto"
    assert big.validation.n_splits == small.validation.n_splits == 2
    # Too few positives in a fold's training rows to set some aside: as configured.
    few = _sample_settings(auto, rows(15_003), rows(1_000, positives=30))
    assert few.hgb.early_stopping == "auto"
    fixed = _sample_settings(settings, rows(15_003), sample)  # early_stopping: false is kept
    assert fixed.hgb.early_stopping is False


def test_rungs_on_samples_use_their_folds_and_record_their_cost(
    larger: Dataset, settings: TrainSettings
) -> None:
    cmp = run_compare(larger, halving(settings, sample_folds=2))
    k = settings.validation.n_splits
    assert len(cmp.costs) == 3
    assert cmp.costs[-1].rows == larger.n
    single = [r for r in cmp.results if r.ok and r.candidate.scorer != "blend"]
    for r in single:
        assert len(r.fold_pr_auc) == (k if r.rung == 2 else 2)
        assert r.rows == cmp.costs[r.rung].rows
    for j, cost in enumerate(cmp.costs):
        assert cost.candidates == sum(r.rung >= j for r in single)
        assert cost.seconds > 0
        assert cost.cpu_seconds > 0
    assert cmp.costs[0].candidates == 6


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


@pytest.fixture(scope="module")
def larger(make_data: Callable[..., pd.DataFrame]) -> Dataset:
    frame = make_data(3000, rate=0.05, seed=11)
    features = ("amount", "hour", "distance", "velocity")
    return Dataset(
        X=frame[list(features)].to_numpy(float),
        y=frame["is_fraud"].to_numpy(),
        features=features,
        label="is_fraud",
    )


def halving(settings: TrainSettings, **compare: object) -> TrainSettings:
    update = {"search": "halving", "min_rows": 100, **compare}
    return settings.model_copy(update={"compare": settings.compare.model_copy(update=update)})


def test_halving_judges_every_candidate_and_the_winner_on_all_rows(
    larger: Dataset, settings: TrainSettings
) -> None:
    out = io.StringIO()
    cmp = run_compare(larger, halving(settings), progress=Progress(0, stream=out))
    assert cmp.search == "successive halving, 3 rungs"
    single = [r for r in cmp.results if r.candidate.scorer != "blend"]
    # 2 techniques x 2 models, the anomaly scorer, one hybrid: each listed once.
    assert len({r.candidate for r in single}) == len(single) == 6
    last = [r for r in cmp.results if r.rung == 2]
    assert {r.rows for r in last} == {larger.n}
    assert all(r.scores is not None for r in last)
    earlier = [r for r in cmp.results if r.rung < 2]
    assert earlier
    assert all(r.rows < larger.n and r.scores is None for r in earlier)
    assert cmp.winner in last
    keys = [(-r.rung, -r.metrics.pr_auc) for r in cmp.results if r.metrics is not None]
    assert keys == sorted(keys)
    for row in cmp.rows():
        assert {row["rung"], row["rungs"]} <= {1, 2, 3}
        assert row["rows"] > 0
    # The last rung is the exhaustive search's: same folds, same scores.
    folds = make_folds(larger, settings.validation, random_state=settings.seed)
    np.testing.assert_array_equal(cmp.mask, validated_rows(larger.n, folds))
    for r in last:
        if r.candidate.scorer == "blend":
            continue
        alone = evaluate_candidate(r.candidate, larger, folds, settings)
        assert alone.scores is not None
        np.testing.assert_array_equal(r.scores, alone.scores)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[1/")
    assert " rung 1/3, " in lines[0]
    assert lines[-1].startswith(f"[{len(lines)}/{len(lines)}] rung 3/3, {larger.n:,} rows: ")
    assert "left)" in lines[-2]


def test_halving_promotes_the_best_third_and_the_blend_members(
    larger: Dataset, settings: TrainSettings
) -> None:
    cmp = run_compare(larger, halving(settings))
    first = [r for r in cmp.results if r.ok and r.rung >= 0 and r.candidate.scorer != "blend"]
    # Every candidate reached the second rung's sample only if it ranked in the best third of
    # the first rung or is the best of its model there.
    second_or_later = {r.candidate for r in cmp.results if r.rung >= 1}
    assert 2 <= len(second_or_later) < len(first)
    blend = next(r for r in cmp.results if r.candidate.scorer == "blend")
    assert set(blend.candidate.members) <= {r.candidate for r in cmp.results if r.rung == 2}


def test_small_data_is_searched_exhaustively(ds: Dataset, settings: TrainSettings) -> None:
    auto = run_compare(ds, settings)
    exhaustive = run_compare(
        ds,
        settings.model_copy(
            update={"compare": settings.compare.model_copy(update={"search": "exhaustive"})}
        ),
    )
    assert auto.search == exhaustive.search == "exhaustive"
    strip = [{k: v for k, v in row.items() if k != "fit_seconds"} for row in auto.rows()]
    assert strip == [{k: v for k, v in r.items() if k != "fit_seconds"} for r in exhaustive.rows()]
    assert {(r.rows, r.rung, r.rungs) for r in auto.results} == {(ds.n, 0, 1)}


def test_a_fit_budget_sends_the_best_so_far_to_all_rows(
    larger: Dataset, settings: TrainSettings
) -> None:
    k = settings.validation.n_splits
    cmp = run_compare(larger, halving(settings, budget=BudgetSettings(fits=3 * k)))
    assert cmp.search == f"successive halving, 3 rungs (budget of {3 * k} fits spent)"
    not_run = [r for r in cmp.results if r.error and r.error.startswith("not run")]
    # The fourth classifier, the anomaly scorer and the hybrid (on the best classifier).
    assert [r.error for r in not_run] == [f"not run: budget of {3 * k} fits spent"] * 3
    assert {r.rows for r in not_run} == {not_run[0].rows}
    assert not_run[0].rows < larger.n
    run = [r for r in cmp.results if r.ok and r.candidate.scorer != "blend"]
    assert len(run) == 3  # the first three classifiers; the rest waited for the budget
    # Straight from the first rung to all rows; the winner is judged on every row.
    assert {r.rung for r in cmp.results} == {0, 2}
    assert cmp.winner.rows == larger.n
    assert cmp.winner.rung == 2
