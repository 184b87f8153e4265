"""`manage.py demo_setup [--reset-passwords] [--demo-identities N] [--no-evaluation] [--faces-data PATH]`.

Sets up a DEMO workbench that a newcomer can try at once (called by `make setup` after migrate): demo users,
a demo team, a small demo gallery of research images and a demo case. Safe to run again: it changes nothing
that exists. Passwords are shown once, when the users are created (or reset), and never stored in clear.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from cases import demo

URL = "http://127.0.0.1:8000"


class Command(BaseCommand):
    help = "Create DEMO users, a DEMO gallery of research images and a DEMO case (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--reset-passwords",
            action="store_true",
            help="Give every demo user a new random password and print them.",
        )
        parser.add_argument(
            "--demo-identities",
            type=int,
            default=demo.DEMO_IDENTITIES_DEFAULT,
            help=f"CelebA identities to enrol in a new demo gallery (default {demo.DEMO_IDENTITIES_DEFAULT}).",
        )
        parser.add_argument(
            "--no-evaluation",
            action="store_true",
            help="Do not measure and store the pack's demographic evaluation on the research data's UTKFace folder.",
        )
        parser.add_argument(
            "--faces-data",
            type=Path,
            default=None,
            help="The research face data folder (default: settings.RFR_FACES_DATA, i.e. $RFR_FACES_DATA).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["demo_identities"] < 1:
            raise CommandError("--demo-identities must be at least 1.")
        faces_data = Path(options["faces_data"] or settings.RFR_FACES_DATA)

        created = demo.demo_users_ensure()
        reset = demo.demo_passwords_reset() if options["reset_passwords"] else {}
        passwords = {**created, **reset}
        if passwords:
            title = "DEMO passwords (new)" if reset else "DEMO users created"
            self._password_box(title, passwords)
        else:
            self.stdout.write(
                "The demo users exist already; their passwords were shown when they were created. "
                "For new ones run: python manage.py demo_setup --reset-passwords"
            )

        started = time.monotonic()
        self.stdout.write(f"Demo gallery: looking for research images in {faces_data} …")
        result = demo.demo_gallery_ensure(
            faces_data=faces_data,
            identities=options["demo_identities"],
            progress=options["verbosity"] >= 1,
        )
        if result is None:
            self.stdout.write(
                self.style.WARNING(
                    "No demo gallery: neither the research data nor insightface's sample photos were found."
                )
            )
        else:
            gallery = result.gallery
            self.stdout.write(
                f"Demo gallery {gallery.name!r} ({'created' if result.created else 'exists'}, "
                f"from {result.source}): {gallery.subjects.count()} subjects, {gallery.images.count()} images "
                f"[{time.monotonic() - started:.1f} s]."
            )
            if result.source == "insightface":
                self.stdout.write(
                    f"  ({faces_data} has no CelebA data, so insightface's sample photos were used; set "
                    "RFR_FACES_DATA or --faces-data to use the research data set.)"
                )

        if not options["no_evaluation"]:
            self._evaluations(faces_data, progress=options["verbosity"] >= 1)

        case, case_created = demo.demo_case_ensure()
        self.stdout.write(f"Demo case {case.reference} ({'created' if case_created else 'exists'}).")
        self._guide(result, case.pk)

    def _evaluations(self, faces_data: Path, *, progress: bool) -> None:
        started = time.monotonic()
        self.stdout.write("Accuracy evidence: the active pack's demographic evaluation on UTKFace (research data) …")

        def show(done: int, total: int) -> None:
            if done == total or done % 200 == 0:
                self.stdout.write(f"  {done}/{total} images")

        runs = demo.demo_evaluations_ensure(faces_data=faces_data, progress=show if progress else None)
        if not runs:
            self.stdout.write(f"  No UTKFace folder in {faces_data}: no stored evaluation (the accuracy page says so).")
        for run, created in runs:
            self.stdout.write(
                f"  {run.dataset_name}: evaluation run {run.pk} ({'stored' if created else 'exists'}) "
                f"[{time.monotonic() - started:.1f} s]."
            )

    def _password_box(self, title: str, passwords: dict[str, str]) -> None:
        rows = [
            f"{spec.username:<20} {passwords[spec.username]:<{demo.PASSWORD_LENGTH}}  {spec.summary}"
            for spec in demo.DEMO_USERS
            if spec.username in passwords
        ]
        notes = [
            "Shown once only; they are stored hashed. Local demo use only.",
            "New ones: python manage.py demo_setup --reset-passwords",
        ]
        width = max(len(line) for line in [title, *rows, *notes])
        border = "+" + "-" * (width + 2) + "+"
        lines = [border, f"| {title:<{width}} |", border]
        lines += [f"| {row:<{width}} |" for row in rows]
        lines += [border] + [f"| {note:<{width}} |" for note in notes] + [border]
        self.stdout.write(self.style.SUCCESS("\n".join(lines)))

    def _guide(self, result: demo.DemoGallery | None, case_id: int) -> None:
        lines = [
            "",
            "What to try (DEMO data only: results are possible matches — intelligence only, not an identification):",
            f"  1. Open {URL}/ and sign in as demo-investigator.",
            f"  2. Open case {demo.DEMO_CASE_REFERENCE}: {URL}/cases/{case_id}/workbench/",
        ]
        if result is not None and result.try_image is not None:
            lines.append(f"  3. Upload {result.try_image}")
            lines.append(f"     ({result.try_hint}); pick a face and search the demo gallery.")
        else:
            lines.append("  3. Upload a photo of a face and search the demo gallery.")
        lines += [
            "  4. Confirm or reject a candidate with a rationale; sign in as demo-supervisor to review it and "
            "to see the team's audit trail at /audit/.",
            "  5. Sign in as demo-investigator2: the case is not visible to them (need-to-know).",
            "  demo-admin manages users, teams, galleries and model packs at /manage/ (it sees no case content);",
            "  demo-admin and demo-supervisor see the pack's accuracy by group at /manage/accuracy/.",
        ]
        self.stdout.write("\n".join(lines))
