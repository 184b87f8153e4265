"""Accuracy evaluations stored per model pack: recording a finished run, and reading runs back.

An `EvaluationRun` holds what `manage.py evaluate verification|identification|demographics --json` printed
(`figures`), the error rates on a fine grid of thresholds per group (`curves`), and where the figures came
from: the data set's name, the sha256 of its label file, whether it is research data, who ran it and when.
The accuracy page, the thresholds page and the meaning of a candidate's score read them through the
selectors here (`evaluation_runs_for_pack`, `evaluation_run_latest`); only finished runs (`done`) carry
figures that may be relied on.
"""

from __future__ import annotations

import getpass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from audit.actions import AuditAction
from audit.services import audit_event_record
from search.models import EvaluationRun

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
