"""``stream-detector simulate`` to files and stdout; flag validation; an unreachable broker."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest

from stream_detector.devbroker.embedded import free_port
from stream_detector.errors import BrokerError, ConfigError
from stream_detector.simulate import (
    ALL_COLUMNS,
    EVENT_COLUMNS,
    TRAINING_COLUMNS,
    TransactionSimulator,
)
from stream_detector.simulate.command import SimulateCommand


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    SimulateCommand().add_arguments(parser)
    return parser.parse_args(argv)


def _run(*argv: str) -> int:
    return SimulateCommand().run(_args(*argv))


def test_csv_output_is_a_training_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "history.csv"
    assert _run("--output", str(path), "--days", "3", "--seed", "4") == 0
    expected = TransactionSimulator.from_preset("demo", random_state=4).generate(n_days=3)
    frame = pd.read_csv(path)
    assert list(frame.columns) == list(TRAINING_COLUMNS)
    np.testing.assert_array_equal(frame["event_id"], expected["event_id"])
    np.testing.assert_array_equal(frame["is_fraud"], expected["is_fraud"])
    err = capsys.readouterr().err
    assert err == (
        f"simulate: wrote {len(expected)} rows to {path} "
        f"({expected.n_frauds} frauds, {expected.fraud_rate:.2%})\n"
    )


def test_all_columns_adds_the_bookkeeping(tmp_path: Path) -> None:
    path = tmp_path / "all.csv"
    _run("--output", str(path), "--count", "100", "--all-columns")
    assert list(pd.read_csv(path).columns) == list(ALL_COLUMNS)


def test_jsonl_output_holds_events_and_labels_go_to_their_own_file(tmp_path: Path) -> None:
    events, labels = tmp_path / "events.jsonl", tmp_path / "labels.jsonl"
    _run("--output", str(events), "--labels-output", str(labels), "--count", "300",
         "--label-delay", "1.5")  # fmt: skip
    expected = TransactionSimulator.from_preset("demo", random_state=0).take(300)
    assert [orjson.loads(line) for line in events.read_bytes().splitlines()] == list(
        expected.iter_events()
    )
    assert [orjson.loads(line) for line in labels.read_bytes().splitlines()] == list(
        expected.iter_labels(delay_ms=1500)
    )


def test_dash_writes_json_lines_to_stdout_or_csv_with_format(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _run("--output", "-", "--count", "3", "--seed", "2")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert list(orjson.loads(lines[0])) == list(EVENT_COLUMNS)
    _run("--output", "-", "--count", "3", "--seed", "2", "--format", "csv")
    out = capsys.readouterr().out.splitlines()
    assert out[0] == ",".join(TRAINING_COLUMNS)
    assert len(out) == 4


def test_start_day_continues_a_history(tmp_path: Path) -> None:
    whole, head, tail = tmp_path / "whole.csv", tmp_path / "head.csv", tmp_path / "tail.csv"
    _run("--output", str(whole), "--days", "6", "--seed", "9", "--all-columns")
    _run("--output", str(head), "--days", "4", "--seed", "9", "--all-columns")
    _run("--output", str(tail), "--days", "2", "--start-day", "4", "--seed", "9", "--all-columns")
    joined = pd.concat([pd.read_csv(head), pd.read_csv(tail)], ignore_index=True)
    pd.testing.assert_frame_equal(joined, pd.read_csv(whole))


def test_count_runs_past_the_preset_days_unless_days_are_given(tmp_path: Path) -> None:
    one_day = TransactionSimulator.from_preset("demo", random_state=0).generate(n_days=1)
    path = tmp_path / "out.csv"
    _run("--output", str(path), "--count", str(len(one_day) + 10))
    assert len(pd.read_csv(path)) == len(one_day) + 10
    _run("--output", str(path), "--count", str(len(one_day) + 10), "--days", "1")
    assert len(pd.read_csv(path)) == len(one_day)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--output", "a.csv", "--bootstrap-servers", "h:1"],
            "give either --output or --bootstrap",
        ),
        (["--output", "a.csv", "--rate", "-1"], r"--rate must be >= 0; got -1.0"),
        (["--output", "a.csv", "--count", "0"], r"--count must be >= 1; got 0"),
        (["--output", "a.csv", "--days", "0"], r"--days must be >= 1; got 0"),
        (["--output", "a.csv", "--start-day", "-2"], r"--start-day must be >= 0; got -2"),
        (["--output", "a.csv", "--label-delay", "-1"], r"--label-delay must be >= 0; got -1.0"),
        (["--format", "csv"], "--format, --all-columns and --labels-output need --output FILE"),
        (["--output", "a.txt", "--count", "1"], "cannot tell the format of 'a.txt'"),
    ],
)
def test_bad_flags_are_one_line_config_errors(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        _run(*argv)
    assert "\n" not in str(info.value)


def test_unreachable_broker_is_a_broker_error_naming_it() -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(BrokerError, match=f"cannot reach the Kafka broker at {address}"):
        _run("--bootstrap-servers", address, "--count", "5", "--connect-timeout", "1")


def test_cli_reports_errors_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from stream_detector.cli import main

    assert main(["simulate", "--output", "a.csv", "--bootstrap-servers", "h:1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("stream-detector: error: give either --output or --bootstrap-servers")
    assert err.count("\n") == 1


def test_a_file_from_days_shows_progress_on_a_terminal_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    from stream_detector.cli import main

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["simulate", "--output", str(tmp_path / "h.csv"), "--days", "3"]) == 0
    shown = terminal.getvalue()
    assert shown.startswith("\r\x1b[Ksimulate: day 1 of 3, ")
    assert shown.count("\r\x1b[K") >= 2  # the day line, wiped before the result line
    assert shown.endswith("%)\n")
    monkeypatch.undo()
    assert main(["simulate", "--output", str(tmp_path / "h2.csv"), "--days", "3"]) == 0
    assert capsys.readouterr().err.startswith("simulate: wrote ")


def test_start_date_sets_day_zero_and_today_minus_n_ends_a_history_yesterday(
    tmp_path: Path,
) -> None:
    import datetime as dt

    history, live = tmp_path / "history.csv", tmp_path / "live.jsonl"
    _run("--output", str(history), "--days", "3", "--start-date", "today-3")
    _run("--output", str(live), "--start-day", "3", "--count", "5", "--start-date", "today-3")
    today = dt.datetime.now(dt.UTC).date()

    def day_of(ms: int) -> dt.date:
        return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).date()

    stamps = pd.read_csv(history)["timestamp"]
    assert day_of(int(stamps.min())) == today - dt.timedelta(days=3)
    assert day_of(int(stamps.max())) == today - dt.timedelta(days=1)
    first = orjson.loads(live.read_bytes().splitlines()[0])
    assert day_of(first["timestamp"]) == today
    fixed = tmp_path / "fixed.csv"
    _run("--output", str(fixed), "--days", "1", "--start-date", "2020-02-29")
    assert day_of(int(pd.read_csv(fixed)["timestamp"].min())) == dt.date(2020, 2, 29)


def test_the_default_start_date_keeps_runs_reproducible() -> None:
    assert _args().start_date == "2018-04-01"


@pytest.mark.parametrize("value", ["yesterday", "today-x", "2018-13-01", "today+3"])
def test_a_bad_start_date_is_one_line_and_exit_2(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from stream_detector.cli import main

    assert main(["simulate", "--output", "-", "--count", "1", "--start-date", value]) == 2
    err = capsys.readouterr().err
    assert err == (
        "stream-detector simulate: error: argument --start-date: expected YYYY-MM-DD, today or "
        f"today-N (days before today, UTC); got {value!r}\n"
    )
