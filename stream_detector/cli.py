"""The ``stream-detector`` command line.

Each subcommand is a :class:`~stream_detector.command.Command`. The serving commands live in this package; the offline
commands (``train``, ``compare``, ``evaluate``, ``demo``) are found through the entry-point
group ``stream_detector.commands``, so this package never imports ``offline``.

Every error a user can cause ends as one line on stderr and exit code 2:

>>> main(["score", "--model", "no/such/bundle"])
2
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import Any, NoReturn

from stream_detector import __version__
from stream_detector.command import Command
from stream_detector.errors import StreamDetectorError
from stream_detector.flags import LOG_LEVEL, configure_logging

__all__ = ["build_parser", "main"]

PROG = "stream-detector"
ENTRY_POINT_GROUP = "stream_detector.commands"


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit code 2.

    Flags are never abbreviated (``--dat`` is not ``--data``), and a command's parser names
    an option it does not know, with the nearest one it does, before anything else (argparse
    would first complain about a required flag the misspelt one was meant to be).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self.names_unknown_options = False
        self._seen: list[str] = []

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        self._seen = list(sys.argv[1:] if args is None else args)
        parsed, extras = super().parse_known_args(args, namespace)
        if self.names_unknown_options and self._unknown_options():
            self.error("")
        return parsed, extras

    def error(self, message: str) -> NoReturn:
        unknown = self._unknown_options() if self.names_unknown_options else []
        if unknown:
            message = "unrecognized arguments: " + ", ".join(unknown)
        self.exit(2, f"{self.prog}: error: {message}\n")

    def _unknown_options(self) -> list[str]:
        """The ``--options`` among the arguments this parser does not know, each with the
        nearest known one."""
        known = [o for o in self._option_string_actions if o.startswith("--")]
        found = []
        for token in self._seen:
            if token == "--":
                break
            name = token.partition("=")[0]
            if not name.startswith("--") or name in self._option_string_actions:
                continue
            near = difflib.get_close_matches(name, known, n=1)
            found.append(f"{name} (did you mean {near[0]}?)" if near else name)
        return found


def _builtin_commands() -> list[Command]:
    from stream_detector.backfill import BackfillCommand
    from stream_detector.devbroker import BrokerCommand
    from stream_detector.notify import NotifyCommand
    from stream_detector.score import ScoreCommand
    from stream_detector.service import ServeCommand
    from stream_detector.simulate.command import SimulateCommand

    return [
        ScoreCommand(),
        ServeCommand(),
        BackfillCommand(),
        SimulateCommand(),
        BrokerCommand(),
        NotifyCommand(),
    ]


def _plugin_commands() -> list[Command]:
    commands: list[Command] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        command = ep.load()
        if not isinstance(command, Command):
            raise TypeError(f"entry point {ep.name!r} must be a Command instance; got {command!r}")
        commands.append(command)
    return commands


def build_parser() -> argparse.ArgumentParser:
    """Build the full parser, built-in and plugin subcommands included."""
    parser = _Parser(prog=PROG, description="Find fraud and other rare events in event streams.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    LOG_LEVEL.add_to(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    order = [
        "train",
        "compare",
        "evaluate",
        "score",
        "serve",
        "notify",
        "simulate",
        "broker",
        "demo",
    ]
    commands = {c.name: c for c in [*_builtin_commands(), *_plugin_commands()]}
    for name in sorted(commands, key=lambda n: (order.index(n) if n in order else len(order), n)):
        command = commands[name]
        p = sub.add_parser(name, help=command.help, description=command.help)
        p.names_unknown_options = True
        command.add_arguments(p)
        # Also after the command; unset there, the program's own --log-level stands.
        LOG_LEVEL.add_to(p, default=argparse.SUPPRESS)
        p.set_defaults(_command=command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help, --version, or a usage error
        return int(exc.code) if isinstance(exc.code, int) else 2
    # Until a command reads its settings: serve then applies its log_level (flag > env > file).
    configure_logging(args.log_level or "INFO")
    command: Command = args._command
    try:
        return command.run(args)
    except StreamDetectorError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
