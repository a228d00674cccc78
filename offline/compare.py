"""Measure every technique and scorer on the user's own data, with the same folds and seed.

Candidates, in the order they run (the order also breaks ties in PR-AUC):

1. the classifier with every technique x model of ``compare.techniques`` x ``compare.models``;
2. the anomaly scorer (IsolationForest; it uses no labels, so no technique applies);
3. the hybrid: with ``compare.hybrid: best`` one, built on the best classifier found (so the
   classifiers run whenever the hybrid is asked for); with ``all`` every technique x model;
4. with ``compare.blend`` (on by default), the **blend**: the mean of the probabilities of the
   best candidate built on logistic regression and the best built on gradient boosting
   (classifier or hybrid, by out-of-fold PR-AUC). It needs no fitting here: on the same folds
   with the same seed, a member refitted gives exactly its candidate's out-of-fold scores, so
   the blend's out-of-fold scores are the mean of its members'.

Each candidate's out-of-fold scores give its PR-AUC (the ranking), ROC-AUC, and the
precision, recall and F1 at the threshold the configured policy picks on those scores.

On large data the candidates are judged by successive halving (:mod:`offline.search`):
every candidate on a stratified sample, the best third on three times as many rows, and the
last rung on every row; the blend and the winner come from that last rung. On small data
there is one rung: every candidate on every row. Every candidate stays in the results,
marked with the rows and the rung it was judged on last.

The winner, which ``train --technique auto`` trains, is chosen among the scorers asked for by
``compare.selection``:

- ``one_se`` (default): the one-standard-error rule (Breiman et al., *Classification and
  Regression Trees*, 1984). A candidate is *close* to the best when its per-fold PR-AUC trails
  the best candidate's by no more than one standard error of their paired per-fold
  differences; the first close candidate in selection order wins. Selection order is the blend
  first, then run order, which goes from the simplest model and the lightest touch on the data
  (logistic regression without a technique) to the most complex (the hybrids). So the blend
  is the default, and a single candidate replaces it only by beating it by more than the
  noise: on large data the standard errors are tiny and the best candidate wins; on small
  data, where the folds disagree and a single winner is often a winner by luck, averaging a
  linear model and a tree ensemble is the robust choice: without the blend this rule trained
  single models that trailed the best plain baseline on the smallest sets of
  ``benchmarks/quality.py`` (held-out PR-AUC; the figures are in the README's Performance
  section).
- ``best``: the highest out-of-fold PR-AUC (the blend competes like any candidate).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from sklearn.metrics import average_precision_score

from offline.config import ClassifierModel, ScorerKind, SelectionRule, Technique, TrainSettings
from offline.data import Dataset
from offline.evaluation import Metrics, evaluate_scores
from offline.models import BlendEstimator, FraudEstimator, SupervisedEstimator, make_estimator
from offline.progress import Progress
from offline.search import Estimate, RungCost, SearchBudget, Subsample, plan_rates, subsample
from offline.thresholds import ThresholdChoice, choose_threshold
from offline.validation import Fold, cross_val_scores, make_folds, validated_rows
from stream_detector.errors import DataError

__all__ = [
    "RANKING_KEYS",
    "Candidate",
    "CandidateResult",
    "Comparison",
    "evaluate_candidate",
    "run_compare",
    "select_winner",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Candidate:
    """One technique x scorer (x classifier model) to try, or a blend of such candidates.

    A blend has ``scorer`` ``"blend"`` and its ``members``; its ``technique`` and ``model`` are
    the members' joined by ``+`` (one technique when they share it).
    """

    technique: Technique | str
    scorer: ScorerKind | Literal["blend"]
    model: ClassifierModel | str | None
    members: tuple[Candidate, ...] = ()

    @classmethod
    def blend(cls, members: tuple[Candidate, ...]) -> Candidate:
        """The blend of ``members`` (classifier or hybrid candidates)."""
        techniques = tuple(dict.fromkeys(m.technique for m in members))
        models = "+".join(str(m.model) for m in members)
        return cls("+".join(techniques), "blend", models, members)

    @property
    def name(self) -> str:
        """Short display name, e.g. ``classifier/hgb smote``."""
        if self.members:
            return "blend(" + " + ".join(m.name for m in self.members) + ")"
        kind = self.scorer if self.model is None else f"{self.scorer}/{self.model}"
        return f"{kind} {self.technique}"

    def estimator(self, settings: TrainSettings) -> FraudEstimator:
        """A fresh, unfitted estimator for this candidate."""
        if self.members:
            parts = [m.estimator(settings) for m in self.members]
            return BlendEstimator(members=[p for p in parts if isinstance(p, SupervisedEstimator)])
        return make_estimator(
            self.scorer,
            model=self.model or settings.model,  # type: ignore[arg-type]
            technique=self.technique,  # type: ignore[arg-type]
            settings=settings,
            random_state=settings.seed,
        )


RANKING_KEYS = ("technique", "scorer", "model", "pr_auc", "roc_auc", "rows", "rung")
"""The fields of a candidate's row that the manifest's ``comparison`` ranking keeps."""


@dataclass(frozen=True)
class CandidateResult:
    """A candidate's out-of-fold scores and metrics, or the reason it could not run."""

    candidate: Candidate
    scores: npt.NDArray[np.float64] | None
    metrics: Metrics | None
    choice: ThresholdChoice | None
    fit_seconds: float
    error: str | None = None
    fold_pr_auc: tuple[float, ...] = ()
    """PR-AUC of each validation fold that holds both classes (NaN for the others)."""
    rows: int = 0
    """Rows the candidate was judged on (all of them unless halving left it on a sample)."""
    rung: int = 0
    """The search's rung where it was judged last (0-based), of ``rungs``."""
    rungs: int = 1

    @property
    def ok(self) -> bool:
        """Whether the candidate ran."""
        return self.metrics is not None

    def row(self) -> dict[str, Any]:
        """One row of ``compare.json``."""
        c, m = self.candidate, self.metrics
        row: dict[str, Any] = {
            "technique": c.technique,
            "scorer": c.scorer,
            "model": c.model,
            "pr_auc": m.pr_auc if m else None,
            "roc_auc": m.roc_auc if m else None,
            "precision": m.precision if m else None,
            "recall": m.recall if m else None,
            "f1": m.f1 if m else None,
            "threshold": m.threshold if m else None,
            "precision_at_k": m.precision_at_k if m else None,
            "fit_seconds": round(self.fit_seconds, 4),
            "rows": self.rows,
            "rung": self.rung + 1,
            "rungs": self.rungs,
        }
        if self.choice is not None and self.choice.note:
            row["threshold_note"] = self.choice.note
        if self.error is not None:
            row["error"] = self.error
        return row


