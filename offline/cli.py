"""The offline subcommands: ``train``, ``compare`` and ``evaluate``.

They are registered through the ``stream_detector.commands`` entry points
(``train = "offline.cli:TRAIN"`` etc.). Errors a user can cause are raised as
:class:`~stream_detector.errors.StreamDetectorError` subclasses; the ``stream-detector`` main
turns them into one line on stderr and exit code 2.

Every subcommand's parser is built whenever the command line starts, so this module imports
scikit-learn, imbalanced-learn and matplotlib only when one of its commands runs.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, ClassVar

from offline.config import MODELS, SCORERS, TECHNIQUES, TrainSettings
from offline.progress import Progress
from stream_detector.command import Command
from stream_detector.errors import ConfigError

__all__ = ["COMPARE", "EVALUATE", "TRAIN", "CompareCommand", "EvaluateCommand", "TrainCommand"]


def _csv_choice(allowed: tuple[str, ...], what: str) -> Any:
    def parse(text: str) -> tuple[str, ...]:
        values = tuple(v.strip() for v in text.split(",") if v.strip())
        bad = [v for v in values if v not in allowed]
        if bad or not values:
            raise argparse.ArgumentTypeError(
                f"{what} must be a comma-separated subset of {','.join(allowed)}; got {text!r}"
            )
        return values

    return parse


def _data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, metavar="FILE", help="CSV or Parquet file")
    parser.add_argument("--label", required=True, metavar="COL", help="the 0/1 label column")
    parser.add_argument("--config", metavar="FILE", help="YAML settings (configs/train.yaml)")
    parser.add_argument(
        "--missing",
        choices=["refuse", "impute_median"],
        help="missing feature values: refuse the file, or fill with medians",
    )


def _fit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threshold-policy",
        metavar="SPEC",
        help="max_f1 | max_fbeta:B | precision:P | recall:R | cost:FP,FN | alert_rate:R | fixed:T",
    )
    parser.add_argument("--seed", type=int, help="seed of every random component")
    parser.add_argument("--folds", type=int, metavar="K", help="validation folds")
    parser.add_argument(
        "--split",
        choices=["auto", "stratified", "time"],
        help="validation split (auto: time-ordered when there is a timestamp)",
    )
    parser.add_argument(
        "--gap-days",
        type=float,
        metavar="D",
        help="time splits: leave out training rows D days before validation",
    )
    parser.add_argument(
        "--sampling-strategy",
        metavar="R",
        help="minority/majority ratio after resampling, or 'auto' (1:1)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Flags given on the command line, as a nested settings mapping."""
    flat = {
        ("technique",): getattr(args, "technique", None),
        ("scorer",): getattr(args, "scorer", None),
        ("model",): getattr(args, "model_name", None),
        ("threshold_policy",): getattr(args, "threshold_policy", None),
        ("seed",): getattr(args, "seed", None),
        ("data", "missing"): getattr(args, "missing", None),
        ("validation", "n_splits"): getattr(args, "folds", None),
        ("validation", "method"): getattr(args, "split", None),
        ("validation", "gap_days"): getattr(args, "gap_days", None),
        ("resampling", "sampling_strategy"): getattr(args, "sampling_strategy", None),
        ("evaluation", "precision_at_k"): getattr(args, "k", None),
        ("compare", "techniques"): getattr(args, "techniques", None),
        ("compare", "scorers"): getattr(args, "scorers", None),
        ("compare", "models"): getattr(args, "models", None),
    }
    nested: dict[str, Any] = {}
    for path, value in flat.items():
        if value is None:
            continue
        node = nested
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return nested


def _progress(args: argparse.Namespace) -> Progress:
    return Progress(0, enabled=not args.quiet)


class TrainCommand(Command):
    """``stream-detector train``."""

    name: ClassVar[str] = "train"
    help: ClassVar[str] = "train a model on a labelled CSV/Parquet file and write its bundle"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        _data_arguments(parser)
        parser.add_argument("--out", required=True, metavar="DIR", help="bundle directory")
        parser.add_argument(
            "--technique",
            choices=[*TECHNIQUES, "auto"],
            help="imbalance technique; auto trains the winner of compare",
        )
        parser.add_argument("--scorer", choices=SCORERS, help="classifier, anomaly or hybrid")
        parser.add_argument(
            "--model",
            dest="model_name",
            choices=MODELS,
            help="the classifier: logistic (default) or hgb",
        )
        _fit_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        from offline.train import train_model

        settings = TrainSettings.load(args.config, _overrides(args))
        scorers = (args.scorer,) if args.scorer and settings.technique == "auto" else None
        if settings.technique == "auto" and args.model_name:
            settings = settings.model_copy(
                update={
                    "compare": settings.compare.model_copy(update={"models": (args.model_name,)})
                }
            )
        result = train_model(
            args.data, args.label, args.out, settings, scorers=scorers, progress=_progress(args)
        )
        m = result.manifest
        metrics = m.metrics
        print(
            f"trained {result.candidate.name} on {result.data.n} rows "
            f"({result.data.positives} positive, prior {m.class_prior_train:.4%})"
        )
        print(f"validation: PR-AUC {metrics['pr_auc']:.4f}  ROC-AUC {metrics['roc_auc']:.4f}")
        print(
            f"threshold {m.threshold:.6g} ({m.threshold_policy}): precision "
            f"{metrics['precision']:.4f}  recall {metrics['recall']:.4f}"
        )
        note = result.result.choice.note if result.result.choice else None
        if note:
            print(f"warning: {note}")
        print(f"bundle {m.model_version} written to {args.out}")
        return 0


