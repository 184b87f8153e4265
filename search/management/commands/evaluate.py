"""python manage.py evaluate verification|identification … — accuracy measured on labelled data.

The protocols live in faceengine.evaluation; this command supplies the active engine and the upload limits
and prints the report (or one JSON object with --json).
"""

from __future__ import annotations

import json
import sys
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from faceengine.evaluation import (
    format_identification_report,
    format_verification_report,
    parse_degradation,
    run_identification,
    run_verification,
)
from rfr.engine import active_engine, image_limits


def _progress(done: int, total: int) -> None:
    if done == total or done % 50 == 0:
        sys.stderr.write(f"\r  {done}/{total} images")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()


class Command(BaseCommand):
    help = "Measure accuracy of the active model pack: 1:1 verification pairs or 1:N identification."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="mode", required=True)
        verification = sub.add_parser("verification", help="1:1 pairs (CSV columns fold,left,right,same).")
        verification.add_argument("--pairs", type=Path, required=True)
        verification.add_argument("--images", type=Path, required=True)
        verification.add_argument("--group-by", help="CSV:COLUMN giving a group per identity, e.g. lfw/sex.csv:sex")
        verification.add_argument("--json", action="store_true", help="Print one JSON object on stdout.")
        verification.add_argument(
            "--degrade",
            metavar="ied=N[,blur=S][,jpeg=Q]",
            help="Degrade the right image of each pair: shrink (area averaging) so the eyes are N px apart, "
            "Gaussian blur σ S (default 0.8), JPEG quality Q (default 35); see docs/evaluation.md.",
        )
        identification = sub.add_parser("identification", help="1:N search (CSV columns file,identity[,groups]).")
        identification.add_argument("--identities", type=Path, required=True)
        identification.add_argument("--images", type=Path, required=True)
        identification.add_argument("--group-by", help="A column of the identities CSV, e.g. sex.")
        identification.add_argument("--json", action="store_true", help="Print one JSON object on stdout.")

    def handle(self, *args: Any, **options: Any) -> None:
        for key in ("pairs", "identities"):
            if options.get(key) is not None and not options[key].is_file():
                raise CommandError(f"{options[key]} does not exist or is not a file.")
        if not options["images"].is_dir():
            raise CommandError(f"{options['images']} is not a folder of images.")
        try:
            if options["mode"] == "verification":
                degradation = parse_degradation(options["degrade"]) if options.get("degrade") else None
                result = run_verification(
                    active_engine(),
                    pairs_csv=options["pairs"],
                    images_dir=options["images"],
                    group_by=options.get("group_by"),
                    progress=None if options["json"] else _progress,
                    degradation=degradation,
                )
                report = format_verification_report(result)
            else:
                result = run_identification(
                    active_engine(),
                    identities_csv=options["identities"],
                    images_dir=options["images"],
                    group_by=options.get("group_by"),
                    limits=image_limits(),
                )
                report = format_identification_report(result)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if options["json"]:
            self.stdout.write(json.dumps(result, sort_keys=True))
        else:
            self.stdout.write(report)
