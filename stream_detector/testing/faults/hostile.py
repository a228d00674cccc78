"""Hostile input for the fault harness: hypothesis strategies and a running service to feed.

Every generated message knows what must become of it: a decision (with the score the model
gives its feature values) or a dead letter with one exact reason. Each message has a single
defect, so the reason is unambiguous:

=================  ==========================================================================
reason             how it is made
=================  ==========================================================================
empty              no bytes at all
too_large          over ``max_message_bytes`` (refused before parsing)
not_utf8           a valid event with invalid UTF-8 inside a string
not_json           cut short, trailing garbage, a lone surrogate escape, a byte-order mark,
                   nesting deeper than the parser's 200 levels
not_object         a JSON scalar or array
missing_feature    a feature left out
non_numeric        a feature that is a string, bool, null, list or object; a duplicated key
                   whose *last* value is not a number
non_finite         a feature that is NaN, Infinity, 1e400 or a 400-digit integer
bad_identifier     an ``event_id`` that is a number, empty or over 512 characters
bad_timestamp      a ``timestamp`` that is a bool, a list or not a date
(any)              random bytes
=================  ==========================================================================

Valid events come with noise the parser must ignore: unknown fields holding deep (but legal)
nesting, huge integers, NaN, escaped NULs, unicode; whitespace; and duplicated keys, where
the last value wins (as in Python's ``json`` and in orjson), so the decision uses it.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from hypothesis import strategies as st

from .checker import Report, Sent, check
from .harness import FEATURES, FaultTopics, OutputCollector, produce

EID = b"@@EID@@"
"""Placeholder a valid message's ``event_id`` replaces, once the harness picks the id."""


class Hostile:
    """One generated message and what must become of it.

    A plain class, not a dataclass: hypothesis prints dataclasses field by field, and a
    failing example may hold megabytes.
    """

    __slots__ = ("key_suffix", "reason", "value", "values")

    def __init__(
        self,
        value: bytes,
        reason: str | None,
        values: tuple[float, ...] | None = None,
        key_suffix: bytes = b"",
    ) -> None:
        self.value = value
        self.reason = reason
        """The dead-letter reason, or None when any reason will do (random bytes)."""
        self.values = values
        """For a valid event: the feature values the decision must be scored on."""
        self.key_suffix = key_suffix

    @property
    def valid(self) -> bool:
        return self.values is not None

    def __repr__(self) -> str:
        shown = self.value if len(self.value) <= 120 else self.value[:120] + b"..."
        return f"Hostile({shown!r} ({len(self.value)} bytes), {self.reason!r}, {self.values!r})"


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
_text = st.text(max_size=20)


def _field(name: bytes, raw: bytes) -> bytes:
    return b'"' + name + b'": ' + raw


def _obj(fields: list[bytes]) -> bytes:
    return b"{" + b", ".join(fields) + b"}"


def _num(x: float) -> bytes:
    return orjson.dumps(x)


@st.composite
def _noise(draw: st.DrawFn) -> list[bytes]:
    """Unknown fields a valid event may carry."""
    kinds = draw(
        st.lists(st.sampled_from(["deep", "bigint", "nan", "nul", "text", "inf"]), max_size=3)
    )
    out = []
    for i, kind in enumerate(kinds):
        name = b"x%d" % i
        if kind == "deep":
            depth = draw(st.integers(1, 150))
            out.append(_field(name, b"[" * depth + b"]" * depth))
        elif kind == "bigint":
            out.append(_field(name, b"9" * draw(st.integers(20, 500))))
        elif kind == "nan":
            out.append(_field(name, draw(st.sampled_from([b"NaN", b"Infinity", b"-Infinity"]))))
        elif kind == "inf":
            out.append(_field(name, b"1e400"))
        elif kind == "nul":
            out.append(_field(name, b'"a\\u0000b"'))
        else:
            out.append(_field(name, orjson.dumps(draw(_text))))
    return out


def _event_fields(values: tuple[float, ...]) -> list[bytes]:
    return [_field(n.encode(), _num(v)) for n, v in zip(FEATURES, values, strict=True)]


@st.composite
def valid_event(draw: st.DrawFn) -> Hostile:
    values = tuple(draw(finite) for _ in FEATURES)
    fields = [_field(b"event_id", b'"' + EID + b'"'), *_event_fields(values), *draw(_noise())]
    if draw(st.booleans()):  # a duplicated feature key: the last value wins
        j = draw(st.integers(0, len(FEATURES) - 1))
        junk = draw(st.sampled_from([b'"x"', b"null", b"true", b"[1]", b"NaN"]))
        fields.insert(1, _field(FEATURES[j].encode(), junk))
    fields = draw(st.permutations(fields)) if draw(st.booleans()) else fields
    # keep the duplicate's junk before the real value
    body = _obj(_order_duplicates(list(fields)))
    if draw(st.booleans()):
        body = b" \n\t" + body + b"\n "
    return Hostile(body, None, values)


