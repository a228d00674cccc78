"""The checker must catch every kind of fault it claims to report."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from stream_detector.testing.faults.checker import Sent, accounted, check, separate_resent_alerts


@dataclass
class Rec:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def decision(event_id: str, score: float, threshold: float = 0.5) -> Rec:
    body = {
        "event_id": event_id,
        "score": score,
        "threshold": threshold,
        "flagged": score >= threshold,
    }
    return Rec(event_id.encode(), orjson.dumps(body))


def alert(event_id: str, score: float = 0.9) -> Rec:
    body = {
        "event_id": event_id,
        "score": score,
        "threshold": 0.5,
        "flagged": True,
        "reasons": [{"feature": "a", "value": 1.0, "contribution": 0.1}],
    }
    return Rec(event_id.encode(), orjson.dumps(body))


def dead(key: bytes, value: bytes, reason: str = "not_json", **extra: bytes) -> Rec:
    headers = [
        ("error.type", reason.encode()),
        ("error.message", b"m"),
        ("source.topic", b"e"),
        ("source.partition", b"0"),
        ("source.offset", b"1"),
        *extra.items(),
    ]
    return Rec(key, value, headers)


SENT = [
    Sent(b"e1", b'{"x": 1}', "e1"),
    Sent(b"e2", b'{"x": 2}', "e2"),
    Sent(b"bad1", b"{nope", None, "not_json"),
]


def good() -> tuple[list[Rec], list[Rec], list[Rec]]:
    return [decision("e1", 0.9), decision("e2", 0.1)], [alert("e1")], [dead(b"bad1", b"{nope")]


def test_a_clean_run_is_ok() -> None:
    report = check(SENT, *good())
    assert report.ok(exactly_once_decisions=True), report.details()
    assert (report.valid, report.invalid, report.decisions, report.alerts, report.dead_letters) == (
        2,
        1,
        2,
        1,
        1,
    )


def test_lost_events_dead_letters_and_alerts_are_reported() -> None:
    decisions, _alerts, dead_letters = good()
    report = check(SENT, decisions[1:], [], [])
    assert report.lost == ["e1"]
    assert report.lost_dead_letters == [b"bad1"]
    assert not report.ok()
    report = check(SENT, decisions, [], dead_letters)
    assert report.lost_alerts == ["e1"]
    assert not report.ok()


def test_duplicates_are_counted_and_only_alerts_fail_at_least_once() -> None:
    decisions, alerts, dead_letters = good()
    report = check(SENT, [*decisions, decision("e1", 0.9)], alerts, dead_letters + dead_letters)
    assert report.duplicated_decisions == {"e1": 2}
    assert report.duplicated_dead_letters == {b"bad1": 2}
    assert report.ok()
    assert not report.ok(exactly_once_decisions=True)
    report = check(SENT, decisions, alerts + alerts, dead_letters)
    assert report.duplicated_alerts == {"e1": 2}
    assert not report.ok()


def test_an_alert_once_on_a_lost_broker_and_once_on_its_replacement_is_reported_apart() -> None:
    decisions, alerts, dead_letters = good()
    before, after = (decisions, [decision("e1", 0.9)]), (alerts, [alert("e1")])
    report = check(SENT, [*before[0], *before[1]], [*after[0], *after[1]], dead_letters)
    assert report.duplicated_alerts == {"e1": 2}
    separate_resent_alerts(report, before, after)
    assert report.duplicated_alerts == {}
    assert report.alerts_resent_after_broker_loss == ["e1"]
    assert report.ok()
    assert "alerts_resent_after_broker_loss=1" in report.summary()


@pytest.mark.parametrize(
    ("decisions", "alerts"),
    [
        # Twice on one broker: a duplicate, whatever the other broker holds.
        (
            ([decision("e1", 0.9), decision("e2", 0.1)], [decision("e1", 0.9)]),
            ([alert("e1"), alert("e1")], [alert("e1")]),
        ),
        # The second alert without its decision beside it: not a batch sent again.
        (([decision("e1", 0.9), decision("e2", 0.1)], []), ([alert("e1")], [alert("e1")])),
    ],
)
def test_other_repeated_alerts_stay_duplicates(decisions: Any, alerts: Any) -> None:
    flat = [r for d in decisions for r in d], [r for a in alerts for r in a]
    report = check(SENT, *flat, [dead(b"bad1", b"{nope")])
    separate_resent_alerts(report, decisions, alerts)
    assert "e1" in report.duplicated_alerts
    assert report.alerts_resent_after_broker_loss == []
    assert report.n_lost == 0
    assert not report.misrouted
    assert not report.ok()


@pytest.mark.parametrize(
    ("decisions", "alerts", "dead_letters", "problem"),
    [
        (
            [decision("e1", 0.9), decision("e2", 0.1), decision("bad1", 0.2)],
            [alert("e1")],
            [dead(b"bad1", b"{nope")],
            "decision for an invalid message",
        ),
        (
            [decision("e1", 0.9), decision("e2", 0.1), decision("zzz", 0.2)],
            [alert("e1")],
            [dead(b"bad1", b"{nope")],
            "decision for an id never sent",
        ),
        (
            [decision("e1", 0.9), decision("e2", 0.1)],
            [alert("e1"), alert("e2")],
            [dead(b"bad1", b"{nope")],
            "did not flag",
        ),
        (
            [decision("e1", 0.9), decision("e2", 0.1)],
            [alert("e1")],
            [dead(b"bad1", b"{nope"), dead(b"e2", b'{"x": 2}')],
            "dead letter for a valid event",
        ),
        (
            [decision("e1", 0.9), decision("e2", 0.1)],
            [alert("e1")],
            [dead(b"bad1", b"{changed")],
            "differs from the original",
        ),
        (
            [decision("e1", 0.9), decision("e2", 0.1)],
            [alert("e1")],
            [dead(b"bad1", b"{nope", reason="empty")],
            "reason",
        ),
        (
            [decision("e1", 0.9), decision("e2", 0.1), decision("e1", 0.1)],
            [alert("e1")],
            [dead(b"bad1", b"{nope")],
            "disagree",
        ),
        (
            [
                Rec(
                    b"e1",
                    orjson.dumps(
                        {"event_id": "e2", "score": 0.9, "threshold": 0.5, "flagged": True}
                    ),
                ),
                decision("e2", 0.1),
            ],
            [alert("e1")],
            [dead(b"bad1", b"{nope")],
            "holds another event",
        ),
    ],
)
def test_misrouted_messages_are_reported(
    decisions: list[Rec], alerts: list[Rec], dead_letters: list[Rec], problem: str
) -> None:
    report = check(SENT, decisions, alerts, dead_letters)
    assert not report.ok()
    assert any(problem in m for m in report.misrouted), report.misrouted


def test_truncated_dead_letters_are_checked_against_the_original() -> None:
    original = b"x" * 100
    sent = [Sent(b"big", original, None, "too_large")]
    digest = hashlib.sha256(original).hexdigest().encode()
    ok = dead(
        b"big",
        original[:10],
        "too_large",
        **{"error.truncated": b"true", "source.value_bytes": b"100", "source.value_sha256": digest},
    )
    assert check(sent, [], [], [ok]).ok()
    bad = dead(
        b"big",
        original[:10],
        "too_large",
        **{
            "error.truncated": b"true",
            "source.value_bytes": b"100",
            "source.value_sha256": b"0" * 64,
        },
    )
    assert "sha256" in check(sent, [], [], [bad]).misrouted[0]


def test_scores_are_compared_with_an_oracle() -> None:
    report = check(SENT, *good(), expected_scores={"e1": 0.9, "e2": 0.2})
    assert report.misrouted == ["decision 'e2': score 0.1 != oracle 0.2"]


def test_accounted_counts_decisions_and_dead_letters() -> None:
    assert accounted(SENT, [b"e1"], [b"bad1"]) == {b"e1", b"bad1"}
