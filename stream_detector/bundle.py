"""The versioned model bundle: what ``train`` writes and ``score``/``serve`` load.

A bundle is a directory::

    manifest.json   what the model is, how it was trained, sha256 of every other file
    model.json      the scorer's structure (kind, parameters)
    model.npz       the scorer's arrays, loaded with ``allow_pickle=False``

Loading never executes code from the bundle: there is no pickle anywhere, arrays are plain
numbers, and the scorer is rebuilt by :func:`stream_detector.scoring.scorer_from_payload`
from a closed set of kinds. A changed, missing or unknown file, a symbolic link, or a name that
points outside the directory makes loading fail with :class:`BundleError`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from stream_detector.errors import BundleError, ConfigError
from stream_detector.features import FeatureSpec, NumericFeatures
from stream_detector.scoring import Scorer, scorer_from_payload, top_reasons

__all__ = ["FORMAT_VERSION", "Manifest", "ModelBundle", "load_bundle", "write_bundle"]

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MODEL_SPEC = "model.json"
MODEL_ARRAYS = "model.npz"
_REFERENCE = "bundle.reference"
_MAX_JSON_BYTES = 64 * 1024 * 1024
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_VERSIONED = ("stream-detector", "numpy", "scikit-learn", "imbalanced-learn", "river")


class Manifest(BaseModel):
    """``manifest.json``: the fields of the contract, validated on load."""

    model_config = ConfigDict(extra="allow", frozen=True)

    format_version: int
    model_version: str = Field(min_length=1, max_length=200)
    created_at: str
    features: list[str] = Field(min_length=1)
    label: str
    technique: str
    scorer: str
    threshold: float = Field(ge=0.0, le=1.0)
    threshold_policy: str
    class_prior_train: float = Field(ge=0.0, le=1.0)
    metrics: dict[str, float | None]
    files: dict[str, str]
    versions: dict[str, str]
    feature_spec: dict[str, Any] | None = None
    """The ``features:`` section the model was trained with; ``features`` are among its
    names. None: ``features`` are numeric event fields used as they are."""

    @field_validator("files")
    @classmethod
    def _safe_files(cls, files: dict[str, str]) -> dict[str, str]:
        for name, digest in files.items():
            if not _SAFE_NAME.match(name) or name == MANIFEST:
                raise ValueError(f"file name {name!r} is not a plain file name inside the bundle")
            if not re.fullmatch(r"[0-9a-f]{64}", digest):
                raise ValueError(f"sha256 of {name!r} is not 64 hex digits")
        return files


class ModelBundle:
    """A loaded bundle: the manifest, the scorer and the feature step.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from stream_detector.scoring import LinearScorer
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 2)); y = (X[:, 0] > 1).astype(int)
    >>> scorer = LinearScorer.from_sklearn(LogisticRegression().fit(X, y))
    >>> out = tempfile.mkdtemp()
    >>> _ = write_bundle(out, scorer=scorer, features=["a", "b"], label="y",
    ...                  technique="none", scorer_name="classifier", threshold=0.5,
    ...                  threshold_policy="fixed:0.5", class_prior_train=float(y.mean()),
    ...                  metrics={"pr_auc": 1.0}, reference=np.median(X, axis=0))
    >>> bundle = load_bundle(out)
    >>> bundle.features, bundle.threshold
    (('a', 'b'), 0.5)
    >>> bool(bundle.score_samples(np.array([[3.0, 0.0]]))[0] > 0.5)
    True
    """

    def __init__(
        self,
        manifest: Manifest,
        scorer: Scorer,
        reference: npt.NDArray[np.float64],
        path: Path | None = None,
    ) -> None:
        self.manifest = manifest
        self.scorer = scorer
        self.reference = reference
        self.path = path
        self.feature_step = NumericFeatures(manifest.features)
        self.spec: FeatureSpec | None = _spec_of(manifest)
        self.feature_index: npt.NDArray[np.intp] | None = None
        """Columns of the spec's output the model reads (None without a spec)."""
        if self.spec is not None:
            names = self.spec.names
            self.feature_index = np.array([names.index(f) for f in manifest.features])

    @property
    def features(self) -> tuple[str, ...]:
        return self.feature_step.names

    @property
    def threshold(self) -> float:
        return self.manifest.threshold

    @property
    def model_version(self) -> str:
        return self.manifest.model_version

    def score_samples(self, X: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Scores in [0, 1] for a matrix whose columns are :attr:`features`."""
        return self.scorer.score_samples(X)

    def reasons(self, X: npt.NDArray[np.float64], top: int = 3) -> list[list[dict[str, Any]]]:
        """The features that pushed each row's score up most (see ``scoring.top_reasons``)."""
        return top_reasons(self.scorer, X, self.reference, self.features, top=top)


def _spec_of(manifest: Manifest) -> FeatureSpec | None:
    """The manifest's feature spec, checked against its features; BundleError otherwise."""
    if manifest.feature_spec is None:
        return None
    try:
        spec = FeatureSpec.parse(manifest.feature_spec, where="manifest feature_spec")
    except ConfigError as exc:
        raise BundleError(str(exc)) from None
    unknown = [f for f in manifest.features if f not in spec.names]
    if unknown:
        raise BundleError(f"manifest features {unknown} are not among its feature spec's names")
    return spec


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _library_versions() -> dict[str, str]:
    found = {}
    for name in _VERSIONED:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def write_bundle(
    directory: str | os.PathLike[str],
    *,
    scorer: Scorer,
    features: Sequence[str],
    label: str,
    technique: str,
    scorer_name: str,
    threshold: float,
    threshold_policy: str,
    class_prior_train: float,
    metrics: Mapping[str, float | None],
    reference: npt.ArrayLike | None = None,
    extra: Mapping[str, Any] | None = None,
    feature_spec: FeatureSpec | None = None,
) -> Manifest:
    """Write a bundle to ``directory`` (created; must be empty or absent) and return its manifest.

    ``reference`` holds per-feature typical values (training medians) used to explain scores;
    zeros when not given. ``feature_spec`` is recorded so that ``score`` and ``serve``
    compute the same features from raw events; ``features`` must be among its names.
    """
    out = Path(directory)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BundleError(f"bundle directory {out} exists and is not empty")
    names = NumericFeatures(features).names
    if feature_spec is not None:
        unknown = [f for f in names if f not in feature_spec.names]
        if unknown:
            raise BundleError(f"features {unknown} are not among the feature spec's names")
    ref = np.zeros(len(names)) if reference is None else np.asarray(reference, dtype=np.float64)
    if ref.shape != (len(names),) or not np.all(np.isfinite(ref)):
        raise BundleError(f"reference must be {len(names)} finite numbers; got shape {ref.shape}")
    if scorer.n_features != len(names):
        raise BundleError(
            f"scorer expects {scorer.n_features} features; the bundle names {len(names)}"
        )
    spec, arrays = scorer.to_payload()
    if _REFERENCE in arrays:
        raise BundleError(f"array name {_REFERENCE!r} is reserved")
    created = datetime.now(UTC)
    out.mkdir(parents=True, exist_ok=True)
    (out / MODEL_SPEC).write_text(json.dumps(spec, indent=1, sort_keys=True), encoding="utf-8")
    np.savez(out / MODEL_ARRAYS, allow_pickle=False, **{**arrays, _REFERENCE: ref})
    files = {name: _sha256(out / name) for name in (MODEL_SPEC, MODEL_ARRAYS)}
    model_version = f"{created:%Y%m%dT%H%M%SZ}-{files[MODEL_ARRAYS][:8]}"
    body: dict[str, Any] = {
        **(dict(extra) if extra else {}),
        "format_version": FORMAT_VERSION,
        "model_version": model_version,
        "created_at": created.isoformat(),
        "features": list(names),
        "label": label,
        "technique": technique,
        "scorer": scorer_name,
        "threshold": float(threshold),
        "threshold_policy": threshold_policy,
        "class_prior_train": float(class_prior_train),
        "metrics": {k: (None if v is None else float(v)) for k, v in metrics.items()},
        "files": files,
        "versions": _library_versions(),
    }
    if feature_spec is not None:
        body["feature_spec"] = feature_spec.model_dump(mode="json")
    try:
        manifest = Manifest.model_validate(body)
    except ValidationError as exc:
        raise BundleError(f"invalid manifest: {exc.errors()[0]['msg']}") from exc
    # Write the manifest last, atomically: a bundle without one is visibly incomplete.
    with tempfile.NamedTemporaryFile("w", dir=out, delete=False, suffix=".tmp") as tmp:
        tmp.write(json.dumps(manifest.model_dump(mode="json"), indent=2))
    os.replace(tmp.name, out / MANIFEST)
    return manifest


def _read_json(path: Path, what: str) -> Any:
    if path.stat().st_size > _MAX_JSON_BYTES:
        raise BundleError(f"{what} {path} is larger than {_MAX_JSON_BYTES} bytes")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{what} {path} is not valid JSON: {exc}") from exc


def load_bundle(directory: str | os.PathLike[str]) -> ModelBundle:
    """Load and verify a bundle; raise :class:`BundleError` naming the problem."""
    root = Path(directory)
    if not root.is_dir():
        raise BundleError(f"model bundle {root} is not a directory")
    manifest_path = root / MANIFEST
    if not manifest_path.is_file() or manifest_path.is_symlink():
        raise BundleError(f"model bundle {root} has no {MANIFEST}")
    raw = _read_json(manifest_path, "manifest")
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "<root>"
        raise BundleError(f"manifest of {root} is invalid at '{key}': {err['msg']}") from exc
    if manifest.format_version != FORMAT_VERSION:
        raise BundleError(
            f"bundle format_version {manifest.format_version} is not supported; "
            f"this version reads {FORMAT_VERSION}"
        )
    present = {p.name for p in root.iterdir()} - {MANIFEST}
    unknown = sorted(present - set(manifest.files))
    if unknown:
        raise BundleError(f"model bundle {root} holds files the manifest does not list: {unknown}")
    missing = sorted(set(manifest.files) - present)
    if missing:
        raise BundleError(f"model bundle {root} is missing files: {missing}")
    for name, expected in manifest.files.items():
        path = root / name
        if path.is_symlink() or not path.is_file():
            raise BundleError(f"bundle file {name} is not a regular file")
        if _sha256(path) != expected:
            raise BundleError(f"bundle file {name} does not match its sha256 in the manifest")
    if MODEL_SPEC not in manifest.files or MODEL_ARRAYS not in manifest.files:
        raise BundleError(f"model bundle {root} must list {MODEL_SPEC} and {MODEL_ARRAYS}")
    spec = _read_json(root / MODEL_SPEC, "model spec")
    try:
        with np.load(root / MODEL_ARRAYS, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (ValueError, OSError, EOFError) as exc:
        raise BundleError(f"bundle arrays {MODEL_ARRAYS} cannot be read safely: {exc}") from exc
    reference = arrays.pop(_REFERENCE, None)
    n = len(manifest.features)
    if reference is None or reference.shape != (n,) or reference.dtype.kind != "f":
        raise BundleError(f"bundle arrays lack a float reference of {n} values")
    if not isinstance(spec, dict):
        raise BundleError(f"model spec must be a JSON object; got {type(spec).__name__}")
    scorer = scorer_from_payload(spec, arrays)
    if scorer.n_features != n:
        raise BundleError(f"scorer expects {scorer.n_features} features; the manifest names {n}")
    _spec_of(manifest)
    return ModelBundle(manifest, scorer, reference.astype(np.float64), path=root)