@dataclass(frozen=True)
class Comparison:
    """All candidates' results, best PR-AUC first, on the same folds."""

    results: list[CandidateResult]
    winner: CandidateResult
    folds: list[Fold]
    mask: npt.NDArray[np.bool_]
    data: Dataset
    best: CandidateResult | None = None
    """The highest out-of-fold PR-AUC among the eligible candidates."""
    search: str = "exhaustive"
    """How the candidates were judged, e.g. ``successive halving, 3 rungs``."""
    costs: tuple[RungCost, ...] = ()
    """What each rung of the search cost, first rung first."""

    def rows(self) -> list[dict[str, Any]]:
        """``compare.json``."""
        return [r.row() for r in self.results]

    def verdict(self) -> str:
        """The winner and why, e.g. ``classifier/logistic none (PR-AUC 0.9612)``."""
        w, best = self.winner, self.best
        assert w.metrics is not None
        text = f"{w.candidate.name} (PR-AUC {w.metrics.pr_auc:.4f})"
        if best is not None and best is not w and best.metrics is not None:
            text += (
                f", the first candidate in selection order within one standard error of the "
                f"best, {best.candidate.name} (PR-AUC {best.metrics.pr_auc:.4f})"
            )
        return text


def evaluate_candidate(
    candidate: Candidate,
    data: Dataset | Subsample,
    folds: list[Fold],
    settings: TrainSettings,
    *,
    progress: Progress | None = None,
) -> CandidateResult:
    """Cross-validate one candidate and measure its out-of-fold scores.

    On a :class:`~offline.search.Subsample` the probabilities are mapped back to the data's
    prior and the PR-AUC estimates the data's (see :mod:`offline.search`).
    """
    sample = data if isinstance(data, Subsample) else Subsample(data, 1.0)
    cv = cross_val_scores(
        lambda: candidate.estimator(settings),
        sample.data,
        folds,
        on_fold=progress.fold if progress is not None else None,
    )
    scores = sample.correct(cv.scores) if candidate.scorer != "anomaly" else cv.scores
    return measure(
        candidate,
        scores,
        cv.mask,
        sample.data,
        folds,
        settings,
        cv.mean_fit_seconds,
        weight=sample.weight,
    )


def _pr_auc(
    y: npt.NDArray[np.int64],
    scores: npt.NDArray[np.float64],
    weight: npt.NDArray[np.float64] | None,
) -> float:
    return float(average_precision_score(y, scores, sample_weight=weight))


