from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from stream_detector.bundle import Manifest, load_bundle, write_bundle
from stream_detector.errors import BundleError
from stream_detector.scoring import LinearScorer

from .conftest import FEATURES, training_data


@pytest.fixture
def copy(bundle_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "b"
    shutil.copytree(bundle_dir, target)
    return target


def test_round_trip_keeps_manifest_and_scores(bundle_dir: Path) -> None:
    bundle = load_bundle(bundle_dir)
    m = bundle.manifest
    assert m.features == list(FEATURES)
    assert (m.label, m.technique, m.scorer, m.threshold, m.format_version) == (
        "is_fraud",
        "none",
        "classifier",
        0.5,
        1,
    )
    assert set(m.files) == {"model.json", "model.npz"}
    assert {"numpy", "scikit-learn", "stream-detector"} <= set(m.versions)
    for key in ("pr_auc", "roc_auc", "precision", "recall"):
        assert key in m.metrics
    X, _ = training_data(50, seed=3)
    again = load_bundle(bundle_dir)
    np.testing.assert_array_equal(bundle.score_samples(X), again.score_samples(X))
    assert np.all((bundle.score_samples(X) >= 0) & (bundle.score_samples(X) <= 1))


def test_manifest_on_disk_has_every_contract_field(bundle_dir: Path) -> None:
    raw = json.loads((bundle_dir / "manifest.json").read_text())
    for key in Manifest.model_fields:
        assert key in raw


def test_modified_file_is_refused(copy: Path) -> None:
    spec = copy / "model.json"
    spec.write_text(spec.read_text().replace("}", " }", 1))
    with pytest.raises(BundleError, match=r"model\.json does not match its sha256"):
        load_bundle(copy)


def test_extra_file_is_refused(copy: Path) -> None:
    (copy / "payload.pkl").write_bytes(b"\x80\x04cos\nsystem\n.")
    with pytest.raises(BundleError, match=r"does not list: \['payload.pkl'\]"):
        load_bundle(copy)


def test_missing_file_is_refused(copy: Path) -> None:
    (copy / "model.npz").unlink()
    with pytest.raises(BundleError, match=r"missing files: \['model.npz'\]"):
        load_bundle(copy)


def test_pickled_array_is_refused_without_unpickling(copy: Path, tmp_path: Path) -> None:
    # A valid-looking npz whose array is a pickled object, with the manifest's hash updated:
    # loading must refuse it rather than run it.
    marker = tmp_path / "ran"
    evil = np.array([_Evil(str(marker))], dtype=object)
    np.savez(copy / "model.npz", coef=evil, allow_pickle=True)
    _rehash(copy, "model.npz")
    with pytest.raises(BundleError, match="cannot be read safely"):
        load_bundle(copy)
    assert not marker.exists()


class _Evil:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (Path(self.path).touch, ())


def test_manifest_pointing_outside_is_refused(copy: Path) -> None:
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"]["../../etc/passwd"] = "0" * 64
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="not a plain file name"):
        load_bundle(copy)


def test_symlinked_file_is_refused(copy: Path, bundle_dir: Path) -> None:
    (copy / "model.json").unlink()
    (copy / "model.json").symlink_to(bundle_dir / "model.json")
    with pytest.raises(BundleError, match="not a regular file"):
        load_bundle(copy)


def test_unknown_format_version_is_refused(copy: Path) -> None:
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["format_version"] = 99
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="format_version 99 is not supported"):
        load_bundle(copy)


@pytest.mark.parametrize("content", ["not json", "[]", '{"format_version": 1}'])
def test_broken_manifest_is_refused(copy: Path, content: str) -> None:
    (copy / "manifest.json").write_text(content)
    with pytest.raises(BundleError, match="manifest"):
        load_bundle(copy)


def test_missing_directory_or_manifest(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="is not a directory"):
        load_bundle(tmp_path / "nope")
    with pytest.raises(BundleError, match=r"has no manifest\.json"):
        load_bundle(tmp_path)


def test_write_refuses_a_non_empty_directory_and_bad_reference(tmp_path: Path) -> None:
    X, y = training_data(200)
    from sklearn.linear_model import LogisticRegression

    scorer = LinearScorer.from_sklearn(LogisticRegression().fit(X, y))
    common = dict(
        scorer=scorer,
        features=FEATURES,
        label="y",
        technique="none",
        scorer_name="classifier",
        threshold=0.5,
        threshold_policy="fixed:0.5",
        class_prior_train=0.1,
        metrics={},
    )
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(BundleError, match="not empty"):
        write_bundle(tmp_path / "full", **common)
    with pytest.raises(BundleError, match="reference must be 3 finite numbers"):
        write_bundle(tmp_path / "r", reference=[1.0, np.nan, 2.0], **common)
    with pytest.raises(BundleError, match="expects 3 features; the bundle names 2"):
        write_bundle(tmp_path / "f", **{**common, "features": ["a", "b"]})


def _rehash(root: Path, name: str) -> None:
    import hashlib

    manifest = json.loads((root / "manifest.json").read_text())
    manifest["files"][name] = hashlib.sha256((root / name).read_bytes()).hexdigest()
    (root / "manifest.json").write_text(json.dumps(manifest))
