"""``stream-detector simulate``: simulated card transactions to a file or to Kafka.

With ``--output FILE`` it writes a CSV training file (the label ``is_fraud`` included) or
JSON Lines events (no label); with ``--bootstrap-servers`` (or a Kafka address from
``--config`` or the environment) it sends a live stream of events and, after a delay, their
labels. The same ``--seed`` and ``--preset`` give the same transactions;
``--start-day`` continues a history written earlier, as a live stream after training does.
``--start-date`` sets the calendar date of day 0 (default 2018-04-01, so a run is reproducible);
``today-42`` makes a 42-day history end yesterday, and its day 42 today.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
from typing import Any, get_args

from stream_detector.command import Command
from stream_detector.errors import ConfigError
from stream_detector.flags import SettingFlag, add_config_flag, add_setting_flags, setting_overrides
from stream_detector.progress import StatusLine
from stream_detector.simulate.generator import Preset, TransactionSimulator
from stream_detector.simulate.output import FileFormat, infer_format, write_csv, write_jsonl
from stream_detector.simulate.producer import Clock, produce_stream
from stream_detector.simulate.transactions import ALL_COLUMNS, TRAINING_COLUMNS, Transactions

__all__ = ["SIMULATE_FLAGS", "SimulateCommand", "parse_start_date"]

_TODAY = re.compile(r"today(?:-(\d+))?")


def parse_start_date(text: str, *, today: dt.date | None = None) -> str:
    """The ISO date of ``--start-date``: ``YYYY-MM-DD``, ``today`` or ``today-N`` (UTC).

    Examples
    --------
    >>> parse_start_date("2018-04-01")
    '2018-04-01'
    >>> parse_start_date("today-42", today=dt.date(2026, 3, 15))
    '2026-02-01'
    >>> parse_start_date("yesterday")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: expected YYYY-MM-DD, today or today-N (days before today, UTC); got 'yesterday'
    """
    relative = _TODAY.fullmatch(text.strip())
    if relative is not None:
        day = today or dt.datetime.now(dt.UTC).date()
        return (day - dt.timedelta(days=int(relative.group(1) or 0))).isoformat()
    try:
        return dt.date.fromisoformat(text.strip()).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected YYYY-MM-DD, today or today-N (days before today, UTC); got {text!r}"
        ) from None


SIMULATE_FLAGS = (
    SettingFlag(
        "--bootstrap-servers",
        "kafka.bootstrap_servers",
        metavar="HOST:PORT",
        help="send a live stream to this Kafka cluster (default: from --config)",
    ),
)
"""The flags that override the detector settings ``simulate`` reads its Kafka address from."""


class SimulateCommand(Command):
    """Generate simulated transactions and write them to a file or send them to Kafka.

    Examples
    --------
    >>> import argparse, contextlib, io
    >>> command = SimulateCommand()
    >>> parser = argparse.ArgumentParser()
    >>> command.add_arguments(parser)
    >>> args = parser.parse_args(["--output", "-", "--count", "2", "--seed", "3"])
    >>> out, err = io.StringIO(), io.StringIO()
    >>> with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    ...     code = command.run(args)
    >>> code, out.getvalue().count("\\n"), out.getvalue()[:54]
    (0, 2, '{"event_id":"tx-0-0","entity_id":"c-466","timestamp":1')
    >>> print(err.getvalue(), end="")
    simulate: wrote 2 events to stdout (0 frauds, 0.00%)
    """

    name = "simulate"
    help = "generate simulated card transactions with labelled fraud, to a file or to Kafka"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        where = parser.add_argument_group("destination (one of)")
        add_setting_flags(where, SIMULATE_FLAGS)
        where.add_argument(
            "--output",
            metavar="FILE",
            help="write to FILE instead: .csv (training file, label included), "
            ".jsonl/.json (events, no label), or - for JSON Lines on stdout",
        )
        data = parser.add_argument_group("data")
        data.add_argument(
            "--preset",
            choices=get_args(Preset),
            default="demo",
            help="simulation size: demo (~40k transactions) or book (~1.8M); default demo",
        )
        data.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        data.add_argument("--days", type=int, help="days to simulate (default: the preset's)")
        data.add_argument(
            "--start-day",
            type=int,
            default=0,
            help="first day; continue a history of N days with --start-day N",
        )
        data.add_argument(
            "--start-date",
            type=parse_start_date,
            default="2018-04-01",
            metavar="YYYY-MM-DD|today|today-N",
            help="calendar date of day 0 (UTC; default 2018-04-01, reproducible); today-42 "
            "makes a 42-day history end yesterday and --start-day 42 today",
        )
        data.add_argument(
            "--count",
            type=int,
            help="stop after N events (running past the preset's days if needed)",
        )
        files = parser.add_argument_group("files")
        files.add_argument(
            "--format",
            choices=get_args(FileFormat),
            help="file format (default: from the --output suffix)",
        )
        files.add_argument(
            "--all-columns",
            action="store_true",
            help="CSV: also write fraud_scenario and the features "
            "left out of the default ones (fraud_scenario gives the label away)",
        )
        files.add_argument(
            "--labels-output",
            metavar="FILE",
            help="also write the label messages as JSON Lines to FILE",
        )
        kafka = parser.add_argument_group("kafka")
        add_config_flag(kafka, "detector config (YAML): Kafka address, security, topic names")
        kafka.add_argument("--topic", help="events topic (default events)")
        kafka.add_argument("--labels-topic", help="labels topic (default labels)")
        kafka.add_argument("--no-labels", action="store_true", help="send no labels")
        kafka.add_argument(
            "--label-delay",
            type=float,
            default=5.0,
            metavar="SECONDS",
            help="a label follows its event after this long (default 5)",
        )
        kafka.add_argument(
            "--rate",
            type=float,
            default=0.0,
            help="events per second; 0 = as fast as possible (default 0)",
        )
        kafka.add_argument(
            "--clock",
            choices=get_args(Clock),
            default="wall",
            help="event timestamps on the stream: the wall clock when sent (default; serve's "
            "event lag then measures the delay), or the simulation's own (reproducible)",
        )
        kafka.add_argument(
            "--connect-timeout",
            type=float,
            default=10.0,
            metavar="SECONDS",
            help="give up on an unreachable broker after this long (default 10)",
        )

    def run(self, args: argparse.Namespace) -> int:
        _validate(args)
        transactions = _generate(args)
        if args.output is not None:
            self._write(args, transactions)
        else:
            self._produce(args, transactions)
        return 0

    def _write(self, args: argparse.Namespace, tx: Transactions) -> None:
        fmt: FileFormat = args.format or infer_format(args.output)
        target = sys.stdout if args.output == "-" else args.output
        if fmt == "csv":
            columns = ALL_COLUMNS if args.all_columns else TRAINING_COLUMNS
            write_csv(tx, target, columns=columns)
        else:
            write_jsonl(tx.iter_events(), target)
        if args.labels_output is not None:
            write_jsonl(tx.iter_labels(round(args.label_delay * 1000)), args.labels_output)
        where = "stdout" if args.output == "-" else args.output
        what = "rows" if fmt == "csv" else "events"
        print(f"simulate: wrote {len(tx)} {what} to {where} ({_frauds(tx)})", file=sys.stderr)

    def _produce(self, args: argparse.Namespace, tx: Transactions) -> None:
        from stream_detector.config import DetectorSettings

        settings = DetectorSettings.load(args.config, setting_overrides(args, SIMULATE_FLAGS))
        topic = args.topic or settings.topics.events
        labels_topic = None if args.no_labels else (args.labels_topic or settings.topics.labels)
        status = StatusLine()

        def progress(sent: int, total: int) -> None:
            status.update(f"simulate: sent {sent:,} of {total:,} events ({sent / total:.0%})")

        try:
            report = produce_stream(
                tx,
                client_kwargs=settings.kafka.client_kwargs(),
                topic=topic,
                labels_topic=labels_topic,
                label_delay=args.label_delay,
                rate=args.rate,
                clock=args.clock,
                connect_timeout=args.connect_timeout,
                progress=progress if status.active else None,
            )
        finally:
            status.clear()
        labels = f" and {report.labels} labels to {labels_topic!r}" if labels_topic else ""
        print(
            f"simulate: sent {report.events} events to {topic!r}{labels} on "
            f"{settings.kafka.bootstrap_servers} ({_frauds(tx)}) in {report.seconds:.1f} s",
            file=sys.stderr,
        )


def _validate(args: argparse.Namespace) -> None:
    if args.output is not None and args.bootstrap_servers is not None:
        raise ConfigError(
            "give either --output or --bootstrap-servers, not both; "
            f"got --output {args.output} and --bootstrap-servers {args.bootstrap_servers}"
        )
    checks = [
        ("--rate", args.rate, args.rate >= 0, ">= 0"),
        ("--count", args.count, args.count is None or args.count >= 1, ">= 1"),
        ("--days", args.days, args.days is None or args.days >= 1, ">= 1"),
        ("--start-day", args.start_day, args.start_day >= 0, ">= 0"),
        ("--label-delay", args.label_delay, args.label_delay >= 0, ">= 0"),
        ("--connect-timeout", args.connect_timeout, args.connect_timeout > 0, "> 0"),
    ]
    for flag, value, ok, expected in checks:
        if not ok:
            raise ConfigError(f"{flag} must be {expected}; got {value}")
    if args.output is None and (args.format or args.all_columns or args.labels_output):
        raise ConfigError("--format, --all-columns and --labels-output need --output FILE")


def _generate(args: argparse.Namespace) -> Transactions:
    overrides: dict[str, Any] = {"random_state": args.seed, "start_date": args.start_date}
    if args.days is not None:
        overrides["n_days"] = args.days
    simulator = TransactionSimulator.from_preset(args.preset, **overrides)
    if args.count is None:
        status = StatusLine()
        days: list[Transactions] = []
        rows = 0
        try:
            for day in simulator.iter_days(start_day=args.start_day):
                days.append(day)
                rows += len(day)
                status.update(
                    f"simulate: day {len(days)} of {simulator.n_days}, {rows:,} transactions"
                )
        finally:
            status.clear()
        return Transactions.concatenate(days)
    if args.days is None:
        return simulator.take(args.count, start_day=args.start_day)
    return simulator.generate(start_day=args.start_day).head(args.count)


def _frauds(tx: Transactions) -> str:
    return f"{tx.n_frauds} frauds, {tx.fraud_rate:.2%}"
