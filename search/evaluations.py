"""Accuracy evaluations stored per model pack: measuring, recording a finished run, queuing one, reading runs.

An `EvaluationRun` holds what `manage.py evaluate verification|identification|demographics --json` printed
(`figures`), the error rates on a fine grid of thresholds per group (`curves`), and where the figures came
from: the data set's name, the sha256 of its label file, whether it is research data, who ran it and when.
The accuracy page, the thresholds page and the meaning of a candidate's score read them through the
selectors here (`evaluation_runs_for_pack`, `evaluation_run_latest`); only finished runs (`done`) carry
figures that may be relied on.

A run is made either from the command line (`manage.py evaluate … --store`, which measures with
`evaluation_compute` and stores with `evaluation_run_record`) or by an admin who queues one on a folder the
server can read inside RFR_EVALUATION_ROOTS (`evaluation_run_queue`); the worker then measures it on the
inference queue (`evaluation_run_execute`), writing its progress on the row as it goes.
"""

from __future__ import annotations

import csv
import getpass
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import F, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from audit.actions import AuditAction
from audit.services import audit_event_record
from faceengine import FaceEngine, ModelPackError, load_pack
from faceengine.evaluation import run_identification
from faceengine.evaluation.datasets import read_table
from faceengine.evaluation.degrade import Degradation
from faceengine.evaluation.demographics import curves_from_pair_scores, run_demographics
from faceengine.evaluation.verification import verification_evaluate
from faceengine.normalisation import Normaliser
from rfr.engine import active_engine, active_pack_dir, image_limits
from rfr.errors import InvalidInput
from rfr.queues import TaskName, task_enqueue_on_commit
from search.models import EvaluationRun

logger = logging.getLogger(__name__)

Actor = AbstractBaseUser | AnonymousUser | None


def command_line_label() -> str:
    """Who ran a command-line evaluation, as stored in `run_by_label`."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"command line ({user})"


def _actor_label(actor: Actor, run_by_label: str) -> tuple[Any, str]:
    user = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    if run_by_label:
        return user, run_by_label[:150]
    if user is not None:
        return user, user.get_username()[:150]
    return None, command_line_label()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# -- measuring ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvaluationSpec:
    """What to measure: the kind, the images folder, the labels file (pairs, identities or labels CSV)."""

    kind: str
    images_dir: Path
    labels: Path
    group_by: str | None = None
    min_age: float | None = None
    max_age: float | None = None
    degradation: Degradation | None = None  # verification only: the right images degraded (--degrade)


def evaluation_compute(
    engine: FaceEngine,
    spec: EvaluationSpec,
    progress: Callable[[int, int], None] | None = None,
    normaliser: Normaliser | None = None,
    operating_threshold: float | None = None,
) -> tuple[dict[str, Any], dict[str, list[list[float | None]]]]:
    """(figures, curves) of one evaluation; figures are exactly what `evaluate … --json` prints.

    Identification runs store no curves: their rates are per search (FPIR, FNIR), not per pair, so they
    cannot give a score's false-match rate. With a `normaliser` (a score cohort's, search.cohorts) every score
    is normalised against the cohort, and `operating_threshold` is then the cohort's own threshold."""
    if spec.kind == EvaluationRun.Kind.DEMOGRAPHICS:
        return run_demographics(
            engine,
            labels_csv=spec.labels,
            images_dir=spec.images_dir,
            operating_threshold=(
                settings.RFR_DEFAULT_THRESHOLD if operating_threshold is None else operating_threshold
            ),
            min_age=spec.min_age,
            max_age=spec.max_age,
            limits=image_limits(),
            progress=progress,
            normaliser=normaliser,
        )
    if spec.kind == EvaluationRun.Kind.VERIFICATION:
        outcome = verification_evaluate(
            engine,
            pairs_csv=spec.labels,
            images_dir=spec.images_dir,
            group_by=spec.group_by,
            progress=progress,
            normaliser=normaliser,
            degradation=spec.degradation,
        )
        attribute = outcome.result.get("group_column") or "group"
        groups = outcome.pair_groups if spec.group_by else None
        return outcome.result, curves_from_pair_scores(outcome.scores, outcome.same, groups, attribute)
    if spec.kind == EvaluationRun.Kind.IDENTIFICATION:
        result = run_identification(
            engine,
            identities_csv=spec.labels,
            images_dir=spec.images_dir,
            group_by=spec.group_by,
            limits=image_limits(),
            normaliser=normaliser,
        )
        return result, {}
    raise ValueError(f"Unknown evaluation kind {spec.kind!r}.")


