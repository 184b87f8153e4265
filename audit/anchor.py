"""The audit chain's head, anchored outside the database.

Each time an audit event commits, one line is appended to `RFR_AUDIT_ANCHOR_FILE` (default
`var/audit-anchor.log`), and to syslog when `RFR_AUDIT_ANCHOR_SYSLOG` names one:

    <seq> <row_hash> <UTC time> <hmac>

where `hmac` is HMAC-SHA256 under the audit key (audit.keys) of `anchor <seq> <row_hash> <time>`. The file is
opened with O_APPEND and written under an exclusive flock, one whole line per write. Whoever empties or
shortens the table, or rewrites rows, cannot rewrite the anchor to match without the key, so
`manage.py audit verify` (audit.verify) finds a chain shorter than the anchored head, or an anchored row whose
hash changed. `manage.py audit anchor` and the hourly housekeeping task write the current head again, as a
checkpoint for events whose line could not be written.

Lines are in commit order, which across processes need not be seq order; verify reads them all.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hmac
import logging
import logging.handlers
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from django.conf import settings

from audit.keys import audit_hmac
from audit.models import AuditEvent

logger = logging.getLogger(__name__)

_LINE = re.compile(r"^(?P<seq>[1-9][0-9]*) (?P<hash>[0-9a-f]{64}) (?P<time>\S+) (?P<mac>[0-9a-f]{64})$")


def anchor_path() -> Path:
    return Path(settings.RFR_AUDIT_ANCHOR_FILE)


def _mac(seq: int, row_hash: str, at: str) -> str:
    return audit_hmac(f"anchor {seq} {row_hash} {at}")


def anchor_line(seq: int, row_hash: str, at: dt.datetime | None = None) -> str:
    """One anchor line (with its newline) for the row at `seq` with `row_hash`."""
    when = (at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{seq} {row_hash} {when} {_mac(seq, row_hash, when)}\n"


def audit_anchor_append(*, seq: int, row_hash: str) -> bool:
    """Append the anchor line for one committed row. Never raises: the event has already committed, so a
    failure here is logged (and shows as an anchor behind the chain in `audit verify`). True if written."""
    line = anchor_line(seq, row_hash)
    written = False
    try:
        path = anchor_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            data = line.encode("ascii")
            # O_APPEND puts each write at the end; one write per line, under the lock, keeps lines whole.
            if os.write(descriptor, data) != len(data):
                raise OSError(f"short write to {path}")
            written = True
        finally:
            os.close(descriptor)  # releases the lock
    except OSError:
        logger.exception("Could not append audit seq %s to the anchor file %s", seq, settings.RFR_AUDIT_ANCHOR_FILE)
    syslog = _syslog_handler(str(settings.RFR_AUDIT_ANCHOR_SYSLOG or ""))
    if syslog is not None:
        record = logging.makeLogRecord({"msg": f"rfr-audit-anchor {line.strip()}", "levelno": logging.INFO})
        syslog.handle(record)  # SysLogHandler reports its own errors through handleError, never raising
    return written


def audit_anchor_head() -> tuple[int, str] | None:
    """Anchor the chain's current head now (a checkpoint); returns (seq, row_hash), or None if it is empty.
    Raises OSError if the line could not be written (the cause is logged)."""
    head = AuditEvent.objects.order_by("-seq").values_list("seq", "row_hash").first()
    if head is None:
        return None
    seq, row_hash = head
    if not audit_anchor_append(seq=seq, row_hash=row_hash):
        raise OSError(f"Could not write the audit anchor file {anchor_path()}; see the log.")
    return seq, row_hash


@lru_cache(maxsize=4)
def _syslog_handler(address: str) -> logging.handlers.SysLogHandler | None:
    if not address:
        return None
    target: str | tuple[str, int]
    if address.startswith("/"):
        target = address
    else:
        host, _, port = address.rpartition(":")
        target = (host or "localhost", int(port or 514))
    handler = logging.handlers.SysLogHandler(address=target, facility=logging.handlers.SysLogHandler.LOG_AUTH)
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler


@dataclass
class AnchorReading:
    """What the anchor file says: the hash anchored at each seq, and the lines that are not genuine."""

    path: Path
    present: bool
    lines: int = 0
    anchored: dict[int, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def head_seq(self) -> int:
        return max(self.anchored, default=0)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open("r", encoding="ascii", errors="replace", newline="\n") as handle:
        for number, line in enumerate(handle, start=1):
            yield number, line.rstrip("\n")


def audit_anchor_read(path: Path | None = None) -> AnchorReading:
    """Read and check every line of the anchor file (each line's HMAC; one hash per seq)."""
    path = path or anchor_path()
    if not path.exists():
        return AnchorReading(path=path, present=False)
    reading = AnchorReading(path=path, present=True)
    for number, text in _lines(path):
        if not text.strip():
            continue
        reading.lines += 1
        match = _LINE.match(text)
        if match is None or not hmac.compare_digest(
            match["mac"], _mac(int(match["seq"]), match["hash"], match["time"])
        ):
            reading.problems.append(
                f"anchor line {number} of {path} fails its HMAC check (edited, forged, or written with another key)"
            )
            continue
        seq, row_hash = int(match["seq"]), match["hash"]
        earlier = reading.anchored.setdefault(seq, row_hash)
        if earlier != row_hash:
            reading.problems.append(
                f"anchor line {number} of {path} records a different hash for seq {seq} than an earlier line "
                "(the chain was rewritten from that point between the two anchors)"
            )
    return reading
