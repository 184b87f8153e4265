"""Checking the audit trail for tampering (read only). Used by `manage.py audit verify`.

`audit_chain_verify` walks the rows in `seq` order; each row must have:
- seq one more than the row before (starting at 1): a gap means a deleted row;
- an id greater than the row before: rows are inserted in seq order, so anything else means reordering;
- prev_hash equal to the previous row's row_hash (GENESIS_HASH for the first): a broken link;
- a known hash_scheme, never plain sha256 after a keyed row: the keyed scheme is not undone by rewriting;
- row_hash equal to its hash under that scheme (audit.services.compute_row_hash): HMAC-SHA256 under the audit
  key, which is not in the database, so rows changed and re-hashed without the key fail here;
- where the anchor file records a hash for its seq, that hash.

`audit_trail_verify` adds the anchor (audit.anchor): every line must carry a valid HMAC, and the database
chain must reach the highest anchored seq, so rows cut off the end of the chain (or a TRUNCATE) are found.
An anchor that is missing, or behind the chain, is a warning: the end of the chain is then unchecked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from django.db.models import Max

from audit.anchor import AnchorReading, audit_anchor_read
from audit.models import AuditEvent, HashScheme
from audit.services import GENESIS_HASH, compute_row_hash

_SCHEMES = frozenset(HashScheme.values)


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    count: int  # rows checked (all rows when ok)
    head_hash: str  # row_hash of the last good row
    broken_id: int | None = None
    broken_seq: int | None = None
    reason: str = ""
    legacy_count: int = 0  # good rows hashed with plain sha256 (written before keyed hashing)
    anchors_matched: int = 0  # good rows whose hash the anchor file records


def _row_problem(event: AuditEvent, *, expected_seq: int, prev_id: int, prev_hash: str, keyed_seen: bool) -> str:
    if event.seq != expected_seq:
        return f"sequence gap: expected seq {expected_seq}, found {event.seq} (row deleted?)"
    if event.pk <= prev_id:
        return f"out of order: id {event.pk} follows id {prev_id} (rows reordered?)"
    if event.prev_hash != prev_hash:
        return "prev_hash does not match the previous row's hash (rows reordered or removed?)"
    if event.hash_scheme not in _SCHEMES:
        return f"unknown hash scheme {event.hash_scheme!r}"
    if keyed_seen and event.hash_scheme == HashScheme.SHA256:
        return "unkeyed sha256 row after keyed rows (rows re-hashed without the audit key?)"
    if compute_row_hash(event.prev_hash, event) != event.row_hash:
        if event.hash_scheme == HashScheme.HMAC_SHA256:
            return (
                "content does not match row_hash under the audit key (a field was changed, or the row was "
                "re-hashed without the key; or RFR_AUDIT_KEY is not the key the row was written with)"
            )
        return "content does not match row_hash (a field was changed)"
    return ""


def audit_chain_verify(*, chunk_size: int = 2000, anchored: Mapping[int, str] | None = None) -> ChainReport:
    """Walk the chain; stop at the first row that fails. `anchored` maps seq to the hash recorded outside."""
    anchored = anchored or {}
    expected_seq, prev_hash, prev_id = 1, GENESIS_HASH, 0
    count = legacy = matched = 0
    keyed_seen = False
    for event in AuditEvent.objects.order_by("seq").iterator(chunk_size=chunk_size):
        problem = _row_problem(
            event, expected_seq=expected_seq, prev_id=prev_id, prev_hash=prev_hash, keyed_seen=keyed_seen
        )
        anchored_hash = anchored.get(event.seq)
        if not problem and anchored_hash is not None and anchored_hash != event.row_hash:
            problem = (
                f"row_hash differs from the hash anchored outside the database for seq {event.seq} "
                "(the chain was rewritten from here on)"
            )
        if problem:
            return ChainReport(
                ok=False,
                count=count,
                head_hash=prev_hash,
                broken_id=event.pk,
                broken_seq=event.seq,
                reason=problem,
                legacy_count=legacy,
                anchors_matched=matched,
            )
        count += 1
        expected_seq += 1
        prev_hash, prev_id = event.row_hash, event.pk
        keyed_seen = keyed_seen or event.hash_scheme == HashScheme.HMAC_SHA256
        legacy += event.hash_scheme == HashScheme.SHA256
        matched += anchored_hash is not None
    return ChainReport(ok=True, count=count, head_hash=prev_hash, legacy_count=legacy, anchors_matched=matched)


@dataclass(frozen=True)
class TrailReport:
    chain: ChainReport
    anchor: AnchorReading
    tampering: list[str] = field(default_factory=list)  # each a sign of tampering
    warnings: list[str] = field(default_factory=list)  # what could not be checked

    @property
    def ok(self) -> bool:
        return not self.tampering


def audit_trail_verify(*, anchor_file: Path | None = None, chunk_size: int = 2000) -> TrailReport:
    """The chain, checked against the anchor file (default RFR_AUDIT_ANCHOR_FILE)."""
    anchor = audit_anchor_read(anchor_file)
    chain = audit_chain_verify(chunk_size=chunk_size, anchored=anchor.anchored)
    tampering = list(anchor.problems)
    warnings: list[str] = []
    if not chain.ok:
        tampering.insert(
            0,
            f"chain broken at audit event id {chain.broken_id} (seq {chain.broken_seq}): {chain.reason}; "
            f"{chain.count} events before it verified",
        )
    last_seq = AuditEvent.objects.aggregate(last=Max("seq"))["last"] or 0
    if anchor.head_seq > last_seq:
        tampering.append(
            f"the chain ends at seq {last_seq} but {anchor.path} anchors seq {anchor.head_seq}: "
            f"{anchor.head_seq - last_seq} events were removed from the end of the chain (or the table emptied)"
        )
    if not anchor.present:
        warnings.append(
            f"no anchor file at {anchor.path}: events removed from the end of the chain cannot be detected. "
            "It is written as each event commits; `manage.py audit anchor` writes the current head now."
        )
    elif chain.ok and anchor.head_seq < chain.count:
        warnings.append(
            f"the anchor {anchor.path} reaches seq {anchor.head_seq} of {chain.count}: the last "
            f"{chain.count - anchor.head_seq} events are not anchored (committing right now, or an anchor write "
            "failed: see the log). `manage.py audit anchor` anchors the head."
        )
    return TrailReport(chain=chain, anchor=anchor, tampering=tampering, warnings=warnings)
