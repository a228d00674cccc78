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
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import NoReturn

from stream_detector import __version__
from stream_detector.command import Command
from stream_detector.errors import StreamDetectorError
from stream_detector.flags import LOG_LEVEL, configure_logging

__all__ = ["build_parser", "main"]

PROG = "stream-detector"
ENTRY_POINT_GROUP = "stream_detector.commands"


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


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
        command.add_arguments(p)
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
