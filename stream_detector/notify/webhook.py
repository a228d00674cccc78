"""One HTTP POST of an alert to the webhook, with its outcome classified.

Standard library only (:mod:`http.client`): one persistent connection per worker thread, a
connect timeout and a read timeout, the body signed (:mod:`stream_detector.notify.signing`)
and the alert's ``event_id`` as the idempotency key. The result says whether to retry:

- 2xx: delivered;
- 408, 429, 5xx, a timeout, a refused or broken connection: retried (``timeout``,
  ``connection``, ``server_error``, ``throttled``);
- any other status (3xx, 4xx): the receiver refused the alert for good (``rejected``).

>>> WebhookClient(url="ftp://example.org", secret="s" * 16)
Traceback (most recent call last):
...
stream_detector.errors.ConfigError: notify.url must be an http:// or https:// URL; got 'ftp://example.org'
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import urllib.parse
from dataclasses import dataclass
from typing import Final, Literal

from stream_detector import __version__
from stream_detector.errors import ConfigError
from stream_detector.notify.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, sign

__all__ = ["FAILURE_REASONS", "Attempt", "FailureReason", "WebhookClient"]

FailureReason = Literal["timeout", "connection", "server_error", "throttled", "rejected"]
FAILURE_REASONS: Final[tuple[FailureReason, ...]] = (
    "timeout",
    "connection",
    "server_error",
    "throttled",
    "rejected",
)
_RETRYABLE_STATUS = frozenset({408, 429})
_MAX_DETAIL = 200
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)
"""Errors of a kept-alive connection the receiver closed meanwhile: sent again at once."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """The outcome of one POST."""

    reason: FailureReason | None
    """None when delivered."""
    status: int | None = None
    """The HTTP status, when one was received."""
    detail: str = ""

    @property
    def delivered(self) -> bool:
        return self.reason is None

    @property
    def retryable(self) -> bool:
        return self.reason is not None and self.reason != "rejected"


class WebhookClient:
    """Posts signed alert bodies to one URL; safe to share between threads.

    Parameters
    ----------
    url
        ``http://`` or ``https://`` address of the webhook.
    secret
        The shared secret the body is signed with.
    auth_token
        Sent as ``Authorization: Bearer <token>`` when given.
    connect_timeout_s, read_timeout_s
        Longest wait for the connection, then for each read of the answer.
    """

    def __init__(
        self,
        *,
        url: str,
        secret: str,
        auth_token: str | None = None,
        connect_timeout_s: float = 3.0,
        read_timeout_s: float = 10.0,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"notify.url must be an http:// or https:// URL; got {url!r}")
        self.url = url
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._secret = secret
        self._headers = {
            "Content-Type": "application/json",
            "User-Agent": f"stream-detector/{__version__}",
        }
        if auth_token:
            self._headers["Authorization"] = f"Bearer {auth_token}"
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: list[http.client.HTTPConnection] = []

    def post(self, body: bytes, idempotency_key: str) -> Attempt:
        """POST ``body`` once (a kept-alive connection found closed is reopened once)."""
        headers = {
            **self._headers,
            SIGNATURE_HEADER: sign(body, self._secret),
            IDEMPOTENCY_HEADER: idempotency_key,
        }
        reused = getattr(self._local, "conn", None) is not None
        try:
            return self._post_once(body, headers)
        except _STALE as exc:
            self._drop()
            if not reused:
                return Attempt("connection", detail=_detail(exc))
        except TimeoutError as exc:
            self._drop()
            return Attempt("timeout", detail=_detail(exc))
        except (OSError, http.client.HTTPException) as exc:
            self._drop()
            return Attempt("connection", detail=_detail(exc))
        try:
            return self._post_once(body, headers)
        except TimeoutError as exc:
            self._drop()
            return Attempt("timeout", detail=_detail(exc))
        except (OSError, http.client.HTTPException) as exc:
            self._drop()
            return Attempt("connection", detail=_detail(exc))

    def close(self) -> None:
        """Close every connection the worker threads opened."""
        with self._lock:
            conns, self._open = self._open, []
        for conn in conns:
            conn.close()

    def _post_once(self, body: bytes, headers: dict[str, str]) -> Attempt:
        conn = self._connection()
        conn.request("POST", self._path, body=body, headers=headers)
        response = conn.getresponse()
        text = response.read(4096)
        if response.will_close:
            self._drop()
        status = response.status
        if 200 <= status < 300:
            return Attempt(None, status)
        detail = f"HTTP {status} {response.reason}: {text[:_MAX_DETAIL].decode('utf-8', 'replace')}"
        if status >= 500:
            return Attempt("server_error", status, detail.strip())
        if status in _RETRYABLE_STATUS:
            return Attempt("throttled", status, detail.strip())
        return Attempt("rejected", status, detail.strip())

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self._https:
            conn = http.client.HTTPSConnection(
                self._host,
                self._port,
                timeout=self.connect_timeout_s,
                context=ssl.create_default_context(),
            )
        else:
            conn = http.client.HTTPConnection(
                self._host, self._port, timeout=self.connect_timeout_s
            )
        conn.connect()
        assert conn.sock is not None
        conn.sock.settimeout(self.read_timeout_s)
        # http.client sends the headers and the body in two writes: without this, Nagle's
        # algorithm holds the body until the receiver's delayed ACK (40 ms on Linux).
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._local.conn = conn
        with self._lock:
            self._open.append(conn)
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()
            with self._lock:
                if conn in self._open:
                    self._open.remove(conn)


def _detail(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:_MAX_DETAIL]
