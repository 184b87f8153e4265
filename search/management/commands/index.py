"""`manage.py index rebuild [GALLERY]`, `manage.py index erase [GALLERY]` and `manage.py index status`."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from search.index.erasure import index_snapshots_sweep
from search.index.live import gallery_index_rebuild
from search.index.store import snapshot_newest
from search.models import Gallery, IndexState


class Command(BaseCommand):
    help = "Rebuild the derived gallery indexes from the database, or show their state."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        rebuild = sub.add_parser(
            "rebuild", help="Give one gallery's indexes, or all, a new epoch: search nodes rebuild them."
        )
        rebuild.add_argument("gallery", nargs="?")
        erase = sub.add_parser(
            "erase",
            help="Delete stored snapshots that hold removed templates or a stale epoch (done at each removal,"
            " and swept daily by the retention run).",
        )
        erase.add_argument("gallery", nargs="?")
        sub.add_parser("status", help="Database version and stored snapshot version per gallery and pack.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "status":
            for state in IndexState.objects.select_related("gallery").order_by("gallery__name", "pack_key"):
                mode = state.gallery.index_mode
                stored = snapshot_newest(state.gallery_id, state.pack_key, str(state.epoch), mode)
                snapshot = f"v{stored.version}" if stored else "none"
                self.stdout.write(f"{state.gallery.name}  {state.pack_key}  db v{state.version}  snapshot {snapshot}")
            return
        galleries = Gallery.objects.all()
        if options["gallery"]:
            galleries = galleries.filter(name=options["gallery"])
            if not galleries.exists():
                raise CommandError(f"No gallery named {options['gallery']!r}.")
        if options["action"] == "erase":
            ids = list(galleries.values_list("pk", flat=True)) if options["gallery"] else None
            for gallery_id, outcomes in index_snapshots_sweep(gallery_ids=ids).items():
                for name, outcome in outcomes.items():
                    self.stdout.write(f"gallery {gallery_id}: {name}: {outcome}")
            return
        for gallery in galleries:
            started = time.perf_counter()
            counts = gallery_index_rebuild(gallery=gallery)
            for pack_key, size in counts.items():
                done = (
                    "new epoch; search nodes rebuild it at their next search"
                    if size is None
                    else f"{size} templates in {time.perf_counter() - started:.1f} s"
                )
                self.stdout.write(f"{gallery.name}: {pack_key}: {done}")
