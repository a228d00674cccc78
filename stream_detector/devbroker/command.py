"""``stream-detector broker``: run a development broker in the foreground (development only).

``--kind tansu`` (the default) runs the embedded Tansu broker; ``--kind apache`` runs Apache
Kafka (single-node KRaft; Java 17+, and Maven the first time to fetch its jars). It creates the
default topics, prints the bootstrap address and runs until SIGINT or SIGTERM, then stops the
broker and exits 0.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import threading
from contextlib import AbstractContextManager
from typing import ClassVar

from stream_detector.command import Command
from stream_detector.config import NotifySettings, TopicSettings
from stream_detector.devbroker.kinds import BROKER_KINDS, make_broker
from stream_detector.errors import BrokerError, ConfigError
from stream_detector.signals import handling

__all__ = ["DEFAULT_TOPICS", "BrokerCommand", "format_topic_spec", "parse_topic_spec"]

_TOPICS = TopicSettings()
#: The default topics of ``serve`` and ``notify`` and a partition count for each.
DEFAULT_TOPICS: dict[str, int] = {
    _TOPICS.events: 4,
    _TOPICS.labels: 1,
    _TOPICS.decisions: 4,
    _TOPICS.alerts: 4,
    _TOPICS.dead_letter: 1,
    NotifySettings().dead_letter: 1,
}
# Kafka's rule for topic names: 1-249 characters from [a-zA-Z0-9._-].
_TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")
_MAX_PARTITIONS = 10_000


def parse_topic_spec(text: str) -> dict[str, int]:
    """Parse ``"events:4,labels:1"`` into ``{"events": 4, "labels": 1}``.

    A topic without ``:N`` gets one partition; an empty string means no topics.

    Raises
    ------
    ConfigError
        If a name is not a legal Kafka topic name, a partition count is not an integer in
        [1, 10000], or a topic appears twice.

    Examples
    --------
    >>> parse_topic_spec("events:4, labels")
    {'events': 4, 'labels': 1}
    >>> parse_topic_spec("events:0")
    Traceback (most recent call last):
    ...
    stream_detector.errors.ConfigError: topic 'events': partitions must be an integer in [1, 10000]; got '0'
    """
    topics: dict[str, int] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, count = item.partition(":")
        name, count = name.strip(), count.strip()
        if not _TOPIC_NAME.fullmatch(name) or name in (".", ".."):
            raise ConfigError(
                f"topic spec {item!r}: expected NAME[:PARTITIONS] with NAME made of "
                f"letters, digits, '.', '_' and '-'"
            )
        partitions = 1
        if sep:
            if not (count.isascii() and count.isdigit()) or not 1 <= int(count) <= _MAX_PARTITIONS:
                raise ConfigError(
                    f"topic {name!r}: partitions must be an integer in [1, {_MAX_PARTITIONS}]; "
                    f"got {count!r}"
                )
            partitions = int(count)
        if name in topics:
            raise ConfigError(f"topic {name!r} appears more than once in the topic spec")
        topics[name] = partitions
    return topics


def format_topic_spec(topics: dict[str, int]) -> str:
    """The inverse of :func:`parse_topic_spec`.

    Examples
    --------
    >>> format_topic_spec(DEFAULT_TOPICS)
    'events:4,labels:1,decisions:4,alerts:4,events.dlq:1,alerts.notify.dlq:1'
    """
    return ",".join(f"{name}:{partitions}" for name, partitions in topics.items())


def _stop_on_signals(stop: threading.Event) -> AbstractContextManager[None]:
    """Set ``stop`` on SIGINT/SIGTERM while the block runs; restore the old handlers after."""
    return handling(
        {signal.SIGINT: lambda name: stop.set(), signal.SIGTERM: lambda name: stop.set()}
    )


class BrokerCommand(Command):
    """Run a development Kafka broker until interrupted (development only).

    Examples
    --------
    >>> parser = argparse.ArgumentParser()
    >>> BrokerCommand().add_arguments(parser)
    >>> args = parser.parse_args(["--port", "0", "--topics", "events:2"])
    >>> args.kind, args.port, args.topics
    ('tansu', 0, {'events': 2})
    """

    name: ClassVar[str] = "broker"
    help: ClassVar[str] = "run a development Kafka broker: Tansu or Apache Kafka (development only)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--kind",
            choices=BROKER_KINDS,
            default="tansu",
            help="tansu: the embedded broker (default); apache: Apache Kafka, single-node KRaft "
            "(needs Java 17+; fetches the pinned version with Maven once, then cached)",
        )
        parser.add_argument(
            "--port",
            type=int,
            default=9092,
            help="port on 127.0.0.1 to listen on; 0 picks a free one (default 9092)",
        )
        parser.add_argument(
            "--topics",
            type=_topics_argument,
            default=dict(DEFAULT_TOPICS),
            metavar="NAME:N,...",
            help=f"topics to create (default {format_topic_spec(DEFAULT_TOPICS)}; '' for none)",
        )
        parser.add_argument(
            "--startup-timeout",
            type=float,
            default=None,
            metavar="SECONDS",
            help="how long to wait for the broker to answer (default 30; 180 for apache)",
        )

    def run(self, args: argparse.Namespace) -> int:
        if not 0 <= args.port <= 65_535:
            raise ConfigError(f"--port must be in [0, 65535]; got {args.port}")
        stop = threading.Event()
        with _stop_on_signals(stop):
            broker = make_broker(
                args.kind, port=args.port or None, startup_timeout=args.startup_timeout
            )
            with broker:
                broker.create_topics(args.topics)
                print(f"bootstrap_servers={broker.bootstrap_servers}", flush=True)
                print(f"topics={format_topic_spec(args.topics)}", flush=True)
                print("broker running; stop it with Ctrl-C or SIGTERM", file=sys.stderr, flush=True)
                while not stop.wait(0.5):
                    # A Ctrl-C in a terminal reaches the broker too: give our handler a moment.
                    if not broker.running and not stop.wait(0.5):
                        raise BrokerError(
                            f"the broker on {broker.bootstrap_servers} exited unexpectedly"
                        )
        print("broker stopped", file=sys.stderr, flush=True)
        return 0


def _topics_argument(text: str) -> dict[str, int]:
    try:
        return parse_topic_spec(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
