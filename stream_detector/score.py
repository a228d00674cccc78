"""``stream-detector score``: the offline twin of ``serve``, JSON Lines in and out.

Each input line is one event; each valid event gives one decision line, in input order,
exactly as ``serve`` would decide it (same code path, :class:`~stream_detector.decide.Decider`).
Invalid lines are reported on stderr with their line number and reason, and skipped; with
``--strict`` any invalid line makes the command fail with exit code 2.

For a bundle with behavioural features, ``--history FILE`` first computes a raw history into
the in-memory state (as ``backfill`` does for the service's store), and ``--labels FILE``
replays a label file (the ``labels`` topic's messages, each with the time it became known):
before each chunk of events, the labels known by the chunk's latest event time are added, as
the service adds a batch's labels before its events. The state then holds what the service's
store held, so the decisions are the service's.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np
import orjson

from stream_detector.backfill import backfill
from stream_detector.bundle import load_bundle
from stream_detector.command import Command
from stream_detector.decide import Decider
from stream_detector.errors import ConfigError, DataError
from stream_detector.events import parse_timestamp
from stream_detector.features import LabelColumns
from stream_detector.flags import THRESHOLD, add_replay_flags
from stream_detector.history import read_labels
from stream_detector.messages import Message, Source

__all__ = ["ScoreCommand"]

_CHUNK = 2048
_TABLES = {".csv": "CSV", ".tsv": "TSV", ".parquet": "Parquet", ".pq": "Parquet"}
"""File suffixes of tables, which ``score`` does not read (``evaluate`` does)."""
_HINT = "score reads JSON Lines, one event object per line (simulate --output FILE.jsonl)"


@contextlib.contextmanager
def _open_in(name: str) -> Iterator[IO[bytes]]:
    if name == "-":
        yield sys.stdin.buffer
        return
    try:
        fh = Path(name).open("rb")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise DataError(f"cannot read input {name}: {exc.strerror}") from exc
    with fh:
        yield fh


@contextlib.contextmanager
def _open_out(name: str) -> Iterator[IO[bytes]]:
    if name == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    try:
        fh = Path(name).open("wb")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise DataError(f"cannot write output {name}: {exc.strerror}") from exc
    with fh:
        yield fh


class ScoreCommand(Command):
    name = "score"
    help = "score events from a JSON Lines file; one decision per event, in input order"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--model", required=True, metavar="DIR", help="model bundle directory")
        parser.add_argument(
            "--input", default="-", metavar="FILE", help="JSON Lines events (- = stdin)"
        )
        parser.add_argument("--output", default="-", metavar="FILE", help="decisions (- = stdout)")
        THRESHOLD.add_to(parser)
        parser.add_argument(
            "--reasons",
            type=int,
            default=3,
            metavar="N",
            help="features listed in reasons of flagged events (default 3)",
        )
        add_replay_flags(
            parser, "behavioural features: labels as JSON Lines, each with the time it became known"
        )
        parser.add_argument(
            "--strict",
            action="store_true",
            help="fail (exit 2) on the first invalid line instead of skipping it",
        )

    def run(self, args: argparse.Namespace) -> int:
        kind = _TABLES.get(Path(args.input).suffix.lower())
        if kind is not None:
            raise DataError(
                f"--input {args.input} is a {kind} file; {_HINT}; evaluate --data measures a "
                f"model on a labelled {kind} file"
            )
        bundle = load_bundle(args.model)
        decider = Decider(bundle, threshold=args.threshold, reasons_top=max(0, args.reasons))
        if decider.engine is None and (args.history or args.labels):
            raise ConfigError(
                f"--history and --labels need a bundle with a feature spec; {args.model} has none"
            )
        if decider.engine is not None and args.history:
            backfill(decider.engine, bundle, args.history)
        labels = _Labels(read_labels(args.labels) if args.labels else None, decider)
        topic = args.input
        n_ok = n_bad = n_flagged = 0
        with _open_in(args.input) as src, _open_out(args.output) as dst:
            chunk: list[Message] = []
            for offset, line in enumerate(src):
                stripped = line.strip()
                if not stripped:
                    continue
                chunk.append(Message(None, stripped, Source(topic, 0, offset)))
                if len(chunk) >= _CHUNK:
                    labels.before(chunk)
                    first = n_ok + n_bad == 0
                    ok, bad, flagged = self._flush(decider, chunk, dst, args.strict, first)
                    n_ok, n_bad, n_flagged = n_ok + ok, n_bad + bad, n_flagged + flagged
                    chunk = []
            labels.before(chunk)
            first = n_ok + n_bad == 0
            ok, bad, flagged = self._flush(decider, chunk, dst, args.strict, first)
            n_ok, n_bad, n_flagged = n_ok + ok, n_bad + bad, n_flagged + flagged
        print(
            f"scored {n_ok} events, flagged {n_flagged}, skipped {n_bad} invalid lines "
            f"(threshold {decider.threshold:g}, model {bundle.model_version})",
            file=sys.stderr,
        )
        return 0

    @staticmethod
    def _flush(
        decider: Decider, chunk: list[Message], dst: IO[bytes], strict: bool, first: bool
    ) -> tuple[int, int, int]:
        if not chunk:
            return 0, 0, 0
        outcome = decider.decide(chunk)
        if first and not outcome.decisions and outcome.dead_letters[0].error.reason == "not_json":
            # Not JSON Lines at all (a table, a log): one line, not a warning per line.
            head = bytes(chunk[0].value or b"")[:40].decode("utf-8", "replace")
            raise DataError(
                f"input {chunk[0].source.topic} is not JSON Lines: line "
                f"{chunk[0].source.offset + 1} starts {head!r}, and "
                f"none of its first {len(chunk)} lines is an event; {_HINT}"
            )
        for dead in outcome.dead_letters:
            line = dead.message.source.offset + 1
            text = f"line {line}: {dead.error.reason}: {dead.error}"
            if strict:
                raise DataError(text)
            print(f"stream-detector: warning: {text}", file=sys.stderr)
        # A flagged decision carries its reasons in score's output, as its alert does.
        alerts = dict(zip(outcome.alert_positions, outcome.alerts, strict=True))
        for i, decision in enumerate(outcome.decisions):
            dst.write(orjson.dumps(alerts.get(i, decision)))
            dst.write(b"\n")
        return len(outcome.decisions), len(outcome.dead_letters), len(outcome.alerts)


class _Labels:
    """A label file replayed in step with the events: before a chunk, the labels known by
    its latest event time."""

    def __init__(self, labels: LabelColumns | None, decider: Decider) -> None:
        self.decider = decider
        self.labels = labels
        self.order = (
            np.argsort(labels["known_at"], kind="stable")
            if labels is not None
            else np.empty(0, dtype=np.intp)
        )
        self.next = 0

    def before(self, chunk: list[Message]) -> None:
        if self.labels is None or self.next >= self.order.size:
            return
        field = self.decider.parser.timestamp
        stamps = [t for t in (_event_time(m.value, field) for m in chunk) if t is not None]
        if not stamps:
            return
        known = self.labels["known_at"][self.order]
        end = int(np.searchsorted(known, max(stamps), side="right"))
        if end > self.next:
            pick = self.order[self.next : end]
            self.decider.add_labels({name: values[pick] for name, values in self.labels.items()})
            self.next = end


def _event_time(value: bytes | None, field: str) -> int | None:
    """The event time (in ``field``) of a raw line, or None when it has none readable."""
    try:
        doc = orjson.loads(value or b"")
        stamp = doc.get(field) if isinstance(doc, dict) else None
        return parse_timestamp(stamp)
    except (ValueError, TypeError):
        return None
