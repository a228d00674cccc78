"""The shipped configs document the settings: every field is in the file with a comment, and
every key in the file (written out or commented out) is a field."""

from __future__ import annotations

import re
import types
import typing
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


def _section_model(annotation: object) -> type[BaseModel] | None:
    """The model a field holds: itself, optional (``Model | None``) or as a list of items."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, tuple):
        models = [m for m in map(_section_model, typing.get_args(annotation)) if m is not None]
        return models[0] if len(models) == 1 else None
    return None


def _fields(model: type[BaseModel], prefix: str = "", *, item: bool = False) -> dict[str, str]:
    """Every field of a settings model as a dotted path -> its kind: ``"section"`` (a model,
    an optional model or a list of models), ``"item"`` (a key of a list's items, documented by
    the comment block above the list) or ``"key"`` (documented by its own comment)."""
    out: dict[str, str] = {}
    for name, field in model.model_fields.items():
        section = _section_model(field.annotation)
        out[prefix + name] = "section" if section is not None else "item" if item else "key"
        if section is not None:
            listed = typing.get_origin(field.annotation) in (list, tuple)
            out.update(_fields(section, f"{prefix}{name}.", item=item or listed))
    return out


@pytest.mark.parametrize(("path", "settings"), CONFIGS)
def test_every_settings_field_is_in_the_shipped_file_with_a_comment(
    path: Path, settings: type[BaseModel]
) -> None:
    keys, fields = _keys(path), _fields(settings)
    missing = sorted(set(fields) - set(keys))
    assert not missing, f"{path.name} lacks settings fields: {missing}"
    undocumented = sorted(k for k, kind in fields.items() if kind == "key" and not keys[k])
    assert not undocumented, f"{path.name}: keys without a comment: {undocumented}"
    comments = "\n".join(line.partition("#")[2] for line in path.read_text().splitlines())
    items = sorted(k for k, kind in fields.items() if kind == "item")
    unexplained = [k for k in items if f"{k.rpartition('.')[2]}:" not in comments]
    assert not unexplained, f"{path.name}: list item keys no comment explains: {unexplained}"


@pytest.mark.parametrize(("path", "settings"), CONFIGS)
def test_every_key_of_the_shipped_file_is_a_settings_field(
    path: Path, settings: type[BaseModel]
) -> None:
    unknown = sorted(set(_keys(path)) - set(_fields(settings)))
    assert not unknown, f"{path.name} has keys that are no settings field: {unknown}"
    # the values written out are the defaults: the file documents, it does not configure;
    # except train.yaml's behavioural features, an example set for card transactions that
    # training uses when given this file (no section: the numeric fields as they are)
    loaded = settings.load(path)  # type: ignore[attr-defined]
    if settings is TrainSettings:
        assert loaded.features is not None
        loaded = loaded.model_copy(update={"features": None})
    assert loaded == settings.load()  # type: ignore[attr-defined]


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
