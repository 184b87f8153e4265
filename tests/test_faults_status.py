"""The progress display says "Waiting for a worker…" when pending or processing work shows no sign of a worker,
instead of a frozen percentage; the page's status JSON and the API say so alike."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from cases.models import Probe, Search
from tests.factories import PASSWORD, CaseWorld, build_case_world, client_for, workbench_objects_create

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


@pytest.fixture
def world() -> CaseWorld:
    world = build_case_world()
    workbench_objects_create(world)
    return world


@pytest.mark.parametrize(
    "status,silent,waiting",
    [
        ("pending", 1, False),  # just queued
        ("pending", 10, True),  # queued and nobody took it
        ("pending", None, True),  # queueing failed; housekeeping sends it again
        ("processing", 30, False),  # a worker is on it
        ("processing", 200, True),  # its worker went quiet
        ("done", 10_000, False),
    ],
)
def test_status_says_waiting_for_a_worker_when_nothing_moves(
    world: CaseWorld, status: str, silent: float | None, waiting: bool
) -> None:
    probe, search = world.extra["probe"], world.extra["search"]
    heartbeat = None if silent is None else timezone.now() - timedelta(seconds=silent)
    Probe.objects.filter(pk=probe.pk).update(status=status, progress=30, heartbeat_at=heartbeat)
    Search.objects.filter(pk=search.pk).update(status=status, progress=20, heartbeat_at=heartbeat)
    owner = world.users["owner"]
    page = Client()
    page.login(username=owner.username, password=PASSWORD)
    api = client_for(owner)
    for url in (f"/probes/{probe.pk}/status.json", f"/searches/{search.pk}/status.json"):
        body: dict[str, Any] = page.get(url).json()
        assert body["waiting_for_worker"] is waiting, url
        assert (body["status_text"] == "Waiting for a worker…") is waiting, url
        assert body["status"] == status
    for url in (f"/api/probes/{probe.pk}/", f"/api/searches/{search.pk}/status/"):
        assert api.get(url).json()["waiting_for_worker"] is waiting, url
    # Without JavaScript, the page itself says so ("Check again" reloads it).
    if status != "done":
        for url in (f"/probes/{probe.pk}/", f"/searches/{search.pk}/"):
            assert ("Waiting for a worker…" in page.get(url).content.decode()) is waiting, url
