"""The program's command line: every user error is one line and exit code 2, flags are never
abbreviated, ``--log-level`` goes before or after the command, and the README's synopsis lists
every flag each registered command's ``--help`` shows."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream_detector.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err.rstrip("\n")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No ``STREAM_DETECTOR_*`` variable from the calling environment."""
    for name in list(os.environ):
        if name.startswith("STREAM_DETECTOR_"):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port on 127.0.0.1 something listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize(
    ("variable", "argv", "line"),
    [
        (
            "STREAM_DETECTOR_TRESHOLD",
            ["serve"],
            "stream-detector: error: environment variable STREAM_DETECTOR_TRESHOLD: unknown key "
            "'treshold' (did you mean STREAM_DETECTOR_THRESHOLD?)",
        ),
        (
            "STREAM_DETECTOR_KAFKA__BOOTSTRAP_SERVRS",
            ["serve"],
            "stream-detector: error: environment variable STREAM_DETECTOR_KAFKA__BOOTSTRAP_SERVRS: "
            "unknown key 'kafka.bootstrap_servrs' (did you mean "
            "STREAM_DETECTOR_KAFKA__BOOTSTRAP_SERVERS?)",
        ),
        (
            "STREAM_DETECTOR_KAFK__BOOTSTRAP_SERVERS",
            ["simulate", "--bootstrap-servers", "127.0.0.1:1", "--count", "1"],
            "stream-detector: error: environment variable STREAM_DETECTOR_KAFK__BOOTSTRAP_SERVERS: "
            "unknown key 'kafk' (did you mean STREAM_DETECTOR_KAFKA__BOOTSTRAP_SERVERS?)",
        ),
        (
            "STREAM_DETECTOR_TRAIN_TECHNIQE",
            ["train", "--data", "h.csv", "--label", "is_fraud", "--out", "m"],
            "stream-detector: error: environment variable STREAM_DETECTOR_TRAIN_TECHNIQE: unknown "
            "key 'techniqe' (did you mean STREAM_DETECTOR_TRAIN_TECHNIQUE?)",
        ),
        (
            "STREAM_DETECTOR_TRAIN_VALIDATION__N_SPLIT",
            ["compare", "--data", "h.csv", "--label", "is_fraud"],
            "stream-detector: error: environment variable STREAM_DETECTOR_TRAIN_VALIDATION__N_SPLIT: "
            "unknown key 'validation.n_split' (did you mean "
            "STREAM_DETECTOR_TRAIN_VALIDATION__N_SPLITS?)",
        ),
        (
            "STREAM_DETECTOR_NOTHING_LIKE_IT",
            ["serve"],
            "stream-detector: error: environment variable STREAM_DETECTOR_NOTHING_LIKE_IT: unknown "
            "key 'nothing_like_it'",
        ),
    ],
)
def test_an_unknown_environment_variable_is_refused_by_name(
    clean_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    variable: str,
    argv: list[str],
    line: str,
) -> None:
    clean_env.chdir(tmp_path)
    clean_env.setenv(variable, "3")
    assert main(argv) == 2
    assert _one_line(capsys) == line
    assert not (tmp_path / "m").exists()


def test_the_training_variables_are_not_the_detectors_to_refuse(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("STREAM_DETECTOR_TRAIN_TECHNIQUE", "smote")
    assert main(["simulate", "--output", "-", "--count", "2", "--log-level", "WARNING"]) == 0
    assert capsys.readouterr().out.count("\n") == 2


def test_score_refuses_a_table_with_a_hint(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    history = tmp_path / "history.csv"
    history.write_text("event_id,amount,is_fraud\ntx-1,12.5,0\n")
    assert main(["score", "--model", str(tmp_path / "m"), "--input", str(history)]) == 2
    assert _one_line(capsys) == (
        f"stream-detector: error: --input {history} is a CSV file; score reads JSON Lines, one "
        "event object per line (simulate --output FILE.jsonl); evaluate --data measures a model "
        "on a labelled CSV file"
    )


def test_score_stops_at_a_file_that_is_not_json_lines_whatever_its_name(
    bundle_dir: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    table = tmp_path / "history.txt"
    table.write_text("event_id,amount,is_fraud\n" + "tx-1,12.5,0\n" * 5000)
    assert main(["score", "--model", str(bundle_dir), "--input", str(table)]) == 2
    assert _one_line(capsys) == (
        f"stream-detector: error: input {table} is not JSON Lines: line 1 starts "
        "'event_id,amount,is_fraud', and none of its first 2048 lines is an event; score reads "
        "JSON Lines, one event object per line (simulate --output FILE.jsonl)"
    )


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["train", "--data", "h.csv", "--lable", "is_fraud", "--out", "m"],
            "stream-detector train: error: unrecognized arguments: --lable (did you mean --label?)",
        ),
        (
            ["train", "--dat", "h.csv", "--label", "is_fraud", "--out", "m"],
            "stream-detector train: error: unrecognized arguments: --dat (did you mean --data?)",
        ),
        (
            ["serve", "--bootstrap-server=127.0.0.1:9092", "--metrics", "9"],
            "stream-detector serve: error: unrecognized arguments: --bootstrap-server (did you "
            "mean --bootstrap-servers?), --metrics (did you mean --metrics-port?)",
        ),
        (
            ["score", "--model", "m", "--zzz"],
            "stream-detector score: error: unrecognized arguments: --zzz",
        ),
        (
            ["serve", "--threshold", "1.5"],
            "stream-detector serve: error: argument --threshold: must be in [0, 1]; got 1.5",
        ),
        (
            ["score", "--model", "m", "--threshold", "1.5"],
            "stream-detector score: error: argument --threshold: must be in [0, 1]; got 1.5",
        ),
        (
            [
                "train",
                "--data",
                "h.csv",
                "--label",
                "y",
                "--out",
                "m",
                "--threshold-policy",
                "precision:1.5",
            ],
            "stream-detector train: error: argument --threshold-policy: threshold policy "
            "'precision:1.5': P must be in (0, 1]; got 1.5",
        ),
        (
            ["serve", "--log-level", "LOUD"],
            "stream-detector serve: error: argument --log-level: invalid choice: 'LOUD' (choose "
            "from 'DEBUG', 'INFO', 'WARNING', 'ERROR')",
        ),
    ],
)
def test_flag_errors_are_one_line(
    clean_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    argv: list[str],
    line: str,
) -> None:
    clean_env.chdir(tmp_path)
    assert main(argv) == 2
    assert _one_line(capsys) == line
    assert not (tmp_path / "m").exists()


