"""The index change log: every add or remove of a gallery template is written here, in the transaction of the
change, with the gallery index's new version. Every process's live index (search.index.live) catches up by
applying the changes after the version it holds, so nobody has to tell it anything.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction

from search.models import IndexChange, IndexState


def index_changes_record(*, gallery_id: int, pack_key: str, changes: Sequence[tuple[int, str]]) -> int:
    """Log template adds/removes and bump the index version; call inside the change's transaction."""
    if not changes:
        return 0
    with transaction.atomic():  # the caller's transaction when there is one (as there should be)
        IndexState.objects.get_or_create(gallery_id=gallery_id, pack_key=pack_key)
        # The row lock serialises writers of one gallery's index, so versions stay gap-free and ordered.
        state = IndexState.objects.select_for_update().get(gallery_id=gallery_id, pack_key=pack_key)
        start = state.version
        IndexChange.objects.bulk_create(
            IndexChange(gallery_id=gallery_id, pack_key=pack_key, version=start + offset, template_id=tid, op=op)
            for offset, (tid, op) in enumerate(changes, start=1)
        )
        state.version = start + len(changes)
        state.save(update_fields=["version"])
    return state.version
