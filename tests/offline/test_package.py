"""The offline package: its public names, and a command line that stays light to start."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

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


def test_type_checkers_see_the_public_names() -> None:
    """The imports under ``if TYPE_CHECKING:`` name exactly the lazily loaded public names."""
    tree = ast.parse(Path(offline.__file__).read_text())
    block = next(
        node
        for node in tree.body
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
    )
    imported = {
        (node.module, alias.name)
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    public = {
        (f"offline.{module}", name) for module, names in offline._PUBLIC.items() for name in names
    }
    assert imported == public
