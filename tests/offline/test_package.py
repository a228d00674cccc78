"""The offline package: its public names, and a command line that stays light to start."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import offline


@pytest.mark.parametrize("name", offline.__all__)
def test_public_names_resolve(name: str) -> None:
    value = getattr(offline, name)
    assert value.__name__ == name
    assert value.__module__.startswith("offline.")


def test_unknown_name() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        _ = offline.nope  # type: ignore[attr-defined]


def test_loading_the_commands_does_not_import_the_heavy_libraries(
    python_output: Callable[[str], str],
) -> None:
    code = (
        "import sys, offline.cli\n"
        "heavy = [m for m in ('sklearn', 'imblearn', 'matplotlib') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    assert python_output(code).strip() == ""
