"""Command-line flags that set settings, declared once, read one way by every command.

A :class:`SettingFlag` ties a flag to the dotted path of the settings value it overrides. A
command lists its flags, adds them to its parser with :func:`add_setting_flags`, and turns the
parsed namespace into the nested override mapping its pydantic settings take last (file, then
environment, then flags) with :func:`setting_overrides`; a flag not given overrides nothing.
The flags several commands share (``--config``, :data:`THRESHOLD`, :data:`LOG_LEVEL`) and
comma-separated choices (:func:`csv_choice`) are declared here too.

>>> import argparse
>>> flags = [
...     SettingFlag("--bootstrap-servers", "kafka.bootstrap_servers", help="Kafka brokers"),
...     SettingFlag("--metrics-port", "metrics.port", type=int, help="HTTP port"),
...     SettingFlag("--no-decisions", "decisions_enabled", const=False, help="alerts only"),
... ]
>>> parser = argparse.ArgumentParser()
>>> add_setting_flags(parser, flags)
>>> setting_overrides(parser.parse_args(["--metrics-port", "9", "--no-decisions"]), flags)
{'metrics': {'port': 9}, 'decisions_enabled': False}
>>> setting_overrides(parser.parse_args([]), flags)
{}
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, get_args

from stream_detector.config import LogLevel

__all__ = [
    "LOG_LEVEL",
    "THRESHOLD",
    "SettingFlag",
    "add_config_flag",
    "add_setting_flags",
    "configure_logging",
    "csv_choice",
    "setting_overrides",
    "threshold_value",
]

_NOT_CONST = object()
_LOG_FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"
_owns_root_logger = False


@dataclass(frozen=True)
class SettingFlag:
    """One flag that overrides one settings value.

    Parameters
    ----------
    flag
        The option string, e.g. ``"--group-id"``.
    path
        The dotted settings path it sets, e.g. ``"consumer.group_id"``.
    help
        The help text.
    type, metavar, choices
        As for :meth:`argparse.ArgumentParser.add_argument`.
    const
        For a switch without a value: the settings value it sets when given.
    dest
        The namespace attribute; default the flag's name with ``_`` for ``-``.
    """

    flag: str
    path: str
    help: str
    type: Callable[[str], Any] | None = None
    metavar: str | None = None
    choices: Sequence[str] | None = None
    const: Any = _NOT_CONST
    dest: str | None = None

    @property
    def attribute(self) -> str:
        """Where argparse stores the flag's value."""
        return self.dest or self.flag.lstrip("-").replace("-", "_")

    def add_to(
        self, parser: argparse.ArgumentParser | argparse._ArgumentGroup, default: Any = None
    ) -> None:
        """Add the flag; its default is None (not given), whatever the settings default.

        ``default=argparse.SUPPRESS`` leaves the namespace alone when the flag is not given
        (a subcommand's copy of a program-wide flag).
        """
        if self.const is not _NOT_CONST:
            parser.add_argument(
                self.flag,
                dest=self.attribute,
                action="store_const",
                const=self.const,
                default=default,
                help=self.help,
            )
            return
        kwargs: dict[str, Any] = {
            "metavar": self.metavar,
            "choices": self.choices,
            "default": default,
        }
        if self.type is not None:
            kwargs["type"] = self.type
        parser.add_argument(self.flag, dest=self.attribute, help=self.help, **kwargs)


def add_setting_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, flags: Iterable[SettingFlag]
) -> None:
    """Add every flag of ``flags`` to ``parser``."""
    for flag in flags:
        flag.add_to(parser)


def setting_overrides(args: argparse.Namespace, flags: Iterable[SettingFlag]) -> dict[str, Any]:
    """The flags given on the command line, as a nested settings mapping."""
    nested: dict[str, Any] = {}
    for flag in flags:
        value = getattr(args, flag.attribute, None)
        if value is None:
            continue
        *parents, leaf = flag.path.split(".")
        node = nested
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return nested


def add_config_flag(parser: argparse.ArgumentParser | argparse._ArgumentGroup, help: str) -> None:
    """The ``--config FILE`` flag: the YAML settings file read first."""
    parser.add_argument("--config", metavar="FILE", help=help)


def add_replay_flags(parser: argparse.ArgumentParser, labels_help: str) -> None:
    """``--history FILE`` and ``--labels FILE``: replay what serve saw (``score``, ``evaluate``)."""
    parser.add_argument(
        "--history",
        metavar="FILE",
        help="behavioural features: raw history (CSV or Parquet) computed into the state first",
    )
    parser.add_argument("--labels", metavar="FILE", help=labels_help)


def csv_choice(allowed: Sequence[str], what: str) -> Callable[[str], tuple[str, ...]]:
    """An argparse ``type`` for a comma-separated, non-empty subset of ``allowed``.

    >>> csv_choice(("a", "b"), "--letters")("b, a")
    ('b', 'a')
    >>> csv_choice(("a", "b"), "--letters")("c")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: --letters must be a comma-separated subset of a,b; got 'c'
    """

    def parse(text: str) -> tuple[str, ...]:
        values = tuple(v.strip() for v in text.split(",") if v.strip())
        bad = [v for v in values if v not in allowed]
        if bad or not values:
            raise argparse.ArgumentTypeError(
                f"{what} must be a comma-separated subset of {','.join(allowed)}; got {text!r}"
            )
        return values

    return parse


def threshold_value(text: str) -> float:
    """An argparse ``type`` for a threshold: a number in [0, 1].

    >>> threshold_value("0.25")
    0.25
    >>> threshold_value("1.5")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be in [0, 1]; got 1.5
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1]; got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1]; got {text}")
    return value


THRESHOLD = SettingFlag(
    "--threshold",
    "threshold",
    type=threshold_value,
    metavar="X",
    help="override the bundle's threshold, in [0, 1]",
)
"""``--threshold X`` (``serve``, ``score``): checked in [0, 1] as it is parsed, so both
commands refuse a bad value in the same words."""

LOG_LEVEL = SettingFlag(
    "--log-level",
    "log_level",
    choices=get_args(LogLevel),
    help="logging level (default INFO; serve: the config's log_level)",
)
"""The program's ``--log-level``, before or after the subcommand; ``serve`` reads it as
``log_level``."""


def configure_logging(level: str) -> None:
    """Log to stderr at ``level`` as ``key=value`` lines; kafka-python speaks only at DEBUG.

    kafka-python logs every failed connection attempt; the service logs what matters
    (retries, publish failures) itself, so the client is quiet unless ``level`` is DEBUG.
    Called again (``serve`` once its settings are read), it changes the level in force. As
    with :func:`logging.basicConfig`, a process whose logging was set up elsewhere (an
    embedding application, a test runner) keeps its handlers and root level.
    """
    global _owns_root_logger
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format=_LOG_FORMAT, stream=sys.stderr)
        _owns_root_logger = True
    if _owns_root_logger:
        root.setLevel(level)
    logging.getLogger("kafka").setLevel(logging.DEBUG if level == "DEBUG" else logging.CRITICAL)
