"""The webhook's signature: HMAC-SHA256 of the exact body bytes with a shared secret.

A receiver recomputes the digest over the bytes it received and compares it in constant time;
a body changed in transit, or sent by someone without the secret, does not verify.

>>> body = b'{"event_id": "tx-1"}'
>>> header = sign(body, "a shared secret of 16+")
>>> header.startswith("sha256=")
True
>>> verify(body, header, "a shared secret of 16+")
True
>>> verify(body + b" ", header, "a shared secret of 16+")
False
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["IDEMPOTENCY_HEADER", "SIGNATURE_HEADER", "sign", "verify"]

SIGNATURE_HEADER = "X-Stream-Detector-Signature"
"""``sha256=<hex digest>`` of the body."""
IDEMPOTENCY_HEADER = "Idempotency-Key"
"""The alert's ``event_id``: a redelivered alert carries the same key."""

_PREFIX = "sha256="


def sign(body: bytes, secret: str) -> str:
    """The signature header's value for ``body``."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return _PREFIX + digest


def verify(body: bytes, header: str | None, secret: str) -> bool:
    """True when ``header`` is the signature of ``body`` with ``secret`` (constant time)."""
    if not header or not header.startswith(_PREFIX):
        return False
    return hmac.compare_digest(sign(body, secret), header.strip())
