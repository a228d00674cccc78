"""The fault harness's checker: every input accounted for, exactly where it belongs.

In the spirit of Kafka's OffsetValidationTest and Jepsen's queue checks: given what was
produced to the events topic and everything found on the decisions, alerts and dead-letter
topics, :func:`check` reports

- lost events: a valid event without a decision, an invalid message without a dead letter,
  a flagged decision without an alert;
- duplicates: an event id with more than one decision or alert, a message key with more than
  one dead letter (with outputs from several broker lifetimes, see
  :func:`separate_resent_alerts`, an alert found once on a broker that was lost and once on
  its replacement is reported apart);
- misrouted messages: a decision or alert for a message that is invalid or was never sent, an
  alert for an event its decision did not flag, a dead letter for a valid event, with other
  bytes than the original, or with the wrong reason; decisions of one event that disagree;
  scores that differ from an oracle.

It reads nothing from the service: only what the harness sent and what the topics hold.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson


@dataclass(frozen=True, slots=True)
class Sent:
    """One message the harness produced to the events topic."""

    key: bytes
    value: bytes
    event_id: str | None
    """The event id of a valid event; None for a message the service must dead-letter."""
    reason: str | None = None
    """For an invalid message, the ``error.type`` expected (None: any reason)."""


class OutputRecord(Protocol):
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] | None


@dataclass
class Report:
    """What :func:`check` found; :attr:`ok` is the verdict."""

    sent: int = 0
    valid: int = 0
    invalid: int = 0
    decisions: int = 0
    alerts: int = 0
    dead_letters: int = 0
    lost: list[str] = field(default_factory=list)
    lost_dead_letters: list[bytes] = field(default_factory=list)
    lost_alerts: list[str] = field(default_factory=list)
    duplicated_decisions: dict[str, int] = field(default_factory=dict)
    duplicated_alerts: dict[str, int] = field(default_factory=dict)
    duplicated_dead_letters: dict[bytes, int] = field(default_factory=dict)
    misrouted: list[str] = field(default_factory=list)
    alerts_resent_after_broker_loss: list[str] = field(default_factory=list)
    """Alerts once on a lost broker and once on its replacement (see separate_resent_alerts)."""

    @property
    def n_lost(self) -> int:
        return len(self.lost) + len(self.lost_dead_letters) + len(self.lost_alerts)

    def ok(self, *, exactly_once_decisions: bool = False) -> bool:
        """No loss, no duplicated alert, nothing misrouted (and, if asked, no repeated decision)."""
        good = not (self.n_lost or self.duplicated_alerts or self.misrouted)
        if exactly_once_decisions:
            good = good and not self.duplicated_decisions and not self.duplicated_dead_letters
        return good

    def summary(self) -> str:
        return (
            f"sent={self.sent} (valid={self.valid} invalid={self.invalid}) "
            f"decisions={self.decisions} alerts={self.alerts} dead_letters={self.dead_letters} "
            f"lost={len(self.lost)} lost_dead_letters={len(self.lost_dead_letters)} "
            f"lost_alerts={len(self.lost_alerts)} "
            f"duplicated_decisions={len(self.duplicated_decisions)} "
            f"duplicated_alerts={len(self.duplicated_alerts)} "
            f"duplicated_dead_letters={len(self.duplicated_dead_letters)} "
            f"misrouted={len(self.misrouted)} "
            f"alerts_resent_after_broker_loss={len(self.alerts_resent_after_broker_loss)}"
        )

    def details(self, limit: int = 5) -> str:
        parts = [self.summary()]
        for name in (
            "lost",
            "lost_dead_letters",
            "lost_alerts",
            "duplicated_decisions",
            "duplicated_alerts",
            "duplicated_dead_letters",
            "misrouted",
            "alerts_resent_after_broker_loss",
        ):
            items = getattr(self, name)
            if items:
                shown = list(items.items() if isinstance(items, dict) else items)[:limit]
                parts.append(f"{name}: {shown}")
        return "\n".join(parts)

    def assert_ok(self, *, exactly_once_decisions: bool = False) -> None:
        assert self.ok(exactly_once_decisions=exactly_once_decisions), self.details()


def _headers(record: OutputRecord) -> dict[str, bytes]:
    return dict(record.headers or ())


def check(
    sent: Iterable[Sent],
    decisions: Iterable[OutputRecord],
    alerts: Iterable[OutputRecord],
    dead_letters: Iterable[OutputRecord],
    *,
    expected_scores: Mapping[str, float] | None = None,
    tolerance: float = 1e-9,
) -> Report:
    """Account for every message sent; see the module docstring for what is reported."""
    sent = list(sent)
    report = Report(sent=len(sent))
    valid: dict[str, Sent] = {}
    invalid: dict[bytes, Sent] = {}
    for s in sent:
        if s.event_id is not None:
            valid[s.event_id] = s
        else:
            invalid[s.key] = s
    report.valid, report.invalid = len(valid), len(invalid)
    valid_keys = {s.key for s in valid.values()}
    misrouted = report.misrouted

    decided: dict[str, list[dict[str, Any]]] = {}
    for record in decisions:
        report.decisions += 1
        event_id = _decode_key(record.key)
        if event_id not in valid:
            kind = "an invalid message" if record.key in invalid else "an id never sent"
            misrouted.append(f"decision for {kind}: {record.key!r}")
            continue
        body = orjson.loads(record.value or b"null")
        if not isinstance(body, dict) or body.get("event_id") != event_id:
            misrouted.append(f"decision keyed {event_id!r} holds another event: {body!r:.200}")
            continue
        if bool(body["flagged"]) != (body["score"] >= body["threshold"]):
            misrouted.append(f"decision {event_id!r}: flagged disagrees with score/threshold")
        expected = None if expected_scores is None else expected_scores.get(event_id)
        if expected is not None and not math.isclose(body["score"], expected, abs_tol=tolerance):
            misrouted.append(f"decision {event_id!r}: score {body['score']} != oracle {expected}")
        decided.setdefault(event_id, []).append(body)

    flagged: dict[str, bool] = {}
    for event_id, bodies in decided.items():
        flags = {bool(b["flagged"]) for b in bodies}
        if len(flags) > 1:
            misrouted.append(f"decisions of {event_id!r} disagree on flagged")
        flagged[event_id] = any(flags)
        if len(bodies) > 1:
            report.duplicated_decisions[event_id] = len(bodies)

    alert_counts: Counter[str] = Counter()
    for record in alerts:
        report.alerts += 1
        event_id = _decode_key(record.key)
        if event_id not in valid:
            kind = "an invalid message" if record.key in invalid else "an id never sent"
            misrouted.append(f"alert for {kind}: {record.key!r}")
            continue
        alert_counts[event_id] += 1
        body = orjson.loads(record.value or b"null")
        if not isinstance(body, dict) or body.get("event_id") != event_id:
            misrouted.append(f"alert keyed {event_id!r} holds another event")
        elif not body.get("flagged") or not isinstance(body.get("reasons"), list):
            misrouted.append(f"alert {event_id!r} is not flagged or has no reasons")
        if event_id in flagged and not flagged[event_id]:
            misrouted.append(f"alert for {event_id!r}, which its decision did not flag")
    report.duplicated_alerts = {k: n for k, n in alert_counts.items() if n > 1}

    dead_counts: Counter[bytes] = Counter()
    for record in dead_letters:
        report.dead_letters += 1
        key = record.key if record.key is not None else b""
        if key in valid_keys:
            misrouted.append(f"dead letter for a valid event: {key!r}")
            continue
        original = invalid.get(key)
        if original is None:
            misrouted.append(f"dead letter for a key never sent: {key!r}")
            continue
        dead_counts[key] += 1
        problem = _dead_letter_problem(record, original)
        if problem:
            misrouted.append(f"dead letter {key!r}: {problem}")
    report.duplicated_dead_letters = {k: n for k, n in dead_counts.items() if n > 1}

    report.lost = sorted(set(valid) - set(decided))
    report.lost_dead_letters = sorted(set(invalid) - set(dead_counts))
    report.lost_alerts = sorted(
        event_id for event_id, flag in flagged.items() if flag and not alert_counts[event_id]
    )
    return report


def separate_resent_alerts(
    report: Report,
    decisions_by_lifetime: Sequence[Iterable[OutputRecord]],
    alerts_by_lifetime: Sequence[Iterable[OutputRecord]],
) -> None:
    """Move alerts repeated only across broker lifetimes out of ``report.duplicated_alerts``.

    When a broker is lost with its data, an output it wrote whose acknowledgement was lost
    with it is sent again to the replacement: the service cannot know the first write
    happened. A reader of both brokers then sees it twice. Such an event has exactly one
    alert in each of two or more lifetimes and its decision in each of them too (the whole
    batch was sent again); it goes to ``report.alerts_resent_after_broker_loss``. An alert
    twice within one lifetime stays a duplicate.
    """
    alerted = [Counter(_decode_key(r.key) for r in records) for records in alerts_by_lifetime]
    decided = [{_decode_key(r.key) for r in records} for records in decisions_by_lifetime]
    for event_id in list(report.duplicated_alerts):
        where = [i for i, counts in enumerate(alerted) if counts[event_id]]
        if (
            len(where) > 1
            and all(alerted[i][event_id] == 1 for i in where)
            and all(event_id in decided[i] for i in where)
        ):
            del report.duplicated_alerts[event_id]
            report.alerts_resent_after_broker_loss.append(event_id)
    report.alerts_resent_after_broker_loss.sort()


def _decode_key(key: bytes | None) -> str:
    return key.decode("utf-8", "replace") if key is not None else ""


def _dead_letter_problem(record: OutputRecord, original: Sent) -> str | None:
    headers = _headers(record)
    value = record.value or b""
    for name in (
        "error.type",
        "error.message",
        "source.topic",
        "source.partition",
        "source.offset",
    ):
        if name not in headers:
            return f"header {name} missing"
    if original.reason is not None and headers["error.type"].decode() != original.reason:
        return f"reason {headers['error.type']!r}, expected {original.reason!r}"
    if headers.get("error.truncated") == b"true":
        if not original.value.startswith(value):
            return "truncated value is not a prefix of the original"
        if int(headers.get("source.value_bytes", b"-1")) != len(original.value):
            return "source.value_bytes is not the original length"
        digest = hashlib.sha256(original.value).hexdigest().encode()
        if headers.get("source.value_sha256") != digest:
            return "source.value_sha256 is not the original's"
        return None
    if value != original.value:
        return "value differs from the original bytes"
    return None


def accounted(
    sent: Iterable[Sent], decision_keys: Iterable[bytes], dead_letter_keys: Iterable[bytes]
) -> set[bytes]:
    """Keys of the sent messages that already have a decision or a dead letter."""
    decided = set(decision_keys)
    dead = set(dead_letter_keys)
    done = set()
    for s in sent:
        if s.event_id is not None:
            if s.event_id.encode() in decided:
                done.add(s.key)
        elif s.key in dead:
            done.add(s.key)
    return done
