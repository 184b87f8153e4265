"""`manage.py audit verify` checks the audit trail for tampering; `manage.py audit anchor` anchors its head.

verify prints `OK <n> events verified; ...; head hash <hash>` and exits 0, or `TAMPERING: ...` and exits 1.
What it could not check (no anchor file, or an anchor behind the chain) is a `WARNING:` on stderr.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.anchor import anchor_path, audit_anchor_head
from audit.verify import audit_trail_verify


class Command(BaseCommand):
    help = (
        "Audit trail tools. `verify` checks the keyed hash chain and its anchor outside the database; "
        "`anchor` appends the chain's current head to the anchor file."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        subcommands = parser.add_subparsers(dest="subcommand", metavar="{verify,anchor}")
        subcommands.required = True
        subcommands.add_parser(
            "verify",
            help="Recompute the hash chain and check it against the anchor; print OK and the count, or TAMPERING.",
        )
        subcommands.add_parser("anchor", help="Append the chain's current head (seq and hash) to the anchor file.")

    def handle(self, *args: Any, **options: Any) -> None:
        subcommand = options["subcommand"]
        if subcommand == "verify":
            self._verify()
        elif subcommand == "anchor":
            self._anchor()
        else:  # argparse already refuses others; kept for call_command
            raise CommandError(f"Unknown subcommand {subcommand!r}.")

    def _verify(self) -> None:
        report = audit_trail_verify()
        for warning in report.warnings:
            self.stderr.write(f"WARNING: {warning}")
        if not report.ok:
            raise CommandError("TAMPERING: " + "; ".join(report.tampering) + ".")
        chain, parts = report.chain, [f"OK {report.chain.count} events verified"]
        if chain.legacy_count:
            parts.append(f"{chain.legacy_count} of them hashed without a key by an earlier release")
        if report.anchor.present:
            parts.append(f"anchor matched at {chain.anchors_matched} events up to seq {report.anchor.head_seq}")
        self.stdout.write("; ".join([*parts, f"head hash {chain.head_hash}"]))

    def _anchor(self) -> None:
        head = audit_anchor_head()
        if head is None:
            self.stdout.write("The audit trail is empty: nothing to anchor.")
            return
        seq, row_hash = head
        self.stdout.write(f"Anchored seq {seq} ({row_hash}) in {anchor_path()}")