def _order_duplicates(fields: list[bytes]) -> list[bytes]:
    """Move every feature's real (numeric) value after any junk value of the same key."""

    def rank(f: bytes) -> int:
        name, _, raw = f.partition(b": ")
        is_feature = name.strip(b'"').decode() in FEATURES
        junk = raw in (b'"x"', b"null", b"true", b"[1]", b"NaN")
        return 0 if (is_feature and junk) else 1

    return sorted(fields, key=rank)


@st.composite
def invalid_event(draw: st.DrawFn) -> Hostile:
    values = tuple(draw(finite) for _ in FEATURES)
    fields = [_field(b"event_id", b'"' + EID + b'"'), *_event_fields(values)]
    kind = draw(
        st.sampled_from(
            [
                "empty",
                "not_utf8",
                "not_json",
                "not_object",
                "missing_feature",
                "non_numeric",
                "non_finite",
                "bad_identifier",
                "bad_timestamp",
                "random",
            ]
        )
    )
    j = draw(st.integers(0, len(FEATURES) - 1))
    name = FEATURES[j].encode()
    if kind == "empty":
        return Hostile(b"", "empty")
    if kind == "random":
        return Hostile(draw(st.binary(max_size=300)), None)
    if kind == "not_utf8":
        bad = draw(
            st.sampled_from([b"\xff", b"\xfe\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\x80abc"])
        )
        return Hostile(_obj([*fields, _field(b"note", b'"' + bad + b'"')]), "not_utf8")
    if kind == "not_json":
        how = draw(st.sampled_from(["cut", "trailing", "surrogate", "bom", "deep"]))
        body = _obj(fields)
        if how == "cut":
            body = body[: draw(st.integers(1, len(body) - 1))]
        elif how == "trailing":
            body += draw(st.sampled_from([b" x", b"{}", b",", b"]"]))
        elif how == "surrogate":
            body = _obj([*fields, _field(b"note", b'"\\ud800"')])
        elif how == "bom":
            body = b"\xef\xbb\xbf" + body
        else:
            depth = draw(st.integers(201, 20_000))
            body = _obj([*fields, _field(b"deep", b"[" * depth + b"]" * depth)])
        return Hostile(body, "not_json")
    if kind == "not_object":
        raw = draw(st.sampled_from([b"5", b"null", b'"abc"', b"[1, 2]", b"true", b"[]", b"-0.5e3"]))
        return Hostile(raw, "not_object")
    if kind == "missing_feature":
        return Hostile(
            _obj([f for f in fields if not f.startswith(b'"' + name + b'"')]), "missing_feature"
        )
    if kind == "non_numeric":
        junk = draw(st.sampled_from([b'"12"', b"true", b"null", b"[1]", b'{"v": 1}', b'""']))
        if draw(st.booleans()):  # duplicated key, junk last: the last value counts
            return Hostile(_obj([*fields, _field(name, junk)]), "non_numeric")
        kept = [f for f in fields if not f.startswith(b'"' + name + b'"')]
        return Hostile(_obj([*kept, _field(name, junk)]), "non_numeric")
    if kind == "non_finite":
        raw = draw(
            st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e999", b"9" * 400])
        )
        kept = [f for f in fields if not f.startswith(b'"' + name + b'"')]
        return Hostile(_obj([*kept, _field(name, raw)]), "non_finite")
    if kind == "bad_identifier":
        raw = draw(st.sampled_from([b"5", b'""', b'"' + b"i" * 600 + b'"', b"null-entity"]))
        if raw == b"null-entity":
            return Hostile(
                _obj([*fields, _field(b"entity_id", b'"' + b"e" * 513 + b'"')]), "bad_identifier"
            )
        kept = [f for f in fields if not f.startswith(b'"event_id"')]
        return Hostile(_obj([_field(b"event_id", raw), *kept]), "bad_identifier")
    raw = draw(st.sampled_from([b"true", b"[1]", b'"yesterday"', b'{"t": 1}', b"1e400"]))
    return Hostile(_obj([*fields, _field(b"timestamp", raw)]), "bad_timestamp")


@st.composite
def too_large(draw: st.DrawFn, limit: int) -> Hostile:
    pad = draw(st.integers(limit + 1, limit + 4096))
    return Hostile(b'{"pad": "' + b"x" * pad + b'"}', "too_large")


