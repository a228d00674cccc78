"""A webhook receiver that verifies the signature: the reference for integrators, a sink.

It answers every ``POST`` with what its ``respond`` callable decides (200 by default), checks
the ``X-Stream-Detector-Signature`` header against the shared secret, and keeps the requests
it received (the newest ``keep``) with whether their signature verified. Run it to see alerts
arrive (``docker-compose.yml``'s ``webhook-sink`` service does)::

    STREAM_DETECTOR_NOTIFY__SECRET=... python -m stream_detector.notify.receiver --port 8080

Examples
--------
>>> import urllib.request
>>> from stream_detector.notify.signing import sign
>>> receiver = WebhookReceiver(secret="a shared secret of 16+", port=0).start()
>>> body = b'{"event_id": "tx-1"}'
>>> request = urllib.request.Request(
...     receiver.url, data=body,
...     headers={"X-Stream-Detector-Signature": sign(body, "a shared secret of 16+")})
>>> urllib.request.urlopen(request).status
200
>>> [(r.body, r.verified) for r in receiver.received()]
[(b'{"event_id": "tx-1"}', True)]
>>> receiver.stop()
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from stream_detector.notify.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, verify

__all__ = ["Received", "WebhookReceiver", "main"]

log = logging.getLogger(__name__)

_MAX_BODY_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Received:
    """One request as the receiver saw it."""

    path: str
    headers: Mapping[str, str]
    body: bytes
    verified: bool | None
    """Whether the signature matched; None when the receiver has no secret."""
    status: int
    """What the receiver answered."""
    at: float = field(default_factory=time.time)

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get(IDEMPOTENCY_HEADER.lower())


Responder = Callable[[str, Mapping[str, str], bytes], int]
"""``(path, headers, body) -> HTTP status``; may sleep to play a slow receiver."""


class WebhookReceiver:
    """An HTTP server on a daemon thread that records the webhook requests it receives.

    Parameters
    ----------
    secret
        The shared secret; a request whose signature does not verify is answered 401.
    host, port
        Bind address; port 0 picks a free port (see :attr:`port` after :meth:`start`).
    respond
        Decides the status of each request whose signature verified.
    keep
        Requests remembered (the oldest are forgotten first).
    """

    def __init__(
        self,
        *,
        secret: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        respond: Responder | None = None,
        keep: int = 1_000_000,
    ) -> None:
        self.secret = secret
        self.host = host
        self.port = port
        self.respond = respond
        self._received: collections.deque[Received] = collections.deque(maxlen=keep)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._connections: set[socket.socket] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/alerts"

    def received(self) -> list[Received]:
        """The requests received so far, oldest first."""
        with self._lock:
            return list(self._received)

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as webhook servers answer
            disable_nagle_algorithm = True  # headers and body go out in two writes

            def setup(self) -> None:
                super().setup()
                with receiver._lock:
                    receiver._connections.add(self.connection)

            def finish(self) -> None:
                with receiver._lock:
                    receiver._connections.discard(self.connection)
                super().finish()

            def do_POST(self) -> None:
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    length = -1
                if not 0 <= length <= _MAX_BODY_BYTES:
                    self._send(413)
                    return
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                verified = None
                if receiver.secret is not None:
                    verified = verify(body, headers.get(SIGNATURE_HEADER.lower()), receiver.secret)
                if verified is False:
                    status = 401
                elif receiver.respond is not None:
                    status = receiver.respond(self.path, headers, body)
                else:
                    status = 200
                with receiver._lock:
                    receiver._received.append(Received(self.path, headers, body, verified, status))
                log.info(
                    "received path=%s idempotency_key=%s signature=%s status=%d bytes=%d",
                    self.path,
                    headers.get(IDEMPOTENCY_HEADER.lower()),
                    {True: "valid", False: "invalid", None: "unchecked"}[verified],
                    status,
                    len(body),
                )
                self._send(status)

            def _send(self, status: int) -> None:
                payload = b'{"ok": true}' if 200 <= status < 300 else b'{"ok": false}'
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client gave up (its read timeout)
                    self.close_connection = True

            def log_message(self, format: str, *args: object) -> None:
                log.debug("http %s", format % args)

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="receiver", daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening and close the connections kept alive, as a receiver going down does."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until interrupted, logging one line per request; the secret from the settings."""
    from stream_detector.config import DetectorSettings
    from stream_detector.errors import StreamDetectorError

    parser = argparse.ArgumentParser(
        prog="python -m stream_detector.notify.receiver",
        description="A webhook receiver that verifies stream-detector's signature.",
        allow_abbrev=False,
    )
    parser.add_argument("--host", default="0.0.0.0", help="bind address (default 0.0.0.0)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s level=%(levelname)s %(message)s", stream=sys.stderr
    )
    try:
        secret = DetectorSettings.load().notify.secret
    except StreamDetectorError as exc:
        print(f"receiver: error: {exc}", file=sys.stderr)
        return 2
    receiver = WebhookReceiver(
        secret=None if secret is None else secret.get_secret_value(),
        host=args.host,
        port=args.port,
        keep=1_000,
    ).start()
    log.info(
        "listening url=http://%s:%d/ signature=%s",
        args.host,
        receiver.port,
        "checked" if secret is not None else "unchecked",
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        receiver.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