def measure(
    candidate: Candidate,
    scores: npt.NDArray[np.float64],
    mask: npt.NDArray[np.bool_],
    ds: Dataset,
    folds: list[Fold],
    settings: TrainSettings,
    fit_seconds: float,
    *,
    weight: npt.NDArray[np.float64] | None = None,
) -> CandidateResult:
    """A candidate's metrics, threshold and per-fold PR-AUC from its out-of-fold ``scores``
    (valid where ``mask``); with a per-row ``weight``, its PR-AUCs are weighted."""
    amount = ds.amount[mask] if ds.amount is not None else None
    choice = choose_threshold(settings.threshold_policy, ds.y[mask], scores[mask], amount=amount)
    metrics = evaluate_scores(
        ds.y[mask],
        scores[mask],
        choice.threshold,
        k=settings.evaluation.precision_at_k,
        amount=amount,
    )
    if weight is not None:
        metrics = replace(metrics, pr_auc=_pr_auc(ds.y[mask], scores[mask], weight[mask]))
    per_fold = tuple(
        _pr_auc(ds.y[f.val], scores[f.val], None if weight is None else weight[f.val])
        if 0 < ds.y[f.val].sum() < f.val.size
        else float("nan")
        for f in folds
    )
    return CandidateResult(
        candidate, scores, metrics, choice, fit_seconds, fold_pr_auc=per_fold, rows=ds.n
    )


def blend_of_best(
    results: list[CandidateResult],
    ds: Dataset,
    folds: list[Fold],
    settings: TrainSettings,
) -> CandidateResult | None:
    """The blend of the best logistic and the best gradient-boosting candidate (classifier or
    hybrid, by out-of-fold PR-AUC), measured from their out-of-fold scores; None when either
    kind is missing."""
    members: list[CandidateResult] = []
    arrays: list[npt.NDArray[np.float64]] = []
    for model in ("logistic", "hgb"):
        best = _best(
            [
                r
                for r in results
                if r.candidate.model == model and r.candidate.scorer in ("classifier", "hybrid")
            ]
        )
        if best is None or best.scores is None:
            return None
        members.append(best)
        arrays.append(best.scores)
    scores = np.mean(arrays, axis=0)
    mask = validated_rows(ds.n, folds)
    candidate = Candidate.blend(tuple(m.candidate for m in members))
    seconds = sum(m.fit_seconds for m in members)
    return measure(candidate, scores, mask, ds, folds, settings, seconds)


def _run(
    candidate: Candidate,
    sample: Subsample,
    folds: list[Fold],
    settings: TrainSettings,
    progress: Progress,
    *,
    rung: int,
    rungs: int,
) -> CandidateResult:
    progress.start(candidate.name)
    ds = sample.data
    try:
        result = evaluate_candidate(candidate, sample, folds, settings, progress=progress)
    except DataError as exc:
        progress.done(f"skipped: {exc}")
        return CandidateResult(
            candidate, None, None, None, 0.0, error=str(exc), rows=ds.n, rung=rung, rungs=rungs
        )
    m = result.metrics
    assert m is not None
    progress.done(f"PR-AUC {m.pr_auc:.4f}  ROC-AUC {m.roc_auc:.4f}  {result.fit_seconds:.2f} s/fit")
    return replace(result, rung=rung, rungs=rungs)


def _not_run(
    candidate: Candidate, reason: str, rows: int, rung: int, rungs: int
) -> CandidateResult:
    return CandidateResult(
        candidate,
        None,
        None,
        None,
        0.0,
        error=f"not run: {reason}",
        rows=rows,
        rung=rung,
        rungs=rungs,
    )


def _within_one_se(candidate: CandidateResult, best: CandidateResult) -> bool:
    """Whether ``candidate`` trails ``best`` by at most one standard error of the paired
    per-fold PR-AUC differences (on the same folds)."""
    diff = np.asarray(best.fold_pr_auc) - np.asarray(candidate.fold_pr_auc)
    diff = diff[np.isfinite(diff)]
    if diff.size < 2:
        return candidate is best
    se = float(np.std(diff, ddof=1) / np.sqrt(diff.size))
    return float(diff.mean()) <= se


def select_winner(
    results: list[CandidateResult], rule: SelectionRule = "one_se"
) -> CandidateResult | None:
    """The winner among ``results`` (in selection order): see the module docstring."""
    best = _best(results)
    if best is None or rule == "best":
        return best
    return next(r for r in results if r.ok and (r is best or _within_one_se(r, best)))


