"""Passwords and session ids: the salted scrypt hash an account keeps, its
check, and a session's id (the client's) and hash (what the log and the
store keep of it)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets


def hash_password(password: str, cost: int) -> str:
    """A salted scrypt hash, self-describing: scrypt$cost$salt$hash."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=2**cost, r=8, p=1, maxmem=2 ** (cost + 11), dklen=32
    )
    b64 = base64.b64encode
    return f"scrypt${cost}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, cost_s, salt_s, digest_s = stored.split("$")
        cost = int(cost_s)
        salt, expected = base64.b64decode(salt_s), base64.b64decode(digest_s)
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=2**cost, r=8, p=1, maxmem=2 ** (cost + 11), dklen=32
    )
    return hmac.compare_digest(digest, expected)


def new_session_id() -> str:
    return secrets.token_urlsafe(24)  # 192 bits


def session_hash(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode()).digest()
