"""Live control: the admin endpoint over HTTP and the SIGHUP reload of the config file."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from stream_detector.bundle import load_bundle
from stream_detector.config import DetectorSettings
from stream_detector.endpoints import EndpointServer
from stream_detector.metrics import DetectorMetrics
from stream_detector.online import ADMIN_PATH, AdminEndpoint, OnlineMonitor, reload_config

TOKEN = "a-long-enough-admin-token"


@pytest.fixture
def served(bundle_dir: Path) -> Iterator[tuple[OnlineMonitor, CollectorRegistry, str]]:
    registry = CollectorRegistry()
    monitor = OnlineMonitor(
        DetectorSettings.load(), load_bundle(bundle_dir), metrics=DetectorMetrics(registry)
    )
    server = EndpointServer(
        registry,
        ready=lambda: True,
        host="127.0.0.1",
        port=0,
        health=monitor.health,
        routes={ADMIN_PATH: AdminEndpoint(token=SecretStr(TOKEN), monitor=monitor)},
    )
    server.start()
    yield monitor, registry, f"http://127.0.0.1:{server.port}"
    server.stop()


def request(
    url: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    token: str | None = TOKEN,
    scheme: str = "Bearer",
) -> tuple[int, dict[str, str], Any]:
    req = urllib.request.Request(url, data=body, method=method)
    if token is not None:
        req.add_header("Authorization", f"{scheme} {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, dict(r.headers), orjson.loads(r.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, dict(err.headers), orjson.loads(err.read())


def test_admin_changes_the_threshold_with_the_right_token(
    served: tuple[OnlineMonitor, CollectorRegistry, str],
) -> None:
    monitor, registry, base = served
    status, _, state = request(base + ADMIN_PATH)
    assert status == 200
    assert state == {
        "mode": "fixed",
        "threshold": 0.5,
        "budget": 0.01,
        "in_force": 0.5,
        "class_prior": monitor.reference_prior,
    }
    status, _, state = request(
        base + ADMIN_PATH,
        method="POST",
        body=b'{"mode": "alert_rate", "threshold": 0.8, "budget": 0.03}',
    )
    assert status == 200
    assert (state["mode"], state["threshold"], state["budget"]) == (
        "alert_rate",
        0.8,
        0.03,
    )
    assert state["in_force"] == 0.8  # too few scores for the quantile: the fallback
    assert monitor.threshold_for_batch() == (0.8, "alert_rate")
    assert (
        registry.get_sample_value("stream_detector_threshold_changes_total", {"source": "admin"})
        == 1
    )
    assert registry.get_sample_value("stream_detector_threshold_mode", {"mode": "alert_rate"}) == 1


BAD_REQUESTS = [
    ({"token": None}, 401, "missing or wrong bearer token"),
    ({"token": "a-long-enough-admin-tokeX"}, 401, "missing or wrong bearer token"),
    ({"token": TOKEN[:-1]}, 401, "missing or wrong bearer token"),
    ({"scheme": "Basic"}, 401, "missing or wrong bearer token"),
    (
        {"body": b'{"threshold": 1.5}'},
        400,
        "admin request threshold: Input should be less than or equal to 1",
    ),
    (
        {"body": b'{"mode": "median"}'},
        400,
        "admin request mode: Input should be 'fixed', 'prior_corrected' or 'alert_rate'",
    ),
    ({"body": b'{"treshold": 0.3}'}, 400, "admin request treshold: Extra inputs are not permitted"),
    ({"body": b"not json"}, 400, "admin request body: Invalid JSON"),
    ({"body": b"{}"}, 400, "expected at least one of mode, threshold, budget; got none"),
]


def test_bad_requests_change_nothing(served: tuple[OnlineMonitor, CollectorRegistry, str]) -> None:
    monitor, registry, base = served
    for n, (kwargs, status, error) in enumerate(BAD_REQUESTS, start=1):
        code, headers, body = request(
            base + ADMIN_PATH, method="POST", **{"body": b'{"threshold": 0.1}', **kwargs}
        )
        assert code == status, (kwargs, body)
        assert body["error"].startswith(error), (kwargs, body)
        assert (status == 401) == (headers.get("WWW-Authenticate") == "Bearer")
        assert monitor.thresholds.state.threshold == 0.5
        assert (
            registry.get_sample_value("stream_detector_control_errors_total", {"source": "admin"})
            == n
        )


def test_health_is_json_and_other_paths_are_unchanged(
    served: tuple[OnlineMonitor, CollectorRegistry, str],
) -> None:
    _monitor, _, base = served
    status, headers, body = request(base + "/healthz", token=None)
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert body["status"] == "ok"
    assert body["ready"] is True
    assert body["threshold"]["mode"] == "fixed"
    assert body["class_prior"]["labels"] == 0
    assert sorted(body["drift"]["signals"]) == [
        "feature:amount",
        "feature:distance",
        "feature:hour_of_day",
        "labels",
        "score",
    ]
    assert body["feedback"]["precision"] is None  # NaN-free JSON
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(urllib.request.Request(base + "/metrics", data=b"x", method="POST"))
    info.value.close()
    assert info.value.code == 404
    big = urllib.request.Request(base + ADMIN_PATH, data=b"x" * 70_000, method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(big)
    info.value.close()
    assert info.value.code == 413


def test_reload_takes_the_files_threshold_settings(
    served: tuple[OnlineMonitor, CollectorRegistry, str], tmp_path: Path
) -> None:
    monitor, registry, _ = served
    config = tmp_path / "detector.yaml"
    config.write_text("threshold: 0.3\nthreshold_mode: prior_corrected\n")
    assert reload_config(monitor, config)
    state = monitor.thresholds.state
    assert (state.mode, state.threshold) == ("prior_corrected", 0.3)
    config.write_text("threshold: [not a number\n")
    assert not reload_config(monitor, config)
    config.write_text("threshold: 3\n")
    assert not reload_config(monitor, config)
    assert not reload_config(monitor, None)
    assert monitor.thresholds.state == state
    assert (
        registry.get_sample_value("stream_detector_control_errors_total", {"source": "sighup"}) == 3
    )
    assert (
        registry.get_sample_value("stream_detector_threshold_changes_total", {"source": "sighup"})
        == 1
    )
