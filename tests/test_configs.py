"""The shipped configs document the settings: every field is in the file with a comment, and
every key in the file (written out or commented out) is a field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from offline.config import TrainSettings
from stream_detector.config import DetectorSettings

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [
    pytest.param(ROOT / "configs" / "detector.yaml", DetectorSettings, id="detector"),
    pytest.param(ROOT / "configs" / "train.yaml", TrainSettings, id="train"),
]

# "key: value  # comment", "key:" (a section), or "# key: value  # comment" (a key with no
# default, shown commented out). The ":" must end the word, so "alert_rate:R" is prose.
_KEY = re.compile(r"^(?P<indent> *)(?P<off># )?(?P<key>[A-Za-z_]\w*):(?:\s+(?P<rest>.*))?$")


def _keys(path: Path) -> dict[str, bool]:
    """Every key of a YAML config as a dotted path -> whether a comment documents it.

    A key is documented by a trailing comment, or by a comment line right above it at the
    same indentation. Flow values (``[a, b]``, ``{0: 1.0}``) are values, not keys.
    """
    keys: dict[str, bool] = {}
    stack: list[tuple[int, str]] = []
    header: int | None = None  # indentation of the comment line just above, if any
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _KEY.match(line)
        if match is None:
            stripped = line.lstrip(" ")
            header = len(line) - len(stripped) if stripped.startswith("#") else None
            continue
        indent, key, rest = len(match["indent"]), match["key"], match["rest"] or ""
        while stack and stack[-1][0] >= indent:
            stack.pop()
        dotted = ".".join([*(k for _, k in stack), key])
        value, _, comment = rest.partition("#") if not rest.startswith("#") else ("", "", rest)
        keys[dotted] = bool(comment.strip()) or header == indent
        if not value.strip() and not match["off"]:
            stack.append((indent, key))  # a section: the keys below belong to it
        header = None
    return keys


def _fields(model: type[BaseModel], prefix: str = "") -> dict[str, bool]:
    """Every field of a settings model as a dotted path -> whether it is a section."""
    out: dict[str, bool] = {}
    for name, field in model.model_fields.items():
        section = isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
        out[prefix + name] = section
        if section:
            assert isinstance(field.annotation, type)
            out.update(_fields(field.annotation, f"{prefix}{name}."))
    return out


@pytest.mark.parametrize(("path", "settings"), CONFIGS)
def test_every_settings_field_is_in_the_shipped_file_with_a_comment(
    path: Path, settings: type[BaseModel]
) -> None:
    keys, fields = _keys(path), _fields(settings)
    missing = sorted(set(fields) - set(keys))
    assert not missing, f"{path.name} lacks settings fields: {missing}"
    undocumented = sorted(k for k, section in fields.items() if not section and not keys[k])
    assert not undocumented, f"{path.name}: keys without a comment: {undocumented}"


@pytest.mark.parametrize(("path", "settings"), CONFIGS)
def test_every_key_of_the_shipped_file_is_a_settings_field(
    path: Path, settings: type[BaseModel]
) -> None:
    unknown = sorted(set(_keys(path)) - set(_fields(settings)))
    assert not unknown, f"{path.name} has keys that are no settings field: {unknown}"
    # the values written out are the defaults: the file documents, it does not configure
    assert settings.load(path) == settings.load()  # type: ignore[attr-defined]


def test_the_key_reader_sees_commented_out_keys_sections_and_comments(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "# prose: a commented-out key, so a field, or the file is wrong\n"
        "a: 1            # documented\n"
        "b:\n"
        "  # the header documents c\n"
        "  c: [x, y]\n"
        "  # d: null     # commented out, documented\n"
        "  e: 2\n"
        "                # a continuation line documents nothing below it\n"
        "f: 3\n"
    )
    assert _keys(config) == {
        "prose": False,
        "a": True,
        "b": False,
        "b.c": True,
        "b.d": True,
        "b.e": False,
        "f": False,
    }
