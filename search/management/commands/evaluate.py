"""python manage.py evaluate verification|identification|demographics|video … — accuracy measured on labelled data.

The protocols live in faceengine.evaluation; this command supplies the active engine and the upload limits
and prints the report (or one JSON object with --json). With --store the run is kept per model pack
(search.evaluations: figures, curves, data-set name, sha256 of the labels file, who ran it), where the accuracy
page, the thresholds page and the meaning of candidate scores read it. Storing is asked for, not the default:
a trial run on a handful of images must not become the evidence the product shows.
"""

from __future__ import annotations

import json
import sys
from argparse import ArgumentParser, BooleanOptionalAction
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from faceengine.evaluation import format_identification_report, format_verification_report, parse_degradation
from faceengine.evaluation.demographics import format_demographics_report
from faceengine.evaluation.video import (
    format_video_report,
    parse_distractors,
    read_video_labels,
    run_video_evaluation,
    video_gallery_build,
)
from rfr.engine import active_engine, image_limits
from rfr.errors import ApplicationError
from search.cohorts import RAW, score_cohort_get, score_cohort_normaliser
from search.evaluations import (
    EvaluationSpec,
    command_line_label,
    evaluation_compute,
    evaluation_run_record,
    file_sha256,
)
from search.models import EvaluationRun
from search.thresholds import system_threshold


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
        demographics = sub.add_parser(
            "demographics", help="False matches by sex, race and age band (CSV columns file,age,sex,race[,identity])."
        )
        demographics.add_argument("--labels", type=Path, required=True)
        demographics.add_argument("--images", type=Path, required=True)
        demographics.add_argument("--min-age", type=float, help="Only images labelled this age or older.")
        demographics.add_argument("--max-age", type=float, help="Only images labelled this age or younger.")
        demographics.add_argument("--adults", action="store_true", help="Only adults: the same as --min-age 18.")
        video = sub.add_parser(
            "video",
            help="Clips with a known target, tracks searched against a temporary gallery (docs/evaluation.md, Video).",
        )
        video.add_argument("--labels", type=Path, required=True, help="clip,target_identity,distractor_identity,…")
        video.add_argument("--videos", type=Path, required=True, help="The folder of the clips.")
        video.add_argument("--images", type=Path, required=True, help="The folder gallery_files are relative to.")
        video.add_argument(
            "--distractors",
            action="append",
            default=[],
            metavar="CSV:DIR",
            help="Enrol every image listed in CSV (file,identity) that is no clip's target or distractor; repeatable.",
        )
        video.add_argument("--sample-fps", type=float, default=5.0, help="Frames analysed per second (0: every frame).")
        video.add_argument("--json", action="store_true", help="Print one JSON object on stdout.")
        for command in (verification, identification, demographics):
            command.add_argument("--json", action="store_true", help="Print one JSON object on stdout.")
            command.add_argument(
                "--store", action="store_true", help="Keep the run for the active pack (needs --dataset-name)."
            )
            command.add_argument("--dataset-name", default="", help="The data set's name, as the pages show it.")
            command.add_argument(
                "--normalise",
                default="raw",
                metavar="raw|cohort:ID",
                help="Normalise every score against a score cohort of the active pack (manage.py cohort list);"
                " the operating threshold is then the cohort's. Default raw cosine scores.",
            )
            command.add_argument(
                "--research",
                action=BooleanOptionalAction,
                default=True,
                help="Whether the data set is research data, not casework (default: yes; shown wherever the run is).",
            )

    def handle(self, *args: Any, **options: Any) -> None:
        mode = options["mode"]
        if mode == "video":
            self._video(options)
            return
        labels: Path = options.get("pairs") or options.get("identities") or options["labels"]
        if not labels.is_file():
            raise CommandError(f"{labels} does not exist or is not a file.")
        if not options["images"].is_dir():
            raise CommandError(f"{options['images']} is not a folder of images.")
        if options["store"] and not options["dataset_name"].strip():
            raise CommandError("--store needs --dataset-name (e.g. 'UTKFace dev, adults').")
        try:
            degradation = parse_degradation(options["degrade"]) if options.get("degrade") else None
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        min_age = options.get("min_age")
        if options.get("adults"):
            min_age = 18.0 if min_age is None else max(min_age, 18.0)
        spec = EvaluationSpec(
            kind=mode,
            images_dir=options["images"],
            labels=labels,
            group_by=options.get("group_by"),
            min_age=min_age,
            max_age=options.get("max_age"),
            degradation=degradation,
        )
        engine = active_engine()
        normalisation = options["normalise"].strip() or RAW
        normaliser, operating_threshold = None, None
        if normalisation != RAW:
            try:
                cohort = score_cohort_get(label=normalisation)
            except ApplicationError as exc:
                raise CommandError(exc.message) from None
            if cohort.pack_key != engine.pack.key:
                raise CommandError(f"Cohort {cohort.pk} belongs to pack {cohort.pack_key}, not {engine.pack.key}.")
            normaliser, operating_threshold = score_cohort_normaliser(cohort), cohort.threshold
        try:
            figures, curves = evaluation_compute(
                engine,
                spec,
                None if options["json"] else _progress,
                normaliser=normaliser,
                operating_threshold=operating_threshold,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if normaliser is not None:
            figures["normalisation"] = normalisation
        if options["store"]:
            run = evaluation_run_record(
                pack_key=engine.pack.key,
                kind=mode,
                dataset_name=options["dataset_name"].strip(),
                dataset_is_research=options["research"],
                labels_sha256=file_sha256(labels),
                source=f"{labels} (images {options['images']})",
                figures=figures,
                curves=curves,
                normalisation=normalisation,
                run_by_label=command_line_label(),
            )
            sys.stderr.write(f"Stored as evaluation run {run.pk} of pack {run.pack_key}.\n")
        if options["json"]:
            self.stdout.write(json.dumps(figures, sort_keys=True))
        elif mode == EvaluationRun.Kind.VERIFICATION:
            self.stdout.write(format_verification_report(figures))
        elif mode == EvaluationRun.Kind.IDENTIFICATION:
            self.stdout.write(format_identification_report(figures))
        else:
            self.stdout.write(format_demographics_report(figures))

    def _video(self, options: dict[str, Any]) -> None:
        """`evaluate video`: figures only, never stored (runs are kept per still-image protocol)."""
        if not options["labels"].is_file():
            raise CommandError(f"{options['labels']} does not exist or is not a file.")
        for folder in ("videos", "images"):
            if not options[folder].is_dir():
                raise CommandError(f"{options[folder]} is not a folder.")
        try:
            labels = read_video_labels(options["labels"])
            distractors = [parse_distractors(spec) for spec in options["distractors"]]
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        engine = active_engine()
        quiet = options["json"]
        gallery = video_gallery_build(
            engine, labels, options["images"], distractors, limits=image_limits(), progress=None if quiet else _progress
        )
        threshold, _ = system_threshold(pack_key=engine.pack.key)

        def clip_progress(done: int, total: int) -> None:
            sys.stderr.write(f"\r  {done}/{total} clips")
            sys.stderr.write("\n" if done == total else "")
            sys.stderr.flush()

        figures = run_video_evaluation(
            engine,
            labels=labels,
            videos_dir=options["videos"],
            gallery=gallery,
            operating_threshold=threshold,
            sample_fps=options["sample_fps"] or None,
            progress=None if quiet else clip_progress,
        )
        if quiet:
            self.stdout.write(json.dumps(figures, sort_keys=True))
        else:
            self.stdout.write(format_video_report(figures))
