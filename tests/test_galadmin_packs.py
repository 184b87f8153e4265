"""rfr's own model-pack page (/manage/modelpacks/): list, verify (hashes), activate (a stored choice that
overrides RFR_MODEL_PACK for every active_engine() call), and a re-embedding run that gives every gallery
image a template of the chosen pack, with progress and per-image errors; admins only, every action audited.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from accounts.roles import ADMIN, SUPERVISOR
from audit.models import AuditEvent
from faceengine.packs import MANIFEST_NAME
from rfr.engine import active_engine, active_pack_name
from search.enrolment import gallery_image_enrol
from search.execution import search_galleries
from search.galleries import gallery_create
from search.models import ActivePack, Gallery, ReembedRun, Template
from tests.factories import celeba_identities, make_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.embedded]

COPY = "sface-copy"
COPY_KEY = "sface-copy@2"


def _pack_like(source: Path, dest: Path, **manifest_changes: Any) -> None:
    """A pack folder whose model files link to the real pack's, under another manifest."""
    dest.mkdir()
    manifest = json.loads((source / MANIFEST_NAME).read_text())
    for child in source.iterdir():
        if child.name != MANIFEST_NAME:
            os.symlink(child, dest / child.name)
    for key, value in manifest_changes.items():
        if isinstance(value, dict):
            manifest[key] = {**manifest[key], **value}
        else:
            manifest[key] = value
    (dest / MANIFEST_NAME).write_text(json.dumps(manifest))


@pytest.fixture
def packs(settings: Any, tmp_path: Path, pack_dir: Path, gallery_env: Path) -> Path:
    """Three packs: the real one (active by the setting), a copy under another name, and a tampered one."""
    root = tmp_path / "modelpacks"
    root.mkdir()
    os.symlink(pack_dir.resolve(), root / pack_dir.name)
    _pack_like(pack_dir, root / COPY, name=COPY, version="2")
    _pack_like(pack_dir, root / "tampered", name="tampered", version="1", recogniser={"sha256": "0" * 64})
    settings.RFR_MODEL_PACK_DIR = root
    return root


@pytest.fixture
def admin_client(packs: Path, eager_celery: None) -> Client:
    client = Client()
    client.force_login(make_user("ada", role=ADMIN))
    return client


