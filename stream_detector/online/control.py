"""Live control: change the threshold, its mode or the alert budget without a restart.

Two channels, both taking effect from the next batch the service decides (the run loop reads
the threshold in force right before deciding each batch, so nothing is lost or decided twice):

- **SIGHUP** re-reads the config file given to ``serve --config`` (and the environment) and
  puts its ``threshold``, ``threshold_mode`` and ``online.alert_rate.budget`` in force; these
  then replace any values given as flags at start-up. A file that does not load, or values that
  are invalid, change nothing: the error is logged and counted
  (``stream_detector_control_errors_total{source="sighup"}``).
- **The admin endpoint** ``/admin/threshold`` on the metrics server (same host and port as
  ``/metrics``), enabled only when ``admin.token`` is set (best through the environment,
  ``STREAM_DETECTOR_ADMIN__TOKEN``). Every request must carry ``Authorization: Bearer <token>``;
  the token is compared in constant time. ``GET`` returns the state; ``POST`` with a JSON body
  holding any of ``mode``, ``threshold``, ``budget`` changes it and returns the new state::

      curl -H "Authorization: Bearer $TOKEN" -d '{"mode": "alert_rate", "budget": 0.005}' \\
           http://127.0.0.1:9108/admin/threshold

  Answers: 200 with the state, 400 for an invalid body or value, 401 without the right token,
  405 for other methods. The metrics host defaults to 127.0.0.1; bind it wider only on a
  network where the token's secrecy suffices.

Every change is logged with its old and new values and counted in
``stream_detector_threshold_changes_total{source}``.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from stream_detector.config import DetectorSettings, ThresholdMode
from stream_detector.errors import ConfigError
from stream_detector.online.monitor import OnlineMonitor

__all__ = ["ADMIN_PATH", "AdminEndpoint", "ThresholdChange", "reload_config"]

ADMIN_PATH = "/admin/threshold"


class ThresholdChange(BaseModel):
    """The body of ``POST /admin/threshold``: any of the three, at least one.

    >>> ThresholdChange.model_validate_json(b'{"mode": "alert_rate", "budget": 0.02}').mode
    'alert_rate'
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: ThresholdMode | None = None
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    budget: float | None = Field(default=None, gt=0.0, lt=1.0)


def _state(monitor: OnlineMonitor) -> dict[str, Any]:
    state = monitor.thresholds.state
    in_force, _ = monitor.in_force
    return {
        "mode": state.mode,
        "threshold": state.threshold,
        "budget": state.budget,
        "in_force": in_force,
        "class_prior": monitor.prior.get(),
    }


class AdminEndpoint:
    """Handles ``/admin/threshold`` requests for the endpoint server.

    Parameters
    ----------
    token
        The bearer token requests must present.
    monitor
        Whose thresholds the endpoint reads and changes.

    Examples
    --------
    >>> from stream_detector.online.coldstart import cold_start_bundle
    >>> bundle = cold_start_bundle(features=["amount"], threshold=0.9, class_prior=0.01)
    >>> monitor = OnlineMonitor(DetectorSettings.load(), bundle)
    >>> admin = AdminEndpoint(token=SecretStr("s3cret-token-0123"), monitor=monitor)
    >>> admin("POST", {"Authorization": "Bearer wrong"}, b'{"threshold": 0.8}')[0]
    401
    >>> status, body = admin("POST", {"Authorization": "Bearer s3cret-token-0123"},
    ...                      b'{"threshold": 0.8}')
    >>> status, body["threshold"], body["mode"]
    (200, 0.8, 'alert_rate')
    """

    def __init__(self, *, token: SecretStr, monitor: OnlineMonitor) -> None:
        self._token = token.get_secret_value().encode()
        self.monitor = monitor

    def authorized(self, headers: Mapping[str, str]) -> bool:
        """Whether the request carries ``Authorization: Bearer <token>`` (constant-time)."""
        value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        scheme, _, presented = value.partition(" ")
        ok = hmac.compare_digest(presented.strip().encode(), self._token)
        return ok and scheme.lower() == "bearer"

    def __call__(
        self, method: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, Any]]:
        """Answer one request: ``(status, JSON-able body)``."""
        if not self.authorized(headers):
            self.monitor.control_failed("admin", ConfigError("missing or wrong admin token"))
            return 401, {"error": "missing or wrong bearer token"}
        if method == "GET":
            return 200, _state(self.monitor)
        if method != "POST":
            return 405, {"error": f"method {method} not allowed; use GET or POST"}
        try:
            change = ThresholdChange.model_validate_json(body or b"{}")
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            key = ".".join(str(p) for p in err["loc"]) or "body"
            error = ConfigError(f"admin request {key}: {err['msg']}")
            self.monitor.control_failed("admin", error)
            return 400, {"error": str(error)}
        if change.mode is None and change.threshold is None and change.budget is None:
            error = ConfigError("expected at least one of mode, threshold, budget; got none")
            self.monitor.control_failed("admin", error)
            return 400, {"error": str(error)}
        try:
            self.monitor.thresholds.set(
                mode=change.mode,
                threshold=change.threshold,
                budget=change.budget,
                source="admin",
            )
        except ConfigError as exc:
            self.monitor.control_failed("admin", exc)
            return 400, {"error": str(exc)}
        return 200, _state(self.monitor)


def reload_config(monitor: OnlineMonitor, path: str | os.PathLike[str] | None) -> bool:
    """SIGHUP: put the config file's threshold, mode and budget in force; False if refused."""
    try:
        if path is None:
            raise ConfigError(
                "SIGHUP reloads the config file, but serve was started without --config"
            )
        monitor.apply_settings(DetectorSettings.load(path), source="sighup")
    except ConfigError as exc:
        monitor.control_failed("sighup", exc)
        return False
    return True
