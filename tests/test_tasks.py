"""Tasks run on their own queues, are queued by name, and retry only on transient database errors."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import InterfaceError, OperationalError

from audit.models import AuditEvent
from cases import searches
from cases.models import Search
from cases.tasks import probe_process_task, search_run_task, video_process_task
from rfr.celery import app
from rfr.queues import TASK_QUEUES, Queue, TaskName
from search.tasks import gallery_enrol_batch
from tests.factories import CaseWorld, build_case_world, workbench_objects_create

pytestmark = pytest.mark.django_db


def test_every_task_is_registered_under_its_name_and_routed_to_its_queue() -> None:
    expected = {
        TaskName.PROBE_PROCESS: Queue.INFERENCE,
        TaskName.GALLERY_ENROL_BATCH: Queue.INFERENCE,
        TaskName.SEARCH_RUN: Queue.SEARCH,
        TaskName.CASES_PURGE_EXPIRED: Queue.HOUSEKEEPING,
        TaskName.GALLERY_PURGE_EXPIRED: Queue.HOUSEKEEPING,
        TaskName.AUDIT_ANCHOR: Queue.HOUSEKEEPING,
        TaskName.WORK_REQUEUE: Queue.HOUSEKEEPING,
        TaskName.STORAGE_SWEEP: Queue.HOUSEKEEPING,
        TaskName.ENROLMENT_RUNS_CHECK: Queue.HOUSEKEEPING,
        TaskName.EVALUATION_RUN: Queue.INFERENCE,
        TaskName.GALLERY_ENROL_RUN: Queue.INFERENCE,
        TaskName.MODELPACK_REEMBED: Queue.INFERENCE,
        TaskName.VIDEO_PROCESS: Queue.INFERENCE,
        TaskName.RESEARCH_DUE: Queue.HOUSEKEEPING,
        TaskName.INDEX_SNAPSHOT_WRITE: Queue.SEARCH,
    }
    assert expected == TASK_QUEUES
    for name, queue in expected.items():
        assert name.value in app.tasks, f"{name} is not registered"
        assert app.amqp.router.route({}, name.value)["queue"].name == queue.value
    # Anything not routed lands on housekeeping, which every deployment runs.
    assert app.amqp.router.route({}, "not.a.routed.task")["queue"].name == Queue.HOUSEKEEPING.value


def test_tasks_retry_only_transient_database_errors() -> None:
    for task in (probe_process_task, search_run_task, gallery_enrol_batch, video_process_task):
        assert set(task.autoretry_for) == {OperationalError, InterfaceError}, task.name


@pytest.fixture
def world() -> CaseWorld:
    world = build_case_world()
    workbench_objects_create(world)
    return world


def test_a_transient_database_error_during_a_search_is_retried_not_recorded_as_a_failure(
    world: CaseWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    search = world.extra["search"]
    Search.objects.filter(pk=search.pk).update(status=Search.Status.PENDING, progress=0)
    search.candidates.all().delete()

    def connection_lost(**kwargs: Any) -> Any:  # what psycopg raises when the server goes away mid-query
        raise OperationalError("server closed the connection unexpectedly")

    real = searches.search_galleries
    monkeypatch.setattr(searches, "search_galleries", connection_lost)
    with pytest.raises(OperationalError):
        searches.search_run(search_id=search.pk)
    search.refresh_from_db()
    assert search.status == Search.Status.PROCESSING and not search.error_code
    assert not AuditEvent.objects.filter(action="search.failed").exists()

    monkeypatch.setattr(searches, "search_galleries", real)  # the retry, once the database is back
    searches.search_run(search_id=search.pk)
    search.refresh_from_db()
    assert search.status == Search.Status.DONE and not search.error_code
    assert AuditEvent.objects.filter(action="search.completed", target_id=str(search.pk)).exists()


def test_any_other_fault_during_a_search_marks_it_failed_with_a_message(
    world: CaseWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    search = world.extra["search"]
    Search.objects.filter(pk=search.pk).update(status=Search.Status.PENDING, progress=0)

    def broken_index(**kwargs: Any) -> Any:
        raise RuntimeError("index file unreadable")

    monkeypatch.setattr(searches, "search_galleries", broken_index)
    searches.search_run(search_id=search.pk)
    search.refresh_from_db()
    assert search.status == Search.Status.FAILED and search.error_code == "search_error"
    assert "Try again" in search.error_message
    assert AuditEvent.objects.filter(action="search.failed", target_id=str(search.pk)).exists()
