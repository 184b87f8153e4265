"""`manage.py audit verify`: recompute the audit hash chain; exit non-zero at the first broken row."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.verify import audit_chain_verify


class Command(BaseCommand):
    help = "Audit trail tools. `verify` walks the hash chain and reports the first broken row."

    def add_arguments(self, parser: CommandParser) -> None:
        subcommands = parser.add_subparsers(dest="subcommand", metavar="{verify}")
        subcommands.required = True
        subcommands.add_parser(
            "verify", help="Recompute the hash chain; print OK and the count, or the first broken row."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["subcommand"] != "verify":  # argparse already refuses others; kept for call_command
            raise CommandError(f"Unknown subcommand {options['subcommand']!r}.")
        report = audit_chain_verify()
        if not report.ok:
            raise CommandError(
                f"BROKEN at audit event id {report.broken_id} (seq {report.broken_seq}): {report.reason}. "
                f"{report.count} events before it verified."
            )
        self.stdout.write(f"OK {report.count} events verified; head hash {report.head_hash}")