# -- writing ------------------------------------------------------------------------------------------------
@transaction.atomic
def evaluation_run_record(
    *,
    pack_key: str,
    kind: str,
    dataset_name: str,
    figures: dict[str, Any],
    curves: dict[str, list[list[float | None]]],
    labels_sha256: str = "",
    source: str = "",
    dataset_is_research: bool = True,
    normalisation: str = "raw",
    run_by: Actor = None,
    run_by_label: str = "",
) -> EvaluationRun:
    """Store a finished evaluation (command line) with its `evaluation.run_recorded` audit event."""
    user, label = _actor_label(run_by, run_by_label)
    now = timezone.now()
    run = EvaluationRun.objects.create(
        pack_key=pack_key,
        kind=EvaluationRun.Kind(kind),
        dataset_name=dataset_name[:200],
        dataset_is_research=dataset_is_research,
        labels_sha256=labels_sha256,
        source=source[:500],
        normalisation=normalisation,
        run_by=user,
        run_by_label=label,
        finished_at=now,
        status=EvaluationRun.Status.DONE,
        figures=figures,
        curves=curves,
    )
    _record_audit(run, user)
    return run


def _record_audit(run: EvaluationRun, user: Any) -> None:
    audit_event_record(
        action=AuditAction.EVALUATION_RUN_RECORDED,
        actor=user,
        target=run,
        detail={
            "run_id": run.pk,
            "kind": run.kind,
            "pack_key": run.pack_key,
            "dataset": run.dataset_name,
            "research": run.dataset_is_research,
            "labels_sha256": run.labels_sha256,
            "normalisation": run.normalisation,
            "by": run.run_by_label,
        },
    )


# -- queued by an admin --------------------------------------------------------------------------------------
def _inside_roots(path: Path, roots: list[Path]) -> bool:
    return any(path.is_relative_to(root) for root in roots)


def evaluation_spec_resolve(*, kind: str, folder: str, labels: str, group_by: str = "") -> EvaluationSpec:
    """The images folder and labels file an admin named, resolved (symbolic links followed) and refused
    unless both lie inside RFR_EVALUATION_ROOTS. A relative folder is taken from the first root, a relative
    labels file from the folder."""
    roots: list[Path] = list(settings.RFR_EVALUATION_ROOTS)
    if not roots:
        raise InvalidInput(
            "evaluation_roots_unset",
            "No server folder is open for evaluation: an operator must list one in RFR_EVALUATION_ROOTS.",
        )
    if kind not in EvaluationRun.Kind.values:
        raise InvalidInput("invalid_kind", f"Choose one of {', '.join(EvaluationRun.Kind.values)}.")
    if not folder.strip() or "\x00" in folder or "\x00" in labels:
        raise InvalidInput("folder_required", "Name a folder of images.", fields={"folder": ["Name a folder."]})
    named = Path(folder.strip())
    images_dir = (named if named.is_absolute() else roots[0] / named).resolve()
    if not _inside_roots(images_dir, roots):
        raise InvalidInput(
            "folder_outside_roots",
            f"{folder} is outside the folders open for evaluation ({', '.join(str(r) for r in roots)}).",
        )
    if not images_dir.is_dir():
        raise InvalidInput("folder_not_found", f"There is no folder {folder} on the server.")
    labels_named = Path(labels.strip() or "labels.csv")
    labels_path = (labels_named if labels_named.is_absolute() else images_dir / labels_named).resolve()
    if not _inside_roots(labels_path, roots):
        raise InvalidInput("labels_outside_roots", f"{labels} is outside the folders open for evaluation.")
    if not labels_path.is_file():
        raise InvalidInput("labels_not_found", f"There is no labels file {labels_named} in {folder}.")
    images = images_dir / "images" if (images_dir / "images").is_dir() else images_dir
    return EvaluationSpec(kind=kind, images_dir=images, labels=labels_path, group_by=group_by.strip() or None)


