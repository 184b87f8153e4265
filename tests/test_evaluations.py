"""Evaluation runs stored per model pack (search.evaluations): recording, reading back, auditing."""

from __future__ import annotations

import pytest

from audit.actions import AuditAction
from audit.models import AuditEvent
from search.evaluations import evaluation_run_latest, evaluation_run_record, evaluation_runs_for_pack
from search.models import EvaluationRun


@pytest.mark.django_db
def test_recorded_run_round_trips_and_is_audited() -> None:
    curves = {"overall": [[0.3, 0.003, None], [0.35, 0.001, None]], "race=White": [[0.3, 0.002, None]]}
    figures = {"images": 10, "fte": 0, "thresholds": {"operating": 0.3}}
    older = evaluation_run_record(
        pack_key="pack-a", kind="demographics", dataset_name="UTKFace adults", figures=figures, curves=curves,
        labels_sha256="ab" * 32, source="/data/utkface/labels.csv",
    )  # fmt: skip
    newer = evaluation_run_record(
        pack_key="pack-a", kind="demographics", dataset_name="UTKFace adults", figures=figures, curves=curves,
    )  # fmt: skip
    EvaluationRun.objects.create(pack_key="pack-a", kind="demographics", dataset_name="queued one")
    evaluation_run_record(pack_key="pack-b", kind="verification", dataset_name="LFW", figures={}, curves={})

    stored = EvaluationRun.objects.get(pk=older.pk)
    assert stored.figures == figures and stored.curves == curves
    assert stored.status == EvaluationRun.Status.DONE and stored.finished_at is not None
    assert stored.run_by is None and stored.run_by_label.startswith("command line (")
    assert stored.dataset_is_research and stored.normalisation == "raw"
    assert evaluation_runs_for_pack(pack_key="pack-a")[0].dataset_name == "queued one"
    assert list(evaluation_runs_for_pack(pack_key="pack-a", finished_only=True)) == [newer, older]
    assert evaluation_run_latest(pack_key="pack-a") == newer
    assert evaluation_run_latest(pack_key="pack-a", kind="verification") is None
    assert evaluation_run_latest(pack_key="pack-a", normalisation="cohort:1") is None
    event = AuditEvent.objects.filter(action=AuditAction.EVALUATION_RUN_RECORDED, target_id=str(older.pk)).get()
    assert event.detail["labels_sha256"] == "ab" * 32 and event.detail["dataset"] == "UTKFace adults"