def _messages(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_list_and_verify(admin_client: Client, pack_dir: Path) -> None:
    page = admin_client.get(reverse("search:manage-modelpacks"))
    assert page.status_code == 200
    html = page.content.decode()
    assert f"{pack_dir.name} <strong>(active)</strong>" in html
    assert f"<code>{COPY_KEY}</code>" in html and "tampered" in html

    ok = admin_client.post(reverse("search:manage-modelpack-verify", args=[COPY]))
    assert ok["Location"] == reverse("search:manage-modelpacks")
    assert any(m.startswith(f"Verify {COPY}: OK") for m in _messages(ok))
    broken = admin_client.post(reverse("search:manage-modelpack-verify", args=["tampered"]))
    assert any("FAILED" in m and "sha256" in m for m in _messages(broken))
    events = {e.detail["pack"]: e for e in AuditEvent.objects.filter(action="modelpack.verified")}
    assert events[COPY].detail["ok"] is True and events[COPY].detail["pack_key"] == COPY_KEY
    assert events["tampered"].detail["ok"] is False and events["tampered"].actor_username == "ada"

    # Only installed pack folders by name: anything else is not found and checks nothing.
    missing = admin_client.post(reverse("search:manage-modelpack-verify", args=["no-such-pack"]))
    assert any("No model pack named" in m for m in _messages(missing))
    assert AuditEvent.objects.filter(action="modelpack.verified").count() == 2


def test_activate_stores_the_choice_and_the_engine_follows_it(admin_client: Client, pack_dir: Path) -> None:
    assert active_pack_name() == django_settings.RFR_MODEL_PACK == pack_dir.name
    refused = admin_client.post(reverse("search:manage-modelpack-activate", args=["tampered"]))
    assert any("sha256" in m for m in _messages(refused))
    assert not ActivePack.objects.exists()

    response = admin_client.post(reverse("search:manage-modelpack-activate", args=[COPY]))
    assert any(f"{COPY_KEY} is now the active pack" in m for m in _messages(response))
    assert ActivePack.objects.get().name == COPY
    assert active_pack_name() == COPY and active_engine().pack.key == COPY_KEY
    event = AuditEvent.objects.get(action="modelpack.activated")
    assert event.detail == {"pack": COPY, "pack_key": COPY_KEY, "before": pack_dir.name}
    assert event.actor_username == "ada"
    page = admin_client.get(reverse("search:manage-modelpacks")).content.decode()
    assert f"{COPY} <strong>(active)</strong>" in page and f"Model pack: <code>{COPY}</code>" in page

    admin_client.post(reverse("search:manage-modelpack-activate", args=[pack_dir.name]))
    assert active_pack_name() == pack_dir.name
    assert AuditEvent.objects.filter(action="modelpack.activated").count() == 2


def test_reembedding_gives_every_image_a_template_of_the_pack(
    admin_client: Client, faces_dir: Path, engine: Any
) -> None:
    gallery = gallery_create(name="Custody", kind=Gallery.Kind.CUSTODY, provenance="test")
    images_dir = faces_dir / "celeba" / "images"
    chosen = list(celeba_identities(faces_dir).items())[:3]
    enrolled = [
        gallery_image_enrol(gallery=gallery, data=(images_dir / files[0]).read_bytes(), subject_ref=ref, engine=engine)
        for ref, files in chosen
    ]
    assert all(image is not None for image in enrolled)
    lost = enrolled[2]
    assert lost is not None
    Path(lost.file.path).unlink()  # a file lost from storage is reported, not fatal

    response = admin_client.post(reverse("search:manage-modelpack-reembed", args=[COPY]))
    run = ReembedRun.objects.get()
    assert response["Location"] == reverse("search:manage-reembed-run", args=[run.pk])
    run.refresh_from_db()
    assert run.status == ReembedRun.Status.FINISHED
    assert (run.total, run.done, run.embedded, run.skipped, run.failed) == (3, 3, 2, 0, 1)
    assert run.errors == [
        {"image_id": lost.pk, "gallery_id": gallery.pk, "message": "the stored image file cannot be read"}
    ]
    copies = Template.objects.filter(pack_key=COPY_KEY)
    assert sorted(copies.values_list("image_id", flat=True)) == sorted(i.pk for i in enrolled[:2] if i is not None)
    assert Template.objects.filter(pack_key=engine.pack.key).count() == 3  # the old pack's templates are kept

    # The new pack's index finds the subject, as the old pack's did.
    template = Template.objects.get(image=enrolled[0], pack_key=COPY_KEY)
    hits = search_galleries(template=template.vector, pack_key=COPY_KEY, gallery_ids=[gallery.pk], top_k=2)
    assert hits[0].subject_ref == chosen[0][0]

    page = admin_client.get(response["Location"]).content.decode()
    assert "Finished: 2 embedded, 0 already had one, 1 failed." in page
    assert "the stored image file cannot be read" in page
    status = admin_client.get(reverse("search:manage-reembed-run-status", args=[run.pk])).json()
    assert status["status"] == "done" and status["progress"] == 100
    start = AuditEvent.objects.get(action="modelpack.reembed_start")
    assert start.detail["images"] == 3 and start.detail["pack_key"] == COPY_KEY and start.actor_username == "ada"
    finish = AuditEvent.objects.get(action="modelpack.reembed")
    assert (finish.detail["embedded"], finish.detail["failed"], finish.detail["status"]) == (2, 1, "finished")

    # Run again (as after a crash): nothing is embedded twice.
    admin_client.post(reverse("search:manage-modelpack-reembed", args=[COPY]))
    again = ReembedRun.objects.order_by("-pk").first()
    assert again is not None and (again.embedded, again.skipped, again.failed) == (0, 2, 1)
    assert Template.objects.filter(pack_key=COPY_KEY).count() == 2


def test_a_running_reembed_is_not_started_twice_and_its_page_polls(admin_client: Client) -> None:
    run = ReembedRun.objects.create(pack_name=COPY, pack_key=COPY_KEY, actor_name="ada", total=4, done=1)
    refused = admin_client.post(reverse("search:manage-modelpack-reembed", args=[COPY]))
    assert any("already running" in m for m in _messages(refused))
    assert ReembedRun.objects.count() == 1
    html = admin_client.get(reverse("search:manage-reembed-run", args=[run.pk])).content.decode()
    assert f'data-manage-poll="{reverse("search:manage-reembed-run-status", args=[run.pk])}"' in html
    status = admin_client.get(reverse("search:manage-reembed-run-status", args=[run.pk])).json()
    assert status["status"] == "processing" and status["progress"] == 25


def test_only_admins_may_use_the_model_pack_pages(packs: Path, eager_celery: None) -> None:
    run = ReembedRun.objects.create(pack_name=COPY, pack_key=COPY_KEY, actor_name="ada", status="finished")
    gets = [
        reverse("search:manage-modelpacks"),
        reverse("search:manage-reembed-run", args=[run.pk]),
        reverse("search:manage-reembed-run-status", args=[run.pk]),
    ]
    posts = [
        reverse("search:manage-modelpack-verify", args=[COPY]),
        reverse("search:manage-modelpack-activate", args=[COPY]),
        reverse("search:manage-modelpack-reembed", args=[COPY]),
    ]
    for role in (None, SUPERVISOR):
        client = Client()
        client.force_login(make_user(f"user-{role}", role=role))
        for url in gets:
            assert client.get(url).status_code == 403, (role, url)
        for url in posts:
            assert client.post(url).status_code == 403, (role, url)
    assert not ActivePack.objects.exists() and ReembedRun.objects.count() == 1
    assert not AuditEvent.objects.filter(action__startswith="modelpack.").exists()


def test_a_reembedding_whose_pack_is_gone_ends_failed_and_says_why(packs: Path) -> None:
    from search.packs import reembed_run_execute

    run = ReembedRun.objects.create(pack_name="removed-pack", pack_key="removed-pack@1", actor_name="ada")
    reembed_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == ReembedRun.Status.FAILED and "No model pack named 'removed-pack'" in run.message
    event = AuditEvent.objects.get(action="modelpack.reembed")
    assert event.detail["status"] == "failed" and event.detail["run_id"] == run.pk
    # A redelivered message for a run that has ended changes nothing.
    reembed_run_execute(run_id=run.pk)
    assert AuditEvent.objects.filter(action="modelpack.reembed").count() == 1
