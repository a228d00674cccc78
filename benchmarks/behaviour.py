"""Detection with behavioural features against the raw fields, on the simulator's data.

The README's typical session, run twice on the same data, technique and scorer: once with the
behavioural features of ``configs/train.yaml`` (per-card and per-terminal windows, calendar),
once with the raw numeric fields only (the same file, ``data.exclude`` of the key columns):

1. ``simulate --preset demo`` gives the history (days 0-41) and the live days after it;
2. ``train`` on the history (cross-validated in time order: the validation precision, recall
   and PR-AUC the manifest records);
3. ``score`` of the live days with ``--history`` and ``--labels`` (labels a minute after their
   events): the decisions ``serve`` makes (the same code; the test suite checks they agree to
   1e-9), whose live precision and recall at the bundle's threshold and average precision are
   printed against the validation figures.

Usage: ``python benchmarks/behaviour.py [--technique auto] [--live-days 41] [--model hgb]``
(prints one table; the ratio live/validation is the drift the issue measured).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import orjson
import yaml
from sklearn.metrics import average_precision_score

from stream_detector.cli import main

REPO = Path(__file__).resolve().parents[1]


def _run(*argv: str) -> None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(list(argv))
    if code != 0:
        raise SystemExit(f"{' '.join(argv[:1])} failed ({code}): {err.getvalue()[-2000:]}")


def _variant(
    work: Path, name: str, config: dict, args: argparse.Namespace, truth: dict[str, int]
) -> dict[str, float]:
    cfg = work / f"{name}.yaml"
    cfg.write_text(yaml.safe_dump(config), encoding="utf-8")
    model = work / f"model-{name}"
    train = ["train", "--data", str(work / "history.csv"), "--label", "is_fraud"]
    train += ["--out", str(model), "--config", str(cfg), "--technique", args.technique]
    if args.model:
        train += ["--model", args.model]
    _run(*train)
    manifest = json.loads((model / "manifest.json").read_text())
    out = work / f"decisions-{name}.jsonl"
    score = ["score", "--model", str(model), "--input", str(work / "live.jsonl")]
    score += ["--output", str(out)]
    if "features" in config:
        score += ["--history", str(work / "history.csv"), "--labels", str(work / "labels.jsonl")]
    _run(*score)
    decisions = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    y = np.array([truth[d["event_id"]] for d in decisions])
    s = np.array([d["score"] for d in decisions])
    flagged = np.array([d["flagged"] for d in decisions])
    tp = int((flagged & (y == 1)).sum())
    metrics = manifest["metrics"]
    return {
        "candidate": f"{manifest['technique']} {manifest['scorer']} {manifest.get('model', '')}",
        "features": len(manifest["features"]),
        "val_pr_auc": metrics["pr_auc"],
        "val_precision": metrics["precision"],
        "val_recall": metrics["recall"],
        "live_pr_auc": float(average_precision_score(y, s)),
        "live_precision": tp / max(int(flagged.sum()), 1),
        "live_recall": tp / max(int(y.sum()), 1),
        "live_events": len(decisions),
        "live_frauds": int(y.sum()),
    }


def main_(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--technique", default="auto")
    parser.add_argument("--model", default=None, help="logistic | hgb (default: the config's)")
    parser.add_argument("--live-days", type=int, default=41)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    features = yaml.safe_load((REPO / "configs" / "train.yaml").read_text())["features"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        _run(
            "simulate",
            "--output",
            str(work / "history.csv"),
            "--preset",
            "demo",
            "--seed",
            str(args.seed),
        )
        _run(
            "simulate",
            "--output",
            str(work / "live.jsonl"),
            "--preset",
            "demo",
            "--seed",
            str(args.seed),
            "--start-day",
            "42",
            "--days",
            str(args.live_days),
            "--labels-output",
            str(work / "labels.jsonl"),
            "--label-delay",
            "60",
        )
        truth = {
            d["event_id"]: d["label"]
            for d in map(orjson.loads, (work / "labels.jsonl").read_bytes().splitlines())
        }
        rows = {
            "behavioural": _variant(work, "behavioural", {"features": features}, args, truth),
            "raw fields": _variant(
                work, "raw", {"data": {"exclude": ["customer_id", "terminal_id"]}}, args, truth
            ),
        }
    print(f"technique {args.technique}, live days 42-{41 + args.live_days}, seed {args.seed}")
    head = f"{'features':<12} {'model':<34} {'n':>3} {'val AP':>7} {'val P':>6} {'val R':>6}"
    print(
        head + f" {'live AP':>7} {'live P':>6} {'live R':>6} {'P live/val':>10} {'R live/val':>10}"
    )
    for name, r in rows.items():
        print(
            f"{name:<12} {r['candidate']:<34} {r['features']:>3} {r['val_pr_auc']:>7.3f} "
            f"{r['val_precision']:>6.3f} {r['val_recall']:>6.3f} {r['live_pr_auc']:>7.3f} "
            f"{r['live_precision']:>6.3f} {r['live_recall']:>6.3f} "
            f"{r['live_precision'] / max(r['val_precision'], 1e-9):>10.2f} "
            f"{r['live_recall'] / max(r['val_recall'], 1e-9):>10.2f}"
        )
    b, raw = rows["behavioural"], rows["raw fields"]
    print(
        f"live AP behavioural / raw fields: {b['live_pr_auc'] / raw['live_pr_auc']:.2f} "
        f"({rows['raw fields']['live_events']} live events, {raw['live_frauds']} frauds)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main_())