def _best(results: list[CandidateResult]) -> CandidateResult | None:
    ok = [r for r in results if r.ok]
    if not ok:
        return None
    # max() keeps the first of equal keys: the run order breaks ties deterministically.
    return max(ok, key=lambda r: (r.metrics.pr_auc, r.metrics.roc_auc))  # type: ignore[union-attr]


def _plan(settings: TrainSettings, wanted: tuple[ScorerKind, ...]) -> tuple[list[Candidate], bool]:
    """The candidates judged from the first rung on, and whether a hybrid is built on the
    best classifier found there (``compare.hybrid: best``)."""
    cfg = settings.compare
    combos = [(t, m) for m in cfg.models for t in cfg.techniques]
    hybrid_best = "hybrid" in wanted and cfg.hybrid == "best"
    plan: list[Candidate] = []
    if "classifier" in wanted or hybrid_best:
        plan += [Candidate(t, "classifier", m) for t, m in combos]
    if "anomaly" in wanted:
        plan.append(Candidate("none", "anomaly", None))
    if "hybrid" in wanted and cfg.hybrid == "all":
        plan += [Candidate(t, "hybrid", m) for t, m in combos]
    return plan, hybrid_best


def _sample_settings(settings: TrainSettings, ds: Dataset, sample: Dataset) -> TrainSettings:
    """The settings of a rung on ``sample`` (of ``ds``): ``compare.sample_folds`` folds and,
    when the gradient boosting of the last rung will stop early (``hgb.early_stopping: auto``
    on more than 10,000 training rows), early stopping on the sample too, as it will be
    trained, if every fold's training rows hold enough positives to set some aside."""
    k = settings.validation.n_splits
    validation = settings.validation.model_copy(
        update={"n_splits": min(settings.compare.sample_folds, k)}
    )
    update: dict[str, Any] = {"validation": validation}
    if settings.hgb.early_stopping == "auto" and ds.n * (k - 1) / k > 10_000:
        folds = make_folds(sample, validation, random_state=settings.seed)
        if min(int(sample.y[f.train].sum()) for f in folds) >= _EARLY_STOPPING_POSITIVES:
            update["hgb"] = settings.hgb.model_copy(update={"early_stopping": True})
    return settings.model_copy(update=update)


_EARLY_STOPPING_POSITIVES = 20
"""Positives a fold's training rows need before a sample's fits stop early (scikit-learn
sets a tenth of them aside, stratified, to decide when)."""


def _promote(
    results: list[CandidateResult],
    wanted: tuple[ScorerKind, ...],
    keep: int,
    blend: bool,
    close_calls: int = 0,
    *,
    simplest: bool = False,
) -> list[Candidate]:
    """The candidates of the next rung, in run order: the ``keep`` best eligible ones by
    PR-AUC, up to ``close_calls`` of the next ones that trail the last kept by no more than
    one standard error (a sample's ranking is noisy), and, with the blend, the best logistic
    and gradient-boosting ones (its members). With ``simplest`` (the one-standard-error
    selection), a hybrid within one standard error of its own classifier goes no further."""
    ok = [r for r in results if r.ok and r.candidate.scorer in wanted]
    ranked = sorted(ok, key=lambda r: -r.metrics.pr_auc)  # type: ignore[union-attr]
    chosen = {r.candidate for r in ranked[:keep]}
    if ranked[:keep] and close_calls:
        cut = ranked[:keep][-1]
        close = [r for r in ranked[keep:] if _within_one_se(r, cut)]
        chosen.update(r.candidate for r in close[:close_calls])
    for r in ok:
        # A hybrid is its classifier plus an anomaly score: it goes on only when the score
        # adds more than the noise (the one-standard-error rule would take the classifier).
        base = Candidate(r.candidate.technique, "classifier", r.candidate.model)
        twin = next((b for b in ok if b.candidate == base), None)
        if simplest and r.candidate.scorer == "hybrid" and twin and _within_one_se(twin, r):
            chosen.discard(r.candidate)
            ok = [b for b in ok if b is not r]
    if blend:
        for model in ("logistic", "hgb"):
            best = _best(
                [r for r in ok if r.candidate.model == model and r.candidate.scorer != "anomaly"]
            )
            if best is not None:
                chosen.add(best.candidate)
    return [r.candidate for r in results if r.candidate in chosen]


