"""`manage.py storage sweep`: find and remove image files that no row names (left by a crash mid-upload)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cases.housekeeping import storage_orphans_sweep


class Command(BaseCommand):
    help = (
        "Storage tools. `sweep` removes probe originals, face crops, gallery images and enrolment copies that no"
        " row names."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        subcommands = parser.add_subparsers(dest="subcommand", metavar="{sweep}")
        subcommands.required = True
        sweep = subcommands.add_parser(
            "sweep",
            help=(
                "Remove stored files under probes/, galleries/ and enrolment-uploads/ (local or in the object"
                " store) that no row names and that are older than RFR_ORPHAN_GRACE_SECONDS; audited with counts."
            ),
        )
        sweep.add_argument("--dry-run", action="store_true", help="List the orphan files; remove nothing.")
        sweep.add_argument(
            "--grace-seconds", type=int, default=None, help="Override RFR_ORPHAN_GRACE_SECONDS for this sweep."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["subcommand"] != "sweep":  # argparse already refuses others; kept for call_command
            raise CommandError(f"Unknown subcommand {options['subcommand']!r}.")
        grace = options.get("grace_seconds")
        if grace is not None and grace < 0:
            raise CommandError("--grace-seconds must be 0 or more.")
        dry_run = bool(options.get("dry_run"))
        report = storage_orphans_sweep(dry_run=dry_run, grace_seconds=grace)
        for orphan in report.files:
            self.stdout.write(
                f"{'orphan' if dry_run else 'removed'}: {orphan.name} ({orphan.kind}, {orphan.size} bytes)"
            )
        kinds = ", ".join(f"{n} {kind}" for kind, n in report.by_kind.items()) or "none"
        verb = "found; nothing removed" if dry_run else "removed"
        self.stdout.write(
            f"{len(report.files)} orphan file(s), {report.bytes} bytes, {verb} ({kinds});"
            f" files younger than {report.grace_seconds} s were left alone."
        )
