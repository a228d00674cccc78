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

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from sklearn.metrics import average_precision_score

from offline.config import ClassifierModel, ScorerKind, SelectionRule, Technique, TrainSettings
from offline.data import Dataset
from offline.evaluation import Metrics, evaluate_scores
from offline.models import BlendEstimator, FraudEstimator, SupervisedEstimator, make_estimator
from offline.progress import Progress
from offline.thresholds import ThresholdChoice, choose_threshold
from offline.validation import Fold, cross_val_scores, make_folds, validated_rows
from stream_detector.errors import DataError

__all__ = [
    "Candidate",
    "CandidateResult",
    "Comparison",
    "evaluate_candidate",
    "run_compare",
    "select_winner",
]


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
    ds: Dataset,
    folds: list[Fold],
    settings: TrainSettings,
    *,
    progress: Progress | None = None,
) -> CandidateResult:
    """Cross-validate one candidate and measure its out-of-fold scores."""
    cv = cross_val_scores(
        lambda: candidate.estimator(settings),
        ds,
        folds,
        on_fold=progress.fold if progress is not None else None,
    )
    return measure(candidate, cv.scores, cv.mask, ds, folds, settings, cv.mean_fit_seconds)


def measure(
    candidate: Candidate,
    scores: npt.NDArray[np.float64],
    mask: npt.NDArray[np.bool_],
    ds: Dataset,
    folds: list[Fold],
    settings: TrainSettings,
    fit_seconds: float,
) -> CandidateResult:
    """A candidate's metrics, threshold and per-fold PR-AUC from its out-of-fold ``scores``
    (valid where ``mask``)."""
    amount = ds.amount[mask] if ds.amount is not None else None
    choice = choose_threshold(settings.threshold_policy, ds.y[mask], scores[mask], amount=amount)
    metrics = evaluate_scores(
        ds.y[mask],
        scores[mask],
        choice.threshold,
        k=settings.evaluation.precision_at_k,
        amount=amount,
    )
    per_fold = tuple(
        float(average_precision_score(ds.y[f.val], scores[f.val]))
        if 0 < ds.y[f.val].sum() < f.val.size
        else float("nan")
        for f in folds
    )
    return CandidateResult(candidate, scores, metrics, choice, fit_seconds, fold_pr_auc=per_fold)


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
    ds: Dataset,
    folds: list[Fold],
    settings: TrainSettings,
    progress: Progress,
) -> CandidateResult:
    progress.start(candidate.name)
    try:
        result = evaluate_candidate(candidate, ds, folds, settings, progress=progress)
    except DataError as exc:
        progress.done(f"skipped: {exc}")
        return CandidateResult(candidate, None, None, None, 0.0, error=str(exc))
    m = result.metrics
    assert m is not None
    progress.done(f"PR-AUC {m.pr_auc:.4f}  ROC-AUC {m.roc_auc:.4f}  {result.fit_seconds:.2f} s/fit")
    return result


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


def run_compare(
    ds: Dataset,
    settings: TrainSettings,
    *,
    scorers: tuple[ScorerKind, ...] | None = None,
    progress: Progress | None = None,
) -> Comparison:
    """Run the candidates of ``settings.compare`` (or only ``scorers``) on the same folds."""
    cfg = settings.compare
    wanted = scorers or cfg.scorers
    folds = make_folds(ds, settings.validation, random_state=settings.seed)
    combos = [(t, m) for m in cfg.models for t in cfg.techniques]
    run_classifiers = "classifier" in wanted or ("hybrid" in wanted and cfg.hybrid == "best")
    plan = len(combos) * run_classifiers + ("anomaly" in wanted)
    if "hybrid" in wanted:
        plan += 1 if cfg.hybrid == "best" else len(combos)
    prog = progress or Progress(plan, enabled=False)
    prog.total = plan
    results: list[CandidateResult] = []
    if run_classifiers:
        for technique, model in combos:
            results.append(
                _run(Candidate(technique, "classifier", model), ds, folds, settings, prog)
            )
    if "anomaly" in wanted:
        results.append(_run(Candidate("none", "anomaly", None), ds, folds, settings, prog))
    if "hybrid" in wanted:
        hybrids: list[tuple[Technique | str, ClassifierModel | str | None]] = list(combos)
        if cfg.hybrid == "best":
            base = _best([r for r in results if r.candidate.scorer == "classifier"])
            hybrids = [(base.candidate.technique, base.candidate.model)] if base else []
        for base_technique, base_model in hybrids:
            hybrid = Candidate(base_technique, "hybrid", base_model)
            results.append(_run(hybrid, ds, folds, settings, prog))
    eligible = [r for r in results if r.candidate.scorer in wanted]
    if cfg.blend:
        blend = blend_of_best(eligible, ds, folds, settings)
        if blend is not None:
            results.append(blend)
            eligible = [blend, *eligible]
    winner = select_winner(eligible, cfg.selection)
    if winner is None:
        reasons = "; ".join(sorted({r.error or "" for r in results}))
        raise DataError(f"no candidate could be trained on this data: {reasons}")
    ranked = sorted(
        results,
        key=lambda r: -r.metrics.pr_auc if r.metrics is not None else np.inf,
    )
    mask = validated_rows(ds.n, folds)
    return Comparison(ranked, winner, folds, mask, ds, best=_best(eligible))
