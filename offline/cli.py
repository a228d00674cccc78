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
from typing import Any, ClassVar, get_args

from offline.config import (
    MODELS,
    SCORERS,
    TECHNIQUES,
    CalibrationChoice,
    MissingPolicy,
    SplitMethod,
    TrainSettings,
)
from offline.progress import Progress
from stream_detector.command import Command
from stream_detector.errors import ConfigError
from stream_detector.flags import (
    SettingFlag,
    add_config_flag,
    add_replay_flags,
    add_setting_flags,
    csv_choice,
    setting_overrides,
)

__all__ = [
    "COMPARE",
    "EVALUATE",
    "TRAIN",
    "CompareCommand",
    "EvaluateCommand",
    "TrainCommand",
    "policy_value",
]


def policy_value(text: str) -> str:
    """An argparse ``type`` for ``--threshold-policy``: checked as it is parsed, canonical.

    >>> policy_value(" Precision:0.90")
    'precision:0.9'
    >>> policy_value("precision:1.5")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: threshold policy 'precision:1.5': P must be in (0, 1]; got 1.5
    """
    from offline.thresholds import parse_policy

    try:
        return str(parse_policy(text))
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_DATA_FLAGS = (
    SettingFlag(
        "--missing",
        "data.missing",
        choices=get_args(MissingPolicy),
        help="missing feature values: refuse the file, or fill with medians",
    ),
)
_FIT_FLAGS = (
    SettingFlag(
        "--threshold-policy",
        "threshold_policy",
        type=policy_value,
        metavar="SPEC",
        help="max_f1 | max_fbeta:B | precision:P | recall:R | cost:FP,FN | alert_rate:R | fixed:T",
    ),
    SettingFlag("--seed", "seed", type=int, help="seed of every random component"),
    SettingFlag("--folds", "validation.n_splits", type=int, metavar="K", help="validation folds"),
    SettingFlag(
        "--split",
        "validation.method",
        choices=get_args(SplitMethod),
        help="validation split (auto: time-ordered when there is a timestamp)",
    ),
    SettingFlag(
        "--gap-days",
        "validation.gap_days",
        type=float,
        metavar="D",
        help="time splits: leave out training rows D days before validation",
    ),
    SettingFlag(
        "--sampling-strategy",
        "resampling.sampling_strategy",
        metavar="R",
        help="minority/majority ratio after resampling, or 'auto' (1:1)",
    ),
)
_TRAIN_FLAGS = (
    SettingFlag(
        "--technique",
        "technique",
        choices=[*TECHNIQUES, "auto"],
        help="imbalance technique; auto trains the winner of compare",
    ),
    SettingFlag("--scorer", "scorer", choices=SCORERS, help="classifier, anomaly or hybrid"),
    SettingFlag(
        "--model",
        "model",
        dest="model_name",
        choices=MODELS,
        help="the classifier: logistic (default) or hgb",
    ),
    SettingFlag(
        "--calibration",
        "calibration",
        choices=get_args(CalibrationChoice),
        help="turn scores into probabilities: auto (default), platt, isotonic or none",
    ),
)
_COMPARE_FLAGS = (
    SettingFlag(
        "--techniques",
        "compare.techniques",
        type=csv_choice(TECHNIQUES, "--techniques"),
        metavar="LIST",
        help="comma-separated subset of techniques",
    ),
    SettingFlag(
        "--scorers",
        "compare.scorers",
        type=csv_choice(SCORERS, "--scorers"),
        metavar="LIST",
        help="comma-separated subset of scorers",
    ),
    SettingFlag(
        "--models",
        "compare.models",
        type=csv_choice(MODELS, "--models"),
        metavar="LIST",
        help="comma-separated subset of classifier models",
    ),
)
_EVALUATE_FLAGS = (
    SettingFlag(
        "--k", "evaluation.precision_at_k", type=int, metavar="K", help="precision@k (default 100)"
    ),
)
_SETTING_FLAGS = (
    *_DATA_FLAGS,
    *_FIT_FLAGS,
    *_TRAIN_FLAGS,
    *_COMPARE_FLAGS,
    *_EVALUATE_FLAGS,
)
"""Every flag of the offline commands that overrides a training setting; a command adds its
own and reads them all (a flag it lacks is never given)."""


