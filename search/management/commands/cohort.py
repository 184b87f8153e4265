"""python manage.py cohort build | list | activate ID | deactivate — score-normalisation cohorts per pack.

`build` encodes a labelled folder (`file,age,sex,race[,identity]`) with the active pack and stores a cohort
balanced by one label, with its threshold calibrated (search.cohorts); it is stored inactive. `activate`
switches normalisation on for that cohort's pack; `deactivate` switches the active pack back to raw scores.
"""

from __future__ import annotations

import sys
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from faceengine.normalisation import DEFAULT_METHOD, DEFAULT_TOP_K, METHODS
from rfr.engine import active_engine, image_limits
from rfr.errors import ApplicationError
from search.cohorts import (
    DEFAULT_SIZE,
    score_cohort_activate,
    score_cohort_build,
    score_cohort_deactivate,
    score_cohorts_list,
)
from search.evaluations import command_line_label


def _progress(done: int, total: int) -> None:
    if done == total or done % 100 == 0:
        sys.stderr.write(f"\r  {done}/{total} images")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()


class Command(BaseCommand):
    help = "Score-normalisation cohorts: build one from a labelled folder, list, activate, deactivate."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        build = sub.add_parser("build", help="Build a balanced cohort for the active pack (stored inactive).")
        build.add_argument("--labels", type=Path, required=True, help="CSV file,age,sex,race[,identity].")
        build.add_argument("--images", type=Path, required=True)
        build.add_argument("--name", required=True)
        build.add_argument("--balance-by", default="race", help="sex, race or age (default race).")
        build.add_argument("--size", type=int, default=DEFAULT_SIZE)
        build.add_argument("--top-k", type=int, default=DEFAULT_TOP_K)
        build.add_argument("--method", choices=METHODS, default=DEFAULT_METHOD)
        build.add_argument("--min-age", type=float)
        build.add_argument("--max-age", type=float)
        build.add_argument("--adults", action="store_true", help="The same as --min-age 18.")
        build.add_argument("--seed", type=int, default=0)
        build.add_argument("--activate", action="store_true", help="Activate it once built.")
        sub.add_parser("list", help="List the cohorts of every pack.")
        activate = sub.add_parser("activate", help="Normalise the pack's searches against this cohort.")
        activate.add_argument("cohort_id", type=int)
        deactivate = sub.add_parser("deactivate", help="Raw scores again for the active pack (or --pack-key).")
        deactivate.add_argument("--pack-key")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, f"_{options['action']}")(options)
        except ApplicationError as exc:
            raise CommandError(exc.message) from None

    def _build(self, options: dict[str, Any]) -> None:
        if not options["labels"].is_file():
            raise CommandError(f"{options['labels']} does not exist or is not a file.")
        if not options["images"].is_dir():
            raise CommandError(f"{options['images']} is not a folder of images.")
        cohort = score_cohort_build(
            engine=active_engine(),
            labels_csv=options["labels"],
            images_dir=options["images"],
            name=options["name"],
            balanced_by=options["balance_by"],
            size=options["size"],
            top_k=options["top_k"],
            method=options["method"],
            min_age=18.0 if options["adults"] else options["min_age"],
            max_age=options["max_age"],
            seed=options["seed"],
            limits=image_limits(),
            created_by_label=command_line_label(),
            progress=_progress,
        )
        self.stdout.write(
            f"Built cohort {cohort.pk} ({cohort.name}, v{cohort.version} of {cohort.pack_key}): {cohort.size} faces,"
            f" {cohort.method} top {cohort.top_k}, threshold {cohort.threshold:.4f} (same FMR"
            f" {cohort.calibration['fmr']:.4%} as raw {cohort.raw_threshold}); composition {cohort.composition}"
        )
        if options["activate"]:
            score_cohort_activate(cohort_id=cohort.pk)
            self.stdout.write(f"Activated: searches of {cohort.pack_key} are now normalised against it.")

    def _list(self, options: dict[str, Any]) -> None:
        cohorts = list(score_cohorts_list())
        if not cohorts:
            self.stdout.write("No score cohorts. Build one with `python manage.py cohort build`.")
        for cohort in cohorts:
            mark = "*" if cohort.active else " "
            self.stdout.write(
                f"{mark} {cohort.pk:>4}  {cohort.pack_key}  v{cohort.version}  {cohort.name}  {cohort.size} faces"
                f"  {cohort.method}/{cohort.top_k}  threshold {cohort.threshold:.4f}  by {cohort.created_by_label}"
            )

    def _activate(self, options: dict[str, Any]) -> None:
        cohort = score_cohort_activate(cohort_id=options["cohort_id"])
        self.stdout.write(f"Activated cohort {cohort.pk} for {cohort.pack_key}.")

    def _deactivate(self, options: dict[str, Any]) -> None:
        pack_key = options.get("pack_key") or active_engine().pack.key
        score_cohort_deactivate(pack_key=pack_key)
        self.stdout.write(f"Scores of {pack_key} are raw again.")
