"""/audit/ in headless Chromium at a laptop's 1366x768: no horizontal scroll with long details (hashes, file
names, lists), axe-core clean (WCAG 2.1 A/AA), and the filter used by keyboard: a case reference and an action
from the list narrow the events. Runs against the real server of test_workbench_browser.py (its `stack`);
skips, saying why, where Chromium, Playwright, axe-core, PostgreSQL or Redis is missing (fails in CI).
"""

from __future__ import annotations

from typing import Any

from tests.e2e.test_workbench_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, Browser, _run, stack

__all__ = ["stack"]  # the module-scoped server, worker and database, shared with the workbench test

# Events with long details, written through the audit service on a case of ivy's team (sam supervises it).
EVENTS = """
import django, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rfr.settings")
django.setup()
from django.contrib.auth import get_user_model
from audit.actions import AuditAction
from audit.services import audit_event_record
from cases.lifecycle import case_create
ivy = get_user_model().objects.get(username="ivy")
case = case_create(owner=ivy, reference="OP-AUDIT-WIDTH/2026-000123", title="Width", purpose="suspect",
                   offence_category="", legal_basis="Prevention and detection of crime.")
long_name = "camera-3-north-entrance-" + "x" * 120 + ".jpg"
for n in range(30):
    audit_event_record(action=AuditAction.PROBE_UPLOADED, actor=ivy, target_type="probe", target_id=n,
                       case_id=case.pk, detail={"sha256": "f" * 64, "filename": long_name, "size_bytes": 123456,
                       "source": "cctv", "lawfully_held": True, "captured_at": "2026-11-30T10:00:00+00:00"})
audit_event_record(action=AuditAction.SEARCH_REQUESTED, actor=ivy, target_type="search", target_id=1,
                   case_id=case.pk, detail={"galleries": [{"id": 1, "name": "Custody e2e"}], "top_k": 50,
                   "threshold": 0.363, "threshold_source": "system", "pack_key": "opencv-yunet@1",
                   "justification": "Robbery at the north entrance; " * 12})
print(case.pk)
"""


def test_audit_page_fits_1366_and_filters_by_keyboard(stack: dict[str, Any]) -> None:
    from playwright.sync_api import sync_playwright

    _run([stack["python"], "-c", EVENTS], stack["env"])
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            sam = Browser(browser.new_context(viewport={"width": 1366, "height": 768}).new_page(), stack["base"])
            sam.login("sam")
            sam.go("/audit/")
            widths = sam.page.evaluate(
                "() => ({scroll: document.documentElement.scrollWidth, inner: window.innerWidth})"
            )
            assert widths["scroll"] <= widths["inner"], f"horizontal scroll at 1366 px: {widths}"
            assert sam.page.locator(".audit-detail dt", has_text="SHA-256").count() >= 1
            assert "OP-AUDIT-WIDTH/2026-000123" in sam.page.inner_text("table.audit-events")
            (ARTIFACTS / "screenshots").mkdir(parents=True, exist_ok=True)
            sam.page.screenshot(path=str(ARTIFACTS / "screenshots" / "audit-1366.png"), full_page=False)
            sam.axe()

            # The filter: an action from the closed list, then the reference typed and Enter (the form's
            # implicit submission, as a keyboard user sends it).
            sam.page.select_option("#id_action", "search.requested")
            sam.page.focus("#id_case")
            sam.page.keyboard.type("OP-AUDIT-WIDTH/2026-000123")
            with sam.page.expect_navigation():  # wait for the filtered page itself, not the one already shown
                sam.page.keyboard.press("Enter")
            sam.page.wait_for_load_state()
            table = sam.page.inner_text("table.audit-events")
            assert "search.requested" in table and "probe.uploaded" not in table
            assert sam.page.locator(".audit-detail dt", has_text="Galleries").count() == 1
            widths = sam.page.evaluate(
                "() => ({scroll: document.documentElement.scrollWidth, inner: window.innerWidth})"
            )
            assert widths["scroll"] <= widths["inner"], f"horizontal scroll at 1366 px: {widths}"
            sam.page.screenshot(path=str(ARTIFACTS / "screenshots" / "audit-1366-filtered.png"), full_page=True)
            sam.axe()
        finally:
            browser.close()
