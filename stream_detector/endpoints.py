"""The HTTP endpoints: ``/metrics``, ``/healthz`` and ``/readyz``.

``/healthz`` answers 200 while the process runs; ``/readyz`` answers 200 only while the
readiness callable returns true (consumer connected and assigned, model loaded), else 503.
Given a ``health`` callable, ``/healthz`` answers JSON: ``{"status": "ok", ...}`` with what
it returns (threshold, class prior, drift). Extra ``routes`` (the admin endpoint) answer GET
and POST with JSON; their request bodies are limited to 64 KiB.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

__all__ = ["EndpointServer", "Route"]

Route = Callable[[str, Mapping[str, str], bytes], tuple[int, Mapping[str, Any]]]
"""``(method, headers, body) -> (status, JSON-able body)``."""

_MAX_BODY_BYTES = 65_536
_JSON = "application/json"

log = logging.getLogger(__name__)


class EndpointServer:
    """Serves the three endpoints on a daemon thread.

    Parameters
    ----------
    registry
        The registry ``/metrics`` exposes.
    ready
        Called for each ``/readyz`` request.
    host, port
        Bind address; port 0 picks a free port (see :attr:`port` after :meth:`start`).
    health
        Called for each ``/healthz`` request; its mapping becomes the JSON body.
    routes
        Extra paths and their handlers.

    Examples
    --------
    >>> import urllib.request
    >>> server = EndpointServer(CollectorRegistry(), ready=lambda: False, host="127.0.0.1", port=0)
    >>> server.start()
    >>> urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz").status
    200
    >>> server.stop()
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        ready: Callable[[], bool],
        host: str = "127.0.0.1",
        port: int = 9108,
        health: Callable[[], Mapping[str, Any]] | None = None,
        routes: Mapping[str, Route] | None = None,
    ) -> None:
        self.registry = registry
        self.ready = ready
        self.health = health
        self.routes = dict(routes or {})
        self.host = host
        self.port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        registry, ready, health, routes = self.registry, self.ready, self.health, self.routes

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path in routes:
                    self._route(routes[path], b"")
                elif path == "/metrics":
                    self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    if health is None:
                        self._send(200, b"ok\n")
                    else:
                        body = {"status": "ok", "ready": ready(), **health()}
                        self._send(200, orjson.dumps(body), _JSON)
                elif path == "/readyz":
                    ok = ready()
                    self._send(200 if ok else 503, b"ready\n" if ok else b"not ready\n")
                else:
                    self._send(404, b"not found\n")

            def do_POST(self) -> None:
                path = self.path.split("?", 1)[0]
                if path not in routes:
                    self._send(404, b"not found\n")
                    return
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    length = -1
                if not 0 <= length <= _MAX_BODY_BYTES:
                    self._send(413, b'{"error": "body must be 0 to 65536 bytes"}', _JSON)
                    return
                self._route(routes[path], self.rfile.read(length))

            def _route(self, route: Route, body: bytes) -> None:
                status, payload = route(self.command, dict(self.headers.items()), body)
                extra = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
                self._send(status, orjson.dumps(payload), _JSON, extra)

            def _send(
                self,
                status: int,
                body: bytes,
                ctype: str = "text/plain",
                extra: Mapping[str, str] | None = None,
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                for key, value in (extra or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("http %s", format % args)

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="endpoints", daemon=True
        )
        self._thread.start()
        log.info("endpoints serving host=%s port=%d", self.host, self.port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
