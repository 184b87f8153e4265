"""The audit key: the secret that keys the row hashes and the anchor lines, held outside the database.

Someone who can rewrite the audit table but does not hold the key cannot recompute a valid chain. The key
comes from `RFR_AUDIT_KEY` (the value itself) or `RFR_AUDIT_KEY_FILE` (a file holding it). With neither set,
on the embedded default only (settings refuse to start a database server without one), a random key is
generated into `RFR_AUDIT_KEY_FILE` (default `var/audit.key`) on first use, readable by its owner alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

MIN_KEY_BYTES = 32


def audit_key() -> bytes:
    """The key as bytes (read once per process for each configured value)."""
    return _audit_key(str(settings.RFR_AUDIT_KEY or ""), str(settings.RFR_AUDIT_KEY_FILE))


def audit_hmac(message: str) -> str:
    """HMAC-SHA256 of `message` (UTF-8) under the audit key, as 64 hex digits."""
    return hmac.new(audit_key(), message.encode("utf-8"), hashlib.sha256).hexdigest()


@lru_cache(maxsize=8)
def _audit_key(configured: str, key_file: str) -> bytes:
    if configured:
        return configured.encode("utf-8")
    path = Path(key_file)
    if not path.exists():
        _generate(path)
    key = path.read_bytes().strip()
    if len(key) < MIN_KEY_BYTES:
        raise ImproperlyConfigured(f"The audit key in {path} is shorter than {MIN_KEY_BYTES} bytes.")
    return key


def _generate(path: Path) -> None:
    """Write a new random key to `path` unless another process got there first (link is atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # a concurrent first use wrote one: use theirs
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
