"""Progress lines: a bar on a terminal, one plain line per candidate otherwise, or nothing."""

from __future__ import annotations

import io

from offline.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_stream_gets_one_line_per_candidate() -> None:
    out = io.StringIO()
    p = Progress(2, stream=out)
    for name in ("a", "b"):
        p.start(name)
        p.fold(1, 3)
        p.done("PR-AUC 0.5")
    assert out.getvalue() == "[1/2] a  PR-AUC 0.5\n[2/2] b  PR-AUC 0.5\n"


def test_terminal_gets_a_bar() -> None:
    out = Terminal()
    p = Progress(1, stream=out)
    p.start("a")
    p.fold(2, 4)
    assert out.getvalue().endswith("\r\x1b[K[1/1] a  [##########..........] fold 2/4")
    p.done("ok")
    assert out.getvalue().endswith("\r\x1b[K[1/1] a  ok\n")


def test_quiet_writes_nothing() -> None:
    out = Terminal()
    p = Progress(1, stream=out, enabled=False)
    p.start("a")
    p.fold(1, 1)
    p.done("ok")
    assert out.getvalue() == ""


def test_steps_show_in_place_on_a_terminal_and_are_wiped() -> None:
    out = Terminal()
    p = Progress(0, stream=out)
    p.step("fitting on all rows")
    p.step("writing the bundle")
    p.clear()
    assert out.getvalue() == "\r\x1b[Kfitting on all rows\r\x1b[Kwriting the bundle\r\x1b[K"


def test_steps_write_nothing_off_a_terminal_or_when_quiet() -> None:
    plain, quiet = io.StringIO(), Terminal()
    for p in (Progress(0, stream=plain), Progress(0, stream=quiet, enabled=False)):
        p.step("fitting")
        p.clear()
    assert (plain.getvalue(), quiet.getvalue()) == ("", "")


def test_the_search_stage_and_the_time_left_are_shown() -> None:
    out = Terminal()
    p = Progress(3, stream=out)
    p.stage = "rung 2/4, 120,000 rows"
    p.left = 3725.4
    p.start("classifier/hgb smote")
    p.fold(1, 5)
    assert out.getvalue().endswith(
        "[1/3] rung 2/4, 120,000 rows: classifier/hgb smote  [####................] fold 1/5"
        "  (about 1 h 2 min left)"
    )
    p.left = 42.0
    p.done("PR-AUC 0.5")
    assert out.getvalue().endswith(
        "\r\x1b[K[1/3] rung 2/4, 120,000 rows: classifier/hgb smote  PR-AUC 0.5  (about 42 s left)\n"
    )
    p.stage, p.left = "", None
    p.start("anomaly none")
    p.done("ok")
    assert out.getvalue().endswith("[2/3] anomaly none  ok\n")
