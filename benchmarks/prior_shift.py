"""Prior shift: the fraud rate moves from 1% to 5% mid-stream; how do the threshold modes fare?

Simulated card transactions (``stream_detector.simulate``, the handbook's parameters):

1. 120 days are simulated and their transactions split at random in three: one part is the
   history, legitimate rows subsampled to a 1% fraud rate, on which a gradient boosting model
   is trained (default features) and put in a bundle whose scores are calibrated at that 1%
   prior. Its threshold is the cost-optimal one for probabilities,
   ``t = c_fp / (c_fp + c_fn)`` (``--cost-fn``, with ``c_fp = 1``);
2. the two other parts give the live stream: a first phase at 1% fraud, then a second at 5%,
   each in time order. All three parts come from the same days, so the class-conditional
   distributions p(x | y) are the same everywhere and only the prior moves: the setting prior
   correction (Saerens et al. 2002, Elkan 2001) is for, isolated from concept drift;
3. the stream goes through what ``serve`` runs, minus the broker: events are JSON messages
   decided by :class:`~stream_detector.decide.Decider` in batches, with the threshold and mode
   from :class:`~stream_detector.online.OnlineMonitor` before each batch, and the monitor
   learning from each batch after it. Labels arrive ``--label-delay`` events after their event,
   as label messages.

For each mode (``fixed``, ``prior_corrected``, ``alert_rate``) it prints the precision and
recall of alerts before and after the shift, the flagged fraction, and the expected cost per
event ``(c_fp * FP + c_fn * FN) / n``. The reference row ``bayes (true prior)`` applies the
cost-optimal rule with the true prior of each phase known: the best any threshold rule on these
scores can do in expectation. ``after*`` counts only the events decided once the labels of the
new phase had reached the prior estimate (``--label-delay`` + the prior's window).

    python benchmarks/prior_shift.py [--events 40000] [--label-delay 5000] [--cost-fn 10]
                                     [--budget 0.02] [--batch-size 500] [--seed 0]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import orjson
from sklearn.ensemble import HistGradientBoostingClassifier

from stream_detector.bundle import load_bundle, write_bundle
from stream_detector.config import DetectorSettings, ThresholdMode
from stream_detector.decide import Decider
from stream_detector.messages import Message, Source
from stream_detector.online import OnlineMonitor, prior_corrected
from stream_detector.scoring import GradientBoostingScorer
from stream_detector.simulate import DEFAULT_FEATURES, Transactions, TransactionSimulator

Array = npt.NDArray[np.float64]
MODES: tuple[ThresholdMode, ...] = ("fixed", "prior_corrected", "alert_rate")


def at_rate(tx: Transactions, rate: float, n: int, rng: np.random.Generator) -> Transactions:
    """``n`` rows with ``rate`` fraud, drawn without replacement, in time order."""
    y = tx["is_fraud"]
    n_fraud = round(n * rate)
    fraud, legit = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    if n_fraud > fraud.size or n - n_fraud > legit.size:
        raise SystemExit(f"not enough rows for {n} events at {rate:.0%}; lower --events")
    idx = np.r_[
        rng.choice(fraud, n_fraud, replace=False), rng.choice(legit, n - n_fraud, replace=False)
    ]
    return tx.take(np.sort(idx))


def train_bundle(history: Transactions, out: str, *, threshold: float, seed: int) -> None:
    X = np.column_stack([history[f] for f in DEFAULT_FEATURES])
    y = history["is_fraud"]
    model = HistGradientBoostingClassifier(random_state=seed).fit(X, y)
    prior = float(y.mean())
    write_bundle(
        out,
        scorer=GradientBoostingScorer.from_sklearn(model),
        features=DEFAULT_FEATURES,
        label="is_fraud",
        technique="none",
        scorer_name="classifier",
        threshold=threshold,
        threshold_policy=f"cost-optimal:{threshold:.4f}",
        class_prior_train=prior,
        metrics={},
        reference=np.median(X, axis=0),
        extra={"class_prior_validation": prior},
    )


@dataclass
class Run:
    flagged: npt.NDArray[np.bool_]
    scores: Array
    prior_at_end: list[float]
    monitor: OnlineMonitor


def run_mode(
    mode: ThresholdMode,
    bundle_dir: str,
    stream: Transactions,
    args: argparse.Namespace,
    shift_at: int,
) -> Run:
    """The stream through a Decider and an OnlineMonitor, as ``serve`` runs them."""
    settings = DetectorSettings.load(
        overrides={
            "threshold_mode": mode,
            "online": {"alert_rate": {"budget": args.budget}},
        }
    )
    bundle = load_bundle(bundle_dir)
    decider = Decider(bundle, reasons_top=3)
    clock = [0.0]  # drift detections are stamped with the event index, not the wall clock
    monitor = OnlineMonitor(settings, bundle, clock=lambda: clock[0])
    events = [orjson.dumps(e) for e in stream.iter_events()]
    labels = [orjson.dumps(lab) for lab in stream.iter_labels(delay_ms=0)]
    n = len(events)
    flagged = np.zeros(n, dtype=bool)
    scores = np.zeros(n)
    labelled, priors = 0, []
    for start in range(0, n, args.batch_size):
        stop = min(start + args.batch_size, n)
        clock[0] = float(start)
        batch = [Message(None, events[i], Source("events", 0, i)) for i in range(start, stop)]
        decider.threshold, decider.threshold_mode = monitor.threshold_for_batch()
        outcome = decider.decide(batch)
        flagged[start:stop] = [d["flagged"] for d in outcome.decisions]
        scores[start:stop] = outcome.scores
        due = max(stop - args.label_delay, 0)  # labels of events up to here have arrived
        label_batch = monitor.parse_labels(
            [Message(None, labels[i], Source("labels", 0, i)) for i in range(labelled, due)]
        )
        labelled = due
        monitor.observe(outcome, label_batch)
        if start < shift_at <= stop or stop == n:
            priors.append(monitor.prior.get())
    return Run(flagged, scores, priors, monitor)


def cost_per_event(
    flagged: npt.NDArray[np.bool_], y: npt.NDArray[np.int64], cost_fn: float
) -> float:
    """``(c_fp * FP + c_fn * FN) / n`` with ``c_fp = 1``."""
    fp = int((flagged & (y == 0)).sum())
    fn = int((~flagged & (y == 1)).sum())
    return (fp + cost_fn * fn) / len(y)


def quality(flagged: npt.NDArray[np.bool_], y: npt.NDArray[np.int64], cost_fn: float) -> str:
    tp = int((flagged & (y == 1)).sum())
    precision = tp / int(flagged.sum()) if flagged.any() else float("nan")
    recall = tp / int(y.sum()) if y.any() else float("nan")
    cost = cost_per_event(flagged, y, cost_fn)
    return f"{precision:6.3f} {recall:6.3f} {flagged.mean():8.4f} {cost:8.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=40_000, help="events per phase")
    parser.add_argument("--label-delay", type=int, default=5_000, help="events before a label")
    parser.add_argument("--cost-fn", type=float, default=10.0, help="cost of a missed fraud")
    parser.add_argument("--budget", type=float, default=0.02, help="alert_rate: share flagged")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # drift detections are summarised at the end
    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    days = TransactionSimulator.from_preset("book", random_state=args.seed).generate(n_days=120)
    part = rng.permutation(len(days)) % 3  # the same days everywhere: only the prior moves
    history = days.take(part == 0)
    history = at_rate(history, 0.01, int(history.n_frauds / 0.01), rng)
    before = at_rate(days.take(part == 1), 0.01, args.events, rng)
    after = at_rate(days.take(part == 2), 0.05, args.events, rng)
    stream = Transactions.concatenate([before, after])
    y = stream["is_fraud"]
    threshold = 1.0 / (1.0 + args.cost_fn)
    trained_at = history.fraud_rate  # the prior the model's scores are calibrated at

    with tempfile.TemporaryDirectory() as tmp:
        bundle_dir = f"{tmp}/model"
        train_bundle(history, bundle_dir, threshold=threshold, seed=args.seed)
        runs = {mode: run_mode(mode, bundle_dir, stream, args, args.events) for mode in MODES}
    settings = DetectorSettings.load()
    settle = args.events + args.label_delay + settings.online.prior.window_size

    a, b, b_late = slice(0, args.events), slice(args.events, None), slice(settle, None)
    print(
        f"history: {len(history)} rows at {history.fraud_rate:.2%} fraud; stream: "
        f"{args.events} events at 1% then {args.events} at 5%; labels {args.label_delay} "
        f"events late; batches of {args.batch_size}"
    )
    print(
        f"cost: false positive 1, missed fraud {args.cost_fn:g} -> cost-optimal threshold "
        f"t = {threshold:.4f} on calibrated probabilities; alert_rate budget {args.budget:.1%}"
    )
    print(
        f"prior: {settings.online.prior.window} window of {settings.online.prior.window_size} "
        f"labels, strength {settings.online.prior.strength:g}; after* = events from "
        f"{settle} on"
    )
    print()
    header = f"{'mode':<20} {'phase':<7} {'prec':>6} {'recall':>6} {'flagged':>8} {'cost/ev':>8}"
    print(header)
    print("-" * len(header))
    scores = runs["fixed"].scores
    bayes = np.r_[
        scores[a] >= threshold,
        np.array(
            [prior_corrected(s, reference_prior=trained_at, live_prior=0.05) for s in scores[b]]
        )
        >= threshold,
    ]
    rows: dict[str, npt.NDArray[np.bool_]] = {m: r.flagged for m, r in runs.items()}
    rows["bayes (true prior)"] = bayes
    for name, flagged in rows.items():
        for phase, sl in (("before", a), ("after", b), ("after*", b_late)):
            print(f"{name:<20} {phase:<7} {quality(flagged[sl], y[sl], args.cost_fn)}")
    print()
    pc = runs["prior_corrected"]
    print(
        f"prior_corrected: live prior estimate {pc.prior_at_end[0]:.4f} at the shift, "
        f"{pc.prior_at_end[-1]:.4f} at the end (true 0.0100 then 0.0500)"
    )
    cost = {m: cost_per_event(flagged[b], y[b], args.cost_fn) for m, flagged in rows.items()}
    print(
        f"expected cost per event after the shift: fixed {cost['fixed']:.4f}, prior_corrected "
        f"{cost['prior_corrected']:.4f} (ratio {cost['prior_corrected'] / cost['fixed']:.3f}), "
        f"bayes {cost['bayes (true prior)']:.4f}"
    )
    ar = runs["alert_rate"].flagged
    for phase, sl in (("before", a), ("after", b)):
        frac = float(ar[sl].mean())
        print(
            f"alert_rate {phase} the shift: flagged {frac:.4f} vs budget {args.budget:.4f} "
            f"({(frac / args.budget - 1):+.1%})"
        )
    for mode, run in runs.items():
        drift = run.monitor.drift
        assert drift is not None
        first = {
            s: int(st.last_detected_at) if st.last_detected_at is not None else None
            for s, st in drift.states.items()
            if st.detections
        }
        print(
            f"drift ({mode}): "
            + (
                ", ".join(
                    f"{s} x{drift.states[s].detections} (last at event {at})"
                    for s, at in first.items()
                )
                or "none"
            )
        )
    print(f"\n{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
