from __future__ import annotations

import json
from pathlib import Path

import pytest

from stream_detector.bundle import load_bundle
from stream_detector.cli import main
from stream_detector.errors import BundleError

from .conftest import FeatureWorld


def test_backfill_fills_the_configured_store_and_reports_it(
    feature_world: FeatureWorld, redis_server: object, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("STREAM_DETECTOR_STATE__STORE", "redis")
    monkeypatch.setenv("STREAM_DETECTOR_STATE__REDIS_URL", redis_server.url)  # type: ignore[attr-defined]
    monkeypatch.setenv("STREAM_DETECTOR_STATE__KEY_PREFIX", "backfill-test")
    argv = ["backfill", "--model", str(feature_world.bundle), "--data", str(feature_world.history)]
    assert main(argv) == 0
    first = capsys.readouterr().err
    assert "into the redis store" in first
    # Twice is harmless: the store holds each event once.
    assert main(argv) == 0
    second = capsys.readouterr().err
    held = [int(line.rsplit("(", 1)[1].split()[0]) for line in (first, second)]
    assert held[0] == held[1] > 0
    assert "674 events" in first
    # Labels of live events wait in the store for their events (in one list of the spec's).
    assert main([*argv, "--labels", str(feature_world.labels)]) == 0
    assert "into the redis store" in capsys.readouterr().err
    import redis

    client = redis.Redis.from_url(redis_server.url)  # type: ignore[attr-defined]
    try:
        waiting = [k for k in client.scan_iter(match=b"backfill-test|*") if b"|p" in k]
    finally:
        client.close()
    assert waiting


def test_backfill_needs_a_bundle_with_a_feature_spec(
    bundle_dir: Path, feature_world: FeatureWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backfill", "--model", str(bundle_dir), "--data", str(feature_world.history)]) == 2
    assert "has no feature spec" in capsys.readouterr().err
    assert main(["backfill", "--data", str(feature_world.history)]) == 2
    assert "needs a model bundle" in capsys.readouterr().err


def test_the_bundle_records_the_spec_and_refuses_a_bad_one(
    feature_world: FeatureWorld, tmp_path: Path
) -> None:
    bundle = load_bundle(feature_world.bundle)
    assert bundle.spec is not None
    assert bundle.features == bundle.spec.names
    assert bundle.feature_index is not None
    assert bundle.feature_index.tolist() == list(range(len(bundle.features)))
    copy = tmp_path / "bundle"
    copy.mkdir()
    for f in feature_world.bundle.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["feature_spec"]["windows"][0]["windows"] = ["7x"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="'7x' is not a duration"):
        load_bundle(copy)
    manifest = json.loads((feature_world.bundle / "manifest.json").read_text())
    manifest["features"][0] = "not_a_feature"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="not among its feature spec's names"):
        load_bundle(copy)