def hostile_messages(*, max_message_bytes: int) -> st.SearchStrategy[Hostile]:
    """One hostile message (a valid one now and then), with a random key suffix."""
    base = st.one_of(valid_event(), invalid_event(), invalid_event(), too_large(max_message_bytes))
    return st.builds(
        lambda h, suffix: Hostile(h.value, h.reason, h.values, suffix), base, st.binary(max_size=12)
    )


class HostileService:
    """The service, in process, on fresh topics; :meth:`feed` sends a batch and checks it."""

    def __init__(
        self,
        broker: Any,
        bundle_path: Path,
        *,
        max_message_bytes: int = 65_536,
        dead_letter_max_bytes: int = 32_768,
    ) -> None:
        self.broker = broker
        self.bundle_path = bundle_path
        self.max_message_bytes = max_message_bytes
        self.dead_letter_max_bytes = dead_letter_max_bytes
        self.fed = 0
        self.bad_fed = 0
        self._n = 0
        self.error: BaseException | None = None

    def start(self) -> HostileService:
        from prometheus_client import CollectorRegistry

        from stream_detector.bundle import load_bundle
        from stream_detector.config import DetectorSettings
        from stream_detector.service import Service

        self.topics = FaultTopics.fresh(events=2).create(self.broker)
        self.collector = OutputCollector(self.broker.bootstrap_servers, self.topics).start()
        self.bundle = load_bundle(self.bundle_path)
        settings = DetectorSettings.load(
            overrides={
                "kafka": {"bootstrap_servers": self.broker.bootstrap_servers},
                "topics": self.topics.overrides(),
                "consumer": {
                    "group_id": f"hostile-{uuid.uuid4().hex[:8]}",
                    "session_timeout_ms": 6000,
                    "heartbeat_interval_ms": 1000,
                },
                "metrics": {"port": 0},
                "max_message_bytes": self.max_message_bytes,
                "dead_letter_max_bytes": self.dead_letter_max_bytes,
            }
        )
        self.registry = CollectorRegistry()
        self.detector = Service(settings, self.bundle, registry=self.registry)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.detector.is_ready() and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def _run(self) -> None:
        try:
            self.detector.run()
        except Exception as exc:  # noqa: BLE001 - the test asserts the service never stops
            self.error = exc

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def stop(self) -> None:
        self.detector.stop()
        self.thread.join(timeout=60)
        self.collector.stop()

    def feed(self, items: list[Hostile], *, timeout: float = 60.0) -> Report:
        """Send ``items``, each between two valid neighbours; check exactly these messages."""
        self._n += 1
        tag = f"h{self._n}-{uuid.uuid4().hex[:6]}"
        sent: list[Sent] = []
        scores: dict[str, float] = {}
        rows: list[tuple[str, tuple[float, ...]]] = []
        rng = np.random.default_rng(self._n)

        def neighbour(i: int, side: str) -> None:
            event_id = f"{tag}-n{i}{side}"
            values = (
                float(rng.gamma(2.0, 30.0)),
                float(rng.uniform(0, 24)),
                float(rng.exponential(3.0)),
            )
            body = orjson.dumps({"event_id": event_id, **dict(zip(FEATURES, values, strict=True))})
            sent.append(Sent(event_id.encode(), body, event_id))
            rows.append((event_id, values))

        for i, item in enumerate(items):
            neighbour(i, "a")
            key = f"{tag}-m{i}-".encode() + item.key_suffix
            if item.valid:
                event_id = f"{tag}-m{i}"
                assert item.values is not None
                sent.append(Sent(key, item.value.replace(EID, event_id.encode()), event_id))
                rows.append((event_id, item.values))
            else:
                sent.append(
                    Sent(key, item.value.replace(EID, f"{tag}-m{i}".encode()), None, item.reason)
                )
                self.bad_fed += 1
            neighbour(i, "b")
        if rows:
            X = np.array([v for _, v in rows], dtype=np.float64)
            for (event_id, _), score in zip(
                rows, self.bundle.score_samples(X).tolist(), strict=True
            ):
                scores[event_id] = score
        produce(self.broker.bootstrap_servers, self.topics.events, sent)
        self.fed += len(sent)
        deadline = time.monotonic() + timeout
        while len(self.collector.accounted(sent)) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.collector.drain(idle_s=0.3)
        mine = tag.encode()

        def of_batch(records: list[Any]) -> list[Any]:
            return [r for r in records if r.key is not None and r.key.startswith(mine)]

        return check(
            sent,
            of_batch(self.collector.decisions),
            of_batch(self.collector.alerts),
            of_batch(self.collector.dead_letters),
            expected_scores=scores,
        )
