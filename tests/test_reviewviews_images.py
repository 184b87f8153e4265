"""Viewing probe and candidate images is audited (issue 9, deliverable "Viewing probe and candidate images is
audited"): the probe original, a face crop, a candidate's gallery image and its aligned crop each write one
event per request, before the image is sent; a refused request (outsider, image no longer held) writes none.

Real PostgreSQL; workbench objects made directly (no face engine).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from audit.models import AuditEvent
from audit.verify import audit_chain_verify
from tests.factories import CaseWorld, build_case_world, workbench_objects_create

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


@pytest.fixture
def world(settings: Any, tmp_path: Path) -> CaseWorld:
    settings.MEDIA_ROOT = tmp_path / "media"
    world = build_case_world()
    workbench_objects_create(world)
    return world


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _image_urls(world: CaseWorld) -> list[tuple[str, str, str, dict[str, Any]]]:
    probe, face, candidate = world.extra["probe"], world.extra["face"], world.extra["candidate"]
    return [
        (f"/probes/{probe.pk}/image", "probe.image_viewed", "original", {"probe_id": probe.pk}),
        (f"/faces/{face.pk}/crop.png", "probe.image_viewed", "face_crop", {"probe_id": probe.pk, "face_id": face.pk}),
        (f"/candidates/{candidate.pk}/image", "candidate.image_viewed", "gallery_image", {"rank": 1}),
        (f"/candidates/{candidate.pk}/crop.png", "candidate.image_viewed", "aligned_crop", {"rank": 1}),
    ]


def test_each_image_view_is_one_audit_event(world: CaseWorld) -> None:
    supervisor = world.users["supervisor"]
    client = _client(supervisor)
    for url, action, shown, expected in _image_urls(world):
        before = AuditEvent.objects.filter(action=action).count()
        for _ in range(2):  # one event per request: a second view is a second event
            response = client.get(url)
            assert response.status_code == 200, url
            assert "no-store" in response["Cache-Control"]
            body = b"".join(response.streaming_content) if response.streaming else response.content  # type: ignore[attr-defined]
            assert body, url
        events = list(AuditEvent.objects.filter(action=action).order_by("-seq")[:2])
        assert AuditEvent.objects.filter(action=action).count() == before + 2, url
        for event in events:
            assert event.actor_id == supervisor.pk and event.case_id == world.case.pk
            assert event.detail["shown"] == shown and event.detail["via"] == "page"
            assert expected.items() <= event.detail.items()
    assert audit_chain_verify().ok


def test_a_refused_image_request_writes_no_event(world: CaseWorld) -> None:
    urls = _image_urls(world)
    outsider = _client(world.users["outsider"])
    admin = _client(world.users["admin"])
    for url, _, _, _ in urls:
        assert outsider.get(url).status_code == 404
        assert admin.get(url).status_code == 404  # an admin is not on the case
    assert not AuditEvent.objects.filter(action__in=["probe.image_viewed", "candidate.image_viewed"]).exists()

    # An image no longer held: 404, and nothing recorded as seen.
    probe = world.extra["probe"]
    Path(probe.original.path).unlink()
    assert _client(world.users["owner"]).get(f"/probes/{probe.pk}/image").status_code == 404
    assert not AuditEvent.objects.filter(action="probe.image_viewed").exists()