@transaction.atomic
def evaluation_run_queue(
    *,
    spec: EvaluationSpec,
    dataset_name: str,
    dataset_is_research: bool = True,
    actor: Actor = None,
    request: HttpRequest | None = None,
) -> EvaluationRun:
    """Queue a measurement of the active pack on a resolved server folder (`evaluation_spec_resolve`), with its
    `evaluation.run_queued` audit event; the inference queue measures it once this transaction commits."""
    if not dataset_name.strip():
        raise InvalidInput("dataset_name_required", "Name the data set.", fields={"dataset_name": ["Required."]})
    user = actor if actor is not None else getattr(request, "user", None)
    user, label = _actor_label(user, "")
    try:
        # The manifest only: the web process does not load the models to name the pack.
        pack_key = load_pack(active_pack_dir(), verify=False).key
    except ModelPackError as error:
        raise InvalidInput("pack_broken", error.message) from error
    run = EvaluationRun.objects.create(
        pack_key=pack_key,
        kind=spec.kind,
        dataset_name=dataset_name.strip()[:200],
        dataset_is_research=dataset_is_research,
        labels_sha256=file_sha256(spec.labels),
        source=f"{spec.labels} (images {spec.images_dir})"[:500],
        run_by=user,
        run_by_label=label,
        status=EvaluationRun.Status.QUEUED,
        parameters={
            "images_dir": str(spec.images_dir),
            "labels": str(spec.labels),
            "group_by": spec.group_by,
            "min_age": spec.min_age,
            "max_age": spec.max_age,
        },
    )
    audit_event_record(
        action=AuditAction.EVALUATION_RUN_QUEUED,
        actor=user,
        request=request,
        target=run,
        detail={
            "run_id": run.pk,
            "kind": run.kind,
            "pack_key": run.pack_key,
            "dataset": run.dataset_name,
            "research": run.dataset_is_research,
            "source": run.source,
        },
    )
    task_enqueue_on_commit(TaskName.EVALUATION_RUN, run.pk)
    return run


def _files_outside(spec: EvaluationSpec, roots: list[Path]) -> str | None:
    """The first image the labels file names that resolves (symbolic links followed) outside the roots."""
    try:
        _, rows = read_table(spec.labels)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        return f"nothing readable ({error})"
    columns = ("left", "right") if spec.kind == EvaluationRun.Kind.VERIFICATION else ("file",)
    for row in rows:
        for column in columns:
            name = row.get(column) or ""
            if name and not _inside_roots((spec.images_dir / name).resolve(), roots):
                return name
    return None


def _finish(run: EvaluationRun, status: str, message: str = "") -> EvaluationRun:
    EvaluationRun.objects.filter(pk=run.pk).update(status=status, error_message=message, finished_at=timezone.now())
    run.refresh_from_db()
    return run


