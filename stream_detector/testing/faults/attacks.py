"""Attacks on a model bundle, for scenario 7: each edits a copy of a good bundle in place.

``ATTACKS`` maps each attack to the message ``serve`` must refuse the bundle with. A marker
file appears if code from the bundle ever runs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np


class _Marker:
    """Unpickling this creates a file: proof that code from the bundle ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, ...]:
        return (Path(self.path).touch, ())


def _rehash(root: Path, name: str) -> None:
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["files"][name] = hashlib.sha256((root / name).read_bytes()).hexdigest()
    (root / "manifest.json").write_text(json.dumps(manifest))


def extra_pickle_file(root: Path, marker: Path) -> None:
    import pickle

    (root / "payload.pkl").write_bytes(pickle.dumps(_Marker(str(marker))))


def pickled_array_rehashed(root: Path, marker: Path) -> None:
    np.savez(
        root / "model.npz", coef=np.array([_Marker(str(marker))], dtype=object), allow_pickle=True
    )
    _rehash(root, "model.npz")


def manifest_points_outside(root: Path, marker: Path) -> None:
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["files"]["../../etc/passwd"] = "0" * 64
    (root / "manifest.json").write_text(json.dumps(manifest))


def modified_file(root: Path, marker: Path) -> None:
    spec = root / "model.json"
    spec.write_text(spec.read_text().replace("}", " }", 1))


def symlink_points_outside(root: Path, marker: Path) -> None:
    (root / "model.json").unlink()
    (root / "model.json").symlink_to("/etc/hostname")


ATTACKS: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "extra pickle file": (
        extra_pickle_file,
        "holds files the manifest does not list: ['payload.pkl']",
    ),
    "pickled array, manifest rehashed": (
        pickled_array_rehashed,
        "bundle arrays model.npz cannot be read safely",
    ),
    "manifest points outside": (
        manifest_points_outside,
        "is not a plain file name inside the bundle",
    ),
    "symlink points outside": (
        symlink_points_outside,
        "bundle file model.json is not a regular file",
    ),
    "modified file": (modified_file, "bundle file model.json does not match its sha256"),
}