def _data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, metavar="FILE", help="CSV or Parquet file")
    parser.add_argument("--label", required=True, metavar="COL", help="the 0/1 label column")
    add_config_flag(parser, "YAML settings (configs/train.yaml)")
    add_setting_flags(parser, _DATA_FLAGS)


def _fit_arguments(parser: argparse.ArgumentParser) -> None:
    add_setting_flags(parser, _FIT_FLAGS)
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings flags given on the command line, as a nested settings mapping."""
    return setting_overrides(args, _SETTING_FLAGS)


def _progress(args: argparse.Namespace) -> Progress:
    return Progress(0, enabled=not args.quiet)


class TrainCommand(Command):
    """``stream-detector train``."""

    name: ClassVar[str] = "train"
    help: ClassVar[str] = "train a model on a labelled CSV/Parquet file and write its bundle"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        _data_arguments(parser)
        parser.add_argument("--out", required=True, metavar="DIR", help="bundle directory")
        add_setting_flags(parser, _TRAIN_FLAGS)
        parser.add_argument(
            "--from-compare",
            metavar="DIR",
            help="with --technique auto: train the winner of the compare --report DIR "
            "already run on this data, instead of comparing again",
        )
        _fit_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        from offline.train import train_model

        settings = TrainSettings.load(args.config, _overrides(args))
        if args.from_compare and settings.technique != "auto":
            raise ConfigError(
                f"--from-compare trains the winner of a comparison: it needs --technique auto; "
                f"got technique {settings.technique!r}"
            )
        scorers = (args.scorer,) if args.scorer and settings.technique == "auto" else None
        if settings.technique == "auto" and args.model_name:
            settings = settings.model_copy(
                update={
                    "compare": settings.compare.model_copy(update={"models": (args.model_name,)})
                }
            )
        progress = _progress(args)
        try:
            result = train_model(
                args.data,
                args.label,
                args.out,
                settings,
                scorers=scorers,
                progress=progress,
                from_compare=args.from_compare,
            )
        finally:
            progress.clear()  # the last step shown, before the result or the error line
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
        add_setting_flags(parser, _COMPARE_FLAGS)
        _fit_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        from offline.compare import run_compare
        from offline.compare_record import write_compare_record
        from offline.data import load_dataset
        from offline.report import write_compare_report

        settings = TrainSettings.load(args.config, _overrides(args))
        ds = load_dataset(args.data, args.label, settings.data, spec=settings.features)
        cmp = run_compare(ds, settings, progress=_progress(args))
        w = max([32, *(len(r.candidate.name) for r in cmp.results)])
        header = (
            f"{'rank':>4}  {'candidate':<{w}} {'PR-AUC':>7} {'ROC-AUC':>7} "
            f"{'prec':>6} {'recall':>6} {'F1':>6} {'s/fit':>7} {'rows':>10} {'rung':>5}"
        )
        print(header)
        for i, r in enumerate(cmp.results, start=1):
            m = r.metrics
            judged = f"{r.rows:>10,} {f'{r.rung + 1}/{r.rungs}':>5}"
            if m is None:
                print(f"{i:>4}  {r.candidate.name:<{w}} skipped: {r.error}  ({judged.strip()})")
                continue
            print(
                f"{i:>4}  {r.candidate.name:<{w}} {m.pr_auc:>7.4f} {m.roc_auc:>7.4f} "
                f"{m.precision:>6.3f} {m.recall:>6.3f} {m.f1:>6.3f} {r.fit_seconds:>7.2f} "
                f"{judged}"
            )
        print(f"winner: {cmp.verdict()}")
        print(f"search: {cmp.search}")
        if args.report:
            write_compare_report(args.report, cmp)
            write_compare_record(args.report, cmp)
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
        add_replay_flags(
            parser,
            "behavioural features: the data's labels as JSON Lines, each with the time it "
            "became known (as score --labels)",
        )
        add_setting_flags(parser, _EVALUATE_FLAGS)

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
            history=args.history,
            labels=args.labels,
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
        validation = ev.bundle.manifest.metrics.get("alert_rate")
        beside = f" (validation {validation:.4%})" if validation is not None else ""
        print(
            f"alert rate {m.alert_rate:.4%}{beside}  Brier {m.brier:.5f}  log loss "
            f"{m.log_loss:.5f}  ECE {m.ece:.5f}"
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