class CompareCommand(Command):
    """``stream-detector compare``."""

    name: ClassVar[str] = "compare"
    help: ClassVar[str] = "compare every technique and scorer on the same folds; name the winner"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        _data_arguments(parser)
        parser.add_argument("--report", metavar="DIR", help="write compare.json and report.md")
        parser.add_argument(
            "--techniques",
            type=_csv_choice(TECHNIQUES, "--techniques"),
            metavar="LIST",
            help="comma-separated subset of techniques",
        )
        parser.add_argument(
            "--scorers",
            type=_csv_choice(SCORERS, "--scorers"),
            metavar="LIST",
            help="comma-separated subset of scorers",
        )
        parser.add_argument(
            "--models",
            type=_csv_choice(MODELS, "--models"),
            metavar="LIST",
            help="comma-separated subset of classifier models",
        )
        _fit_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        from offline.compare import run_compare
        from offline.data import load_dataset
        from offline.report import write_compare_report

        settings = TrainSettings.load(args.config, _overrides(args))
        ds = load_dataset(args.data, args.label, settings.data, spec=settings.features)
        cmp = run_compare(ds, settings, progress=_progress(args))
        w = max([32, *(len(r.candidate.name) for r in cmp.results)])
        header = (
            f"{'rank':>4}  {'candidate':<{w}} {'PR-AUC':>7} {'ROC-AUC':>7} "
            f"{'prec':>6} {'recall':>6} {'F1':>6} {'s/fit':>7}"
        )
        print(header)
        for i, r in enumerate(cmp.results, start=1):
            m = r.metrics
            if m is None:
                print(f"{i:>4}  {r.candidate.name:<{w}} skipped: {r.error}")
                continue
            print(
                f"{i:>4}  {r.candidate.name:<{w}} {m.pr_auc:>7.4f} {m.roc_auc:>7.4f} "
                f"{m.precision:>6.3f} {m.recall:>6.3f} {m.f1:>6.3f} {r.fit_seconds:>7.2f}"
            )
        print(f"winner: {cmp.verdict()}")
        if args.report:
            write_compare_report(args.report, cmp)
            print(f"report written to {args.report}")
        return 0


class EvaluateCommand(Command):
    """``stream-detector evaluate``."""

    name: ClassVar[str] = "evaluate"
    help: ClassVar[str] = "measure a trained bundle on labelled data"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--model", required=True, metavar="DIR", help="model bundle")
        _data_arguments(parser)
        parser.add_argument("--report", metavar="DIR", help="write metrics.json and report.md")
        parser.add_argument("--k", type=int, metavar="K", help="precision@k (default 100)")

    def run(self, args: argparse.Namespace) -> int:
        if args.k is not None and args.k < 1:
            raise ConfigError(f"--k must be >= 1; got {args.k}")
        from offline.evaluation import evaluate_bundle
        from offline.report import write_evaluation_report

        settings = TrainSettings.load(args.config, _overrides(args))
        ev = evaluate_bundle(
            args.model,
            args.data,
            args.label,
            settings=settings.data,
            k=settings.evaluation.precision_at_k,
        )
        m = ev.metrics
        print(
            f"{m.n} rows, {m.positives} positive; threshold {m.threshold:.6g} "
            f"({ev.bundle.manifest.threshold_policy})"
        )
        print(
            f"PR-AUC {m.pr_auc:.4f}  ROC-AUC {m.roc_auc:.4f}  precision {m.precision:.4f}  "
            f"recall {m.recall:.4f}  F1 {m.f1:.4f}  precision@{m.k} {m.precision_at_k:.4f}"
        )
        if m.amount_caught is not None:
            print(f"fraud amount caught {m.amount_caught:.2f}, missed {m.amount_missed:.2f}")
        if "held" in ev.policy:
            verdict = "held" if ev.policy["held"] else "did NOT hold"
            print(f"policy {ev.policy['policy']} {verdict}: achieved {ev.policy['achieved']:.4f}")
        if args.report:
            write_evaluation_report(args.report, ev)
            print(f"report written to {args.report}")
        sys.stdout.flush()
        return 0


TRAIN = TrainCommand()
COMPARE = CompareCommand()
EVALUATE = EvaluateCommand()
