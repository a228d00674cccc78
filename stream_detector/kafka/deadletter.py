"""Dead letters: the original key and value, unchanged, with headers saying why.

>>> from stream_detector.messages import Message, Source
>>> from stream_detector.errors import EventError
>>> msg = Message(b"k", b"not json", Source("events", 2, 41))
>>> [(k, v) for k, v in dead_letter_headers(msg, EventError("not_json", "bad"))]
[('error.type', b'not_json'), ('error.message', b'bad'), ('source.topic', b'events'), ('source.partition', b'2'), ('source.offset', b'41')]
"""

from __future__ import annotations

from stream_detector.errors import EventError
from stream_detector.messages import Message

__all__ = ["DEAD_LETTER_HEADERS", "dead_letter_headers"]

DEAD_LETTER_HEADERS = (
    "error.type",
    "error.message",
    "source.topic",
    "source.partition",
    "source.offset",
)
_MAX_MESSAGE_HEADER = 1024


def dead_letter_headers(message: Message, error: EventError) -> list[tuple[str, bytes]]:
    """The contract's headers, then the message's own headers (other than ours)."""
    ours = [
        ("error.type", error.reason.encode()),
        ("error.message", str(error)[:_MAX_MESSAGE_HEADER].encode("utf-8", "replace")),
        ("source.topic", message.source.topic.encode()),
        ("source.partition", str(message.source.partition).encode()),
        ("source.offset", str(message.source.offset).encode()),
    ]
    kept = [(k, v) for k, v in message.headers if k not in DEAD_LETTER_HEADERS]
    return ours + kept
