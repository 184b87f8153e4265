"""`manage.py cases purge-expired`: apply the case retention rule (RFR_CASE_RETENTION_DAYS)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from cases.retention import cases_past_retention, cases_purge_expired


class Command(BaseCommand):
    help = "Case tools. `purge-expired` deletes the probes and results of cases closed past retention."

    def add_arguments(self, parser: CommandParser) -> None:
        subcommands = parser.add_subparsers(dest="subcommand", metavar="{purge-expired}")
        subcommands.required = True
        purge = subcommands.add_parser(
            "purge-expired",
            help=(
                "Delete probes, faces, searches, candidates and stored files of cases closed more than"
                " RFR_CASE_RETENTION_DAYS ago; the case record and the audit trail stay."
            ),
        )
        purge.add_argument("--dry-run", action="store_true", help="List the cases due; delete nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["subcommand"] != "purge-expired":  # argparse already refuses others; kept for call_command
            raise CommandError(f"Unknown subcommand {options['subcommand']!r}.")
        days = settings.RFR_CASE_RETENTION_DAYS
        if options.get("dry_run"):
            due = list(cases_past_retention().order_by("pk"))
            for case in due:
                self.stdout.write(f"due: case {case.pk} {case.reference} (closed {case.closed_at:%Y-%m-%d})")
            self.stdout.write(f"{len(due)} closed case(s) past the {days}-day retention period; nothing deleted.")
            return
        purged = cases_purge_expired()
        for case_id, detail in purged.items():
            counts = ", ".join(f"{n} {what}" for what, n in detail["deleted"].items())
            self.stdout.write(f"case {case_id}: deleted {counts}, {detail['files_deleted']} file(s)")
        self.stdout.write(f"{len(purged)} case(s) purged under the {days}-day retention rule.")
