"""The gallery and model-pack admin pages in headless Chromium, by keyboard, against a real server, a real
Celery worker, PostgreSQL and Redis (the stack of test_workbench_browser.py).

An admin reaches each control with Tab and uses it with Enter: creates a gallery, uploads a zip for bulk
enrolment and watches the run finish (static/js/manage.js polling), removes a subject with a reason and
verifies a model pack; every page is checked with axe-core (WCAG 2.1 A/AA). Skips, saying why, where
Chromium, Playwright, axe-core, PostgreSQL or Redis is missing (fails in CI).
"""

from __future__ import annotations

import csv
import re
import zipfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from tests.e2e.test_workbench_browser import CHROMIUM, CHROMIUM_ARGS, Browser, _run, stack

__all__ = ["stack"]  # the module-scoped server, worker and database, shared with the workbench test


def _tab_to(browser: Browser, selector: str, limit: int = 80) -> None:
    """Press Tab until the element is focused: it is in the tab order, reachable without a mouse."""
    target = browser.page.locator(selector).first
    target.wait_for()
    for _ in range(limit):
        browser.page.keyboard.press("Tab")
        if target.evaluate("el => el === document.activeElement"):
            return
    raise AssertionError(f"{selector} was not reached with Tab on {browser.page.url}")


def _zip(faces_dir: Path, dest: Path) -> tuple[Path, list[str]]:
    by_identity: dict[str, list[str]] = {}
    with (faces_dir / "celeba" / "identities.csv").open() as handle:
        for row in csv.DictReader(handle):
            by_identity.setdefault(row["identity"], []).append(row["file"])
    # Identities the workbench seed does not use (it takes the first twenty with four photos or more).
    chosen = sorted(by_identity.items(), key=lambda kv: -int(kv[0]))[:2]
    refs = []
    with zipfile.ZipFile(dest, "w") as archive:
        rows = ["file,subject_ref"]
        for identity, files in chosen:
            archive.write(faces_dir / "celeba" / "images" / sorted(files)[0], f"batch/{identity}.jpg")
            rows.append(f"{identity}.jpg,E2E-{identity}")
            refs.append(f"E2E-{identity}")
        noise = np.random.default_rng(1).integers(0, 255, (80, 80, 3), dtype=np.uint8)
        archive.writestr("batch/noface.png", cv2.imencode(".png", noise)[1].tobytes())
        rows.append("noface.png,E2E-NOFACE")
        archive.writestr("batch/subjects.csv", "\n".join(rows) + "\n")
    return dest, refs


def test_gallery_admin_by_keyboard(stack: dict[str, Any], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    env, python = stack["env"], stack["python"]
    _run(
        [
            python,
            "manage.py",
            "shell",
            "-c",
            "import os; from django.contrib.auth import get_user_model; from django.contrib.auth.models import Group;"
            " u = get_user_model().objects.create_user(username='ada', password=os.environ['E2E_PASSWORD'],"
            " is_staff=True); u.groups.add(Group.objects.get(name='admin'))",
        ],
        env,
    )
    archive, refs = _zip(Path(env["RFR_FACES_DATA"]), tmp_path / "batch.zip")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        ada = Browser(chromium.new_context(viewport={"width": 1280, "height": 900}).new_page(), stack["base"])
        ada.page.set_default_timeout(30_000)
        ada.step = 50
        ada.login("ada")

        ada.go("/")
        _tab_to(ada, "nav a:has-text('Galleries')")
        ada.page.keyboard.press("Enter")
        ada.page.wait_for_url(re.compile(r"/manage/galleries/$"))
        ada.axe()
        _tab_to(ada, "a:has-text('Create a gallery')")
        ada.page.keyboard.press("Enter")
        ada.page.wait_for_url(re.compile(r"/manage/galleries/new/$"))
        ada.axe()
        _tab_to(ada, "#id_name")
        ada.page.keyboard.type("Custody keyboard")
        ada.page.keyboard.press("Tab")  # kind: the first choice, custody
        ada.page.keyboard.press("Tab")
        ada.page.keyboard.type("PACE s.64A custody images, force policy CI-1")
        _tab_to(ada, "button:has-text('Create gallery')")
        ada.shot("galadmin-new-gallery")
        ada.page.keyboard.press("Enter")
        ada.page.wait_for_url(re.compile(r"/manage/galleries/\d+/$"))
        gallery_path = ada.page.url.replace(stack["base"], "")
        expect(ada.page.locator(".messages")).to_contain_text("Gallery Custody keyboard created")
        ada.axe()

        # Bulk enrolment from a zip: the file is chosen by the test, the form sent from the keyboard.
        ada.page.set_input_files("#id_archive", str(archive))
        _tab_to(ada, "button:has-text('Upload and enrol')")
        ada.page.keyboard.press("Enter")
        ada.page.wait_for_url(re.compile(r"/manage/galleries/runs/\d+/$"))
        expect(ada.page.locator(".manage-status-text")).to_contain_text("Finished: 2 enrolled", timeout=120_000)
        expect(ada.page.locator("table", has_text="noface.png")).to_contain_text("no face found")
        ada.shot("galadmin-run-finished")
        ada.axe()

        # Remove one subject, with a reason.
        ada.go(gallery_path)
        _tab_to(ada, f"a:has-text('{refs[0]}')")
        ada.page.keyboard.press("Enter")
        ada.page.wait_for_url(re.compile(r"/manage/galleries/subjects/\d+/$"))
        ada.axe()
        _tab_to(ada, "#id_reason")
        ada.page.keyboard.type("Deletion request DR-E2E-1")
        _tab_to(ada, f"button:has-text('Remove subject {refs[0]}')")
        ada.page.keyboard.press("Enter")
        ada.page.wait_for_url(re.compile(r"/manage/galleries/\d+/$"))
        expect(ada.page.locator(".messages")).to_contain_text(f"Subject {refs[0]} removed")
        ada.shot("galadmin-subject-removed")

        # Model packs: verify the active pack from the keyboard.
        ada.go("/manage/modelpacks/")
        ada.axe()
        _tab_to(ada, "button:has-text('Verify')")
        ada.page.keyboard.press("Enter")
        ada.page.wait_for_url(re.compile(r"/manage/modelpacks/$"))
        expect(ada.page.locator(".messages")).to_contain_text("OK")
        ada.shot("galadmin-modelpacks")
        ada.go("/manage/thresholds/")
        ada.axe()
        chromium.close()

    events = _run(
        [
            python,
            "manage.py",
            "shell",
            "-c",
            "from audit.models import AuditEvent; print(sorted(set(AuditEvent.objects.filter("
            "actor_username='ada').values_list('action', flat=True))))",
        ],
        env,
    )
    for action in ("gallery.create", "gallery.enrol_start", "gallery.subject_delete", "modelpack.verified"):
        assert action in events, events
    assert "Deletion request DR-E2E-1" in _run(
        [
            python,
            "manage.py",
            "shell",
            "-c",
            "from audit.models import AuditEvent;"
            " print(AuditEvent.objects.get(action='gallery.subject_delete').detail)",
        ],
        env,
    )