def run_compare(
    ds: Dataset,
    settings: TrainSettings,
    *,
    scorers: tuple[ScorerKind, ...] | None = None,
    progress: Progress | None = None,
) -> Comparison:
    """Run the candidates of ``settings.compare`` (or only ``scorers``), each rung on the same
    folds; see :mod:`offline.search` for the rungs and the budget."""
    cfg = settings.compare
    wanted = scorers or cfg.scorers
    alive, hybrid_best = _plan(settings, wanted)
    n_plan = len(alive) + hybrid_best
    rates = plan_rates(
        ds.positives,
        ds.n - ds.positives,
        method=cfg.search,
        min_rows=cfg.min_rows,
        eta=cfg.eta,
        candidates=n_plan,
    )
    counts = [n_plan]
    for _ in rates[1:]:
        counts.append(max(1, math.ceil(counts[-1] / cfg.eta)) + cfg.close_calls + 2 * cfg.blend)
    prog = progress or Progress(0, enabled=False)
    prog.total = sum(counts)
    budget, estimate = SearchBudget(cfg.budget), Estimate()
    done: list[CandidateResult] = []
    final: list[CandidateResult] = []
    folds: list[Fold] = []
    costs: list[RungCost] = []
    rung, spent = 0, False
    while rung < len(rates):
        wall, cpu = time.perf_counter(), time.process_time()
        last = rung == len(rates) - 1
        sample = subsample(ds, rates[rung], random_state=settings.seed)
        sub = sample.data
        used = settings if last else _sample_settings(settings, ds, sub)
        folds = make_folds(sub, used.validation, random_state=settings.seed)
        k = used.validation.n_splits
        prog.stage = f"rung {rung + 1}/{len(rates)}, {sub.n:,} rows" if len(rates) > 1 else ""
        results: list[CandidateResult] = []
        queue = list(alive)
        while queue:
            candidate = queue.pop(0)
            if not last and not budget.allows(k):
                spent = True
                results.append(_not_run(candidate, budget.reason(), sub.n, rung, len(rates)))
            else:
                later = sum(
                    counts[j] * (ds.positives + (ds.n - ds.positives) * rates[j])
                    for j in range(rung + 1, len(rates))
                )
                prog.left = estimate.left(len(queue) * sub.n + round(later))
                started = budget.elapsed
                result = _run(candidate, sample, folds, used, prog, rung=rung, rungs=len(rates))
                estimate.add(rows=sub.n, seconds=budget.elapsed - started)
                budget.spend(k)
                results.append(result)
            if hybrid_best and not queue:
                # The hybrid is built on the best classifier of the first rung.
                hybrid_best = False
                base = _best([r for r in results if r.candidate.scorer == "classifier"])
                if base is not None:
                    hybrid = Candidate(base.candidate.technique, "hybrid", base.candidate.model)
                    alive.append(hybrid)
                    queue.append(hybrid)
        cost = RungCost(
            rows=sub.n,
            candidates=sum(r.ok for r in results),
            seconds=time.perf_counter() - wall,
            cpu_seconds=time.process_time() - cpu,
        )
        costs.append(cost)
        log.info(
            "search rung %d/%d: %d candidates on %d rows in %.1f s (%.1f s CPU)",
            rung + 1,
            len(rates),
            cost.candidates,
            cost.rows,
            cost.seconds,
            cost.cpu_seconds,
        )
        if last:
            final = results
            break
        keep = 1 if spent else max(1, math.ceil(len(results) / cfg.eta))
        alive = _promote(
            results,
            wanted,
            keep,
            cfg.blend,
            0 if spent else cfg.close_calls,
            simplest=cfg.selection == "one_se",
        )
        done += [replace(r, scores=None) for r in results if r.candidate not in alive]
        if not alive:
            final = []
            break
        rung = len(rates) - 1 if spent else rung + 1
        counts[rung] = len(alive)
        prog.total = prog.index + sum(counts[rung:])
    prog.left = None
    eligible = [r for r in final if r.candidate.scorer in wanted]
    if cfg.blend:
        blend = blend_of_best(eligible, ds, folds, settings)
        if blend is not None:
            blend = replace(blend, rung=len(rates) - 1, rungs=len(rates))
            final.append(blend)
            eligible = [blend, *eligible]
    winner = select_winner(eligible, cfg.selection)
    results = final + done
    if winner is None:
        reasons = "; ".join(sorted({r.error or "" for r in results}))
        raise DataError(f"no candidate could be trained on this data: {reasons}")
    ranked = sorted(
        results,
        key=lambda r: (-r.rung, -r.metrics.pr_auc if r.metrics is not None else np.inf),
    )
    mask = validated_rows(ds.n, folds)
    search = "exhaustive" if len(rates) == 1 else f"successive halving, {len(rates)} rungs"
    if spent:
        search += f" ({budget.reason()})"
    return Comparison(
        ranked, winner, folds, mask, ds, best=_best(eligible), search=search, costs=tuple(costs)
    )