def test_train_out_naming_a_file_says_so(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    history = tmp_path / "history.csv"
    history.write_text("amount,is_fraud\n1,0\n")
    argv = ["train", "--data", str(history), "--label", "is_fraud", "--out", str(history)]
    assert main(argv) == 2
    assert _one_line(capsys) == (
        f"stream-detector: error: --out {history} is a file; give a directory for the bundle"
    )
    assert history.read_text() == "amount,is_fraud\n1,0\n"


def test_broker_on_a_taken_port_says_so(
    capsys: pytest.CaptureFixture[str], taken_port: int
) -> None:
    assert main(["broker", "--port", str(taken_port)]) == 2
    assert _one_line(capsys) == (
        f"stream-detector: error: port {taken_port} on 127.0.0.1 is already in use (another "
        "broker?); stop what holds it or choose another port"
    )


def test_serve_where_nothing_listens_is_one_line(bundle_dir: Path, tmp_path: Path) -> None:
    """In its own process, as a user runs it: no warning before the one error line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_DETECTOR_")}
    env["STREAM_DETECTOR_KAFKA__CONNECT_TIMEOUT_S"] = "0.5"
    argv = ["serve", "--model", str(bundle_dir), "--bootstrap-servers", "127.0.0.1:1"]
    done = subprocess.run(
        [sys.executable, "-m", "stream_detector", *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr == (
        "stream-detector: error: cannot reach Kafka at 127.0.0.1:1 for the service within 0.5s "
        "(kafka.connect_timeout_s): Connection refused\n"
    )


# -- the program's flags -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "level"),
    [
        (["serve"], None),
        (["--log-level", "ERROR", "serve"], "ERROR"),
        (["serve", "--log-level", "DEBUG"], "DEBUG"),
        (["--log-level", "ERROR", "serve", "--log-level", "DEBUG"], "DEBUG"),
        (
            ["--log-level", "WARNING", "train", "--data", "d", "--label", "y", "--out", "o"],
            "WARNING",
        ),
    ],
)
def test_log_level_before_or_after_the_command(argv: list[str], level: str | None) -> None:
    assert build_parser().parse_args(argv).log_level == level


def test_no_parser_abbreviates_flags() -> None:
    parsers = {"": build_parser(), **_commands()}
    assert len(parsers) >= 9
    assert {name: p.allow_abbrev for name, p in parsers.items()} == dict.fromkeys(parsers, False)


# -- the README's synopsis -------------------------------------------------------------------------


def _help_flags(parser: argparse.ArgumentParser) -> set[str]:
    """The long flags ``--help`` lists, but --help itself."""
    return {
        option
        for action in parser._actions
        if action.help != argparse.SUPPRESS
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }


def _synopsis() -> dict[str, set[str]]:
    """Each command of the README's "Command line" block -> the flags its lines name."""
    block = README.read_text(encoding="utf-8").split("## Command line", 1)[1]
    block = block.split("```", 2)[1]
    flags: dict[str, set[str]] = {}
    command = ""
    for line in block.splitlines():
        text = line.split("#", 1)[0]
        start = re.match(r"stream-detector\s+(?:\[[^\]]*\]\s+)?([a-z]+)", text)
        if start:
            command = start[1]
            flags.setdefault(command, set())
            text = text[start.end() :]
        elif not line.startswith(" "):
            command = ""
        if command:
            flags[command] |= set(re.findall(r"--[a-z][a-z0-9-]*", text))
    return flags


def test_the_readme_synopsis_lists_every_flag_of_every_command() -> None:
    synopsis = _synopsis()
    commands = _commands()
    assert sorted(synopsis) == sorted(commands)
    program = set(re.findall(r"--[a-z-]+", README.read_text().split("## Command line", 1)[1]))
    assert "--log-level" in program
    for name, parser in commands.items():
        expected = _help_flags(parser) - {"--log-level"}
        assert synopsis[name] == expected, (
            f"{name}: missing {sorted(expected - synopsis[name])}, "
            f"not a flag {sorted(synopsis[name] - expected)}"
        )


def test_what_the_readme_session_writes_is_ignored_by_git_and_removed_by_make_clean() -> None:
    text = README.read_text(encoding="utf-8")
    session = text.split("A typical session, in a scratch directory", 1)[1].split("```sh", 1)[1]
    session = session.split("```", 1)[0]
    written = set(re.findall(r"--(?:output|labels-output|out|report) ([\w./-]+)", session))
    tops = {path.split("/")[0] for path in written}
    assert tops == {
        "history.csv",
        "live.jsonl",
        "live-labels.jsonl",
        "decisions.jsonl",
        "models",
        "reports",
    }
    ignored = {
        line.strip().strip("/")
        for line in (ROOT / ".gitignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    clean = (ROOT / "Makefile").read_text().split("\nclean:", 1)[1].split("\n\n", 1)[0].split()
    assert "session" in ignored  # the scratch directory itself
    assert "session" in clean
    assert sorted(tops - ignored) == []
    assert sorted(tops - set(clean)) == []


def test_a_threshold_out_of_range_from_the_environment_is_worded_as_the_flags(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("STREAM_DETECTOR_THRESHOLD", "1.5")
    assert main(["serve"]) == 2
    assert _one_line(capsys) == (
        "stream-detector: error: environment variable STREAM_DETECTOR_THRESHOLD: "
        "must be in [0, 1]; got 1.5"
    )


@pytest.mark.parametrize(
    ("variable", "value", "argv", "line"),
    [
        (
            "STREAM_DETECTOR_NOTIFY__MAX_ATTEMPTS",
            "many",
            ["notify"],
            "environment variable STREAM_DETECTOR_NOTIFY__MAX_ATTEMPTS: Input should be a valid "
            "integer, unable to parse string as an integer (got 'many')",
        ),
        (
            "STREAM_DETECTOR_TRAIN_SEED",
            "x",
            ["train", "--data", "a.csv", "--label", "y", "--out", "m"],
            "environment variable STREAM_DETECTOR_TRAIN_SEED: Input should be a valid integer, "
            "unable to parse string as an integer (got 'x')",
        ),
        (
            "STREAM_DETECTOR_KAFKA",
            '{"sasl_plain_password": "hunter2"',
            ["notify"],
            "environment variable STREAM_DETECTOR_KAFKA: not a JSON object; give one (or set "
            "one key as STREAM_DETECTOR_KAFKA__<KEY>)",
        ),
    ],
)
def test_a_bad_value_in_the_environment_names_its_variable(
    variable: str,
    value: str,
    argv: list[str],
    line: str,
    clean_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    clean_env.setenv(variable, value)
    assert main(argv) == 2
    assert _one_line(capsys) == f"stream-detector: error: {line}"


def test_a_flag_over_a_bad_variable_is_named_as_the_flag(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("STREAM_DETECTOR_THRESHOLD", "0.5")
    assert main(["serve", "--threshold", "1.5"]) == 2
    assert _one_line(capsys) == (
        "stream-detector serve: error: argument --threshold: must be in [0, 1]; got 1.5"
    )


def test_a_bad_threshold_policy_is_refused_while_parsing_the_flags(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["compare", "--data", "no-such.csv", "--label", "y", "--threshold-policy", "cost:x"]
    assert main(argv) == 2  # before the missing file
    line = _one_line(capsys)
    assert line.startswith("stream-detector compare: error: argument --threshold-policy: "), line


def _session_commands() -> list[list[str]]:
    """Every ``stream-detector`` command of the README's typical session, as argv lists."""
    text = README.read_text(encoding="utf-8").split("A typical session, in a scratch directory", 1)
    text = text[1].split("`configs/train.yaml` declares", 1)[0]
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            words = shlex.split(line.split("  #", 1)[0])
            if words[:1] == ["stream-detector"]:
                commands.append(words[1:])
    return commands


def test_the_readme_session_parses_and_streams_a_continuation_on_the_wall_clock() -> None:
    parser = build_parser()
    parsed = [parser.parse_args(argv) for argv in _session_commands()]
    assert [a.command for a in parsed] == [
        "simulate", "compare", "train", "simulate", "score", "broker", "serve", "simulate",
        "notify",
    ]  # fmt: skip
    history, _, _, offline, _, _, _, live, _ = parsed
    # One day 0 for the history and both continuations, which start where the history ends.
    assert history.start_date == offline.start_date == live.start_date != "2018-04-01"
    assert offline.start_day == live.start_day == 42
    assert history.days is None  # the demo preset's 42 days
    assert live.clock == "wall"  # the event lag then measures delivery
