"""Recomputing the audit hash chain (read only). Used by `manage.py audit verify`.

Walking the rows in `seq` order, each row must have:
- seq one more than the row before (starting at 1): a gap means a deleted row;
- an id greater than the row before: rows are inserted in seq order, so anything else means reordering;
- prev_hash equal to the previous row's row_hash (GENESIS_HASH for the first): a broken link;
- row_hash equal to sha256(prev_hash + canonical content): a changed field.
Removing rows from the END of the chain leaves a valid shorter chain; compare the count with an earlier
verified count (or an exported head hash) to detect that.
"""

from __future__ import annotations

from dataclasses import dataclass

from audit.models import AuditEvent
from audit.services import GENESIS_HASH, compute_row_hash


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    count: int  # rows checked (all rows when ok)
    head_hash: str  # row_hash of the last good row
    broken_id: int | None = None
    broken_seq: int | None = None
    reason: str = ""


def audit_chain_verify(*, chunk_size: int = 2000) -> ChainReport:
    expected_seq = 1
    prev_hash = GENESIS_HASH
    prev_id = 0
    count = 0
    for event in AuditEvent.objects.order_by("seq").iterator(chunk_size=chunk_size):
        problem = ""
        if event.seq != expected_seq:
            problem = f"sequence gap: expected seq {expected_seq}, found {event.seq} (row deleted?)"
        elif event.pk <= prev_id:
            problem = f"out of order: id {event.pk} follows id {prev_id} (rows reordered?)"
        elif event.prev_hash != prev_hash:
            problem = "prev_hash does not match the previous row's hash (rows reordered or removed?)"
        elif compute_row_hash(event.prev_hash, event) != event.row_hash:
            problem = "content does not match row_hash (a field was changed)"
        if problem:
            return ChainReport(
                ok=False,
                count=count,
                head_hash=prev_hash,
                broken_id=event.pk,
                broken_seq=event.seq,
                reason=problem,
            )
        count += 1
        expected_seq += 1
        prev_hash = event.row_hash
        prev_id = event.pk
    return ChainReport(ok=True, count=count, head_hash=prev_hash)