def evaluation_run_execute(*, run_id: int) -> EvaluationRun | None:
    """Measure a queued run (on the inference queue), writing progress as images are encoded; exits quietly if
    the run is gone or no longer queued (a redelivered message for a finished run)."""
    run = EvaluationRun.objects.filter(pk=run_id).first()
    if run is None or run.status not in (EvaluationRun.Status.QUEUED, EvaluationRun.Status.RUNNING):
        return run
    EvaluationRun.objects.filter(pk=run.pk).update(status=EvaluationRun.Status.RUNNING, progress_done=0)
    params = run.parameters
    roots: list[Path] = list(settings.RFR_EVALUATION_ROOTS)
    spec = EvaluationSpec(
        kind=run.kind,
        images_dir=Path(params.get("images_dir", "")),
        labels=Path(params.get("labels", "")),
        group_by=params.get("group_by"),
        min_age=params.get("min_age"),
        max_age=params.get("max_age"),
    )
    if not all(_inside_roots(p.resolve(), roots) for p in (spec.images_dir, spec.labels)):
        return _finish(run, EvaluationRun.Status.FAILED, "the folder is no longer open for evaluation")
    if not spec.labels.is_file() or file_sha256(spec.labels) != run.labels_sha256:
        return _finish(run, EvaluationRun.Status.FAILED, "the labels file changed or disappeared after queuing")
    outside = _files_outside(spec, roots)
    if outside:
        return _finish(
            run,
            EvaluationRun.Status.FAILED,
            f"{outside} named in the labels file leads outside the folders open for evaluation",
        )
    engine = active_engine()
    if engine.pack.key != run.pack_key:
        return _finish(run, EvaluationRun.Status.FAILED, f"the active pack is now {engine.pack.key}")

    def progress(done: int, total: int) -> None:
        if done == total or done % 25 == 0:
            EvaluationRun.objects.filter(pk=run.pk).update(progress_done=done, progress_total=total)

    try:
        figures, curves = evaluation_compute(engine, spec, progress)
    except (OperationalError, InterfaceError):
        raise  # transient: the task is retried
    except Exception as error:
        logger.exception("evaluation run %s stopped", run.pk)
        return _finish(run, EvaluationRun.Status.FAILED, f"stopped by an error: {error}")
    with transaction.atomic():
        EvaluationRun.objects.filter(pk=run.pk).update(
            status=EvaluationRun.Status.DONE,
            figures=figures,
            curves=curves,
            finished_at=timezone.now(),
            progress_done=F("progress_total"),
        )
        run.refresh_from_db()
        _record_audit(run, None)
    return run


def evaluation_run_progress(*, run: EvaluationRun) -> dict[str, Any]:
    """The JSON a page polls with static/js/progress.js: `status` (queued, running, done, failed), `progress`
    (0-100), images `done` and `total`, and `status_text`, a sentence."""
    run.refresh_from_db(fields=["status", "progress_done", "progress_total", "error_message", "finished_at"])
    done, total = run.progress_done, run.progress_total
    if run.status == EvaluationRun.Status.DONE:
        text = "Finished."
    elif run.status == EvaluationRun.Status.FAILED:
        text = f"Failed: {run.error_message}"
    elif run.status == EvaluationRun.Status.QUEUED:
        text = "Queued: waiting for a worker."
    else:
        text = f"{done} of {total} images encoded." if total else "Starting…"
    return {
        "id": run.pk,
        "status": run.status,
        "progress": 100 if run.status == EvaluationRun.Status.DONE else round(100 * done / total) if total else 0,
        "done": done,
        "total": total,
        "status_text": text,
    }


# -- reading ------------------------------------------------------------------------------------------------
def evaluation_runs_for_pack(
    *,
    pack_key: str,
    kind: str | None = None,
    normalisation: str | None = None,
    finished_only: bool = False,
) -> QuerySet[EvaluationRun]:
    """A pack's evaluation runs, newest first; optionally of one kind, one normalisation, or done only."""
    runs = EvaluationRun.objects.filter(pack_key=pack_key).select_related("run_by")
    if kind is not None:
        runs = runs.filter(kind=kind)
    if normalisation is not None:
        runs = runs.filter(normalisation=normalisation)
    if finished_only:
        runs = runs.filter(status=EvaluationRun.Status.DONE)
    return runs.order_by("-created_at", "-pk")


def evaluation_run_latest(
    *,
    pack_key: str,
    kind: str | None = None,
    normalisation: str = "raw",
    dataset_name: str | None = None,
) -> EvaluationRun | None:
    """The newest finished run of a pack (of a kind, a normalisation, a data set), or None."""
    runs = evaluation_runs_for_pack(pack_key=pack_key, kind=kind, normalisation=normalisation, finished_only=True)
    if dataset_name is not None:
        runs = runs.filter(dataset_name=dataset_name)
    return runs.first()
