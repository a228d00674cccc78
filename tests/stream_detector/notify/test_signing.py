"""The body signature: HMAC-SHA256 over the exact bytes, checked against hashlib's."""

from __future__ import annotations

import hashlib
import hmac

from hypothesis import given
from hypothesis import strategies as st

from stream_detector.notify.signing import sign, verify

SECRET = "0123456789abcdef-secret"


@given(st.binary(max_size=2048))
def test_the_signature_is_hmac_sha256_of_the_body(body: bytes) -> None:
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert sign(body, SECRET) == f"sha256={expected}"
    assert verify(body, sign(body, SECRET), SECRET)


@given(st.binary(min_size=1, max_size=256), st.integers(min_value=0, max_value=255))
def test_a_changed_byte_or_another_secret_does_not_verify(body: bytes, byte: int) -> None:
    header = sign(body, SECRET)
    changed = bytes([byte]) + body[1:]
    assert verify(changed, header, SECRET) == (changed == body)
    assert not verify(body, header, SECRET + "x")


def test_missing_or_malformed_headers_do_not_verify() -> None:
    body = b"{}"
    digest = sign(body, SECRET).removeprefix("sha256=")
    assert not verify(body, None, SECRET)
    assert not verify(body, "", SECRET)
    assert not verify(body, digest, SECRET)  # no scheme prefix
    assert not verify(body, f"sha1={digest}", SECRET)
