"""The base of every subcommand of the ``stream-detector`` program.

A :class:`Command` declares its flags and runs with the parsed namespace. The program
(:mod:`stream_detector.cli`) collects the built-in commands and the ones registered under the
entry-point group ``stream_detector.commands`` (the offline commands); a command module imports
this module only, never the program, so nothing imports back.

>>> import argparse
>>> class Hello(Command):
...     name = "hello"
...     help = "say hello"
...     def add_arguments(self, parser: argparse.ArgumentParser) -> None:
...         parser.add_argument("--who", default="world")
...     def run(self, args: argparse.Namespace) -> int:
...         print(f"hello {args.who}")
...         return 0
>>> parser = argparse.ArgumentParser()
>>> Hello().add_arguments(parser)
>>> Hello().run(parser.parse_args(["--who", "fraud team"]))
hello fraud team
0
"""

from __future__ import annotations

import abc
import argparse
from typing import ClassVar

__all__ = ["Command"]


class Command(abc.ABC):
    """One subcommand: declares its flags and runs with the parsed namespace."""

    name: ClassVar[str]
    help: ClassVar[str]

    @abc.abstractmethod
    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add this command's flags to ``parser``."""

    @abc.abstractmethod
    def run(self, args: argparse.Namespace) -> int:
        """Run the command; return the exit code. Raise a StreamDetectorError on user error."""
