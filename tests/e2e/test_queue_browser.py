"""The review queue in headless Chromium at 1366×768: a supervisor finds a waiting second review from the home
page in one click; the queue, notifications, case notes, closing and reopening pages and the search history
pass axe-core (WCAG 2.1 A/AA). Same stack as tests/e2e/test_workbench_browser.py (real server, Celery worker,
PostgreSQL, Redis); screenshots under test-artifacts/screenshots/ (numbered from 70).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.e2e.test_workbench_browser import CHROMIUM, CHROMIUM_ARGS, Browser, _run, stack  # noqa: F401

VIEWPORT: Any = {"width": 1366, "height": 768}


def test_a_supervisor_reaches_a_waiting_review_from_home_in_one_click(stack: dict[str, Any]) -> None:  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    seed = stack["seed"]
    assert seed.get("probe"), f"seeding found no probe photo: {seed}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        ivy = Browser(browser.new_context(viewport=VIEWPORT).new_page(), stack["base"])
        ivy.step = 70
        ivy.page.set_default_timeout(30_000)
        ivy.login("ivy")
        ivy.go("/cases/new/")
        ivy.page.fill("input[name=reference]", "OP-E2E-QUEUE")
        ivy.page.fill("input[name=title]", "Queue and notifications")
        ivy.page.select_option("select[name=purpose]", "suspect")
        ivy.page.fill("textarea[name=legal_basis]", "Prevention and detection of crime (DPA 2018 s.35)")
        ivy.page.click("form button[type=submit]")
        ivy.page.wait_for_url(re.compile(r"/cases/\d+/$"))
        case_id = int(re.search(r"/cases/(\d+)/$", ivy.page.url).group(1))  # type: ignore[union-attr]

        # A note on the case page (append-only, with history).
        ivy.page.fill("#note-text", "Witness W1 saw the suspect leave by the north exit.")
        ivy.page.click("text=Add note")
        expect(ivy.page.locator("#notes")).to_contain_text("north exit")
        ivy.axe()
        ivy.shot("case-notes")
        ivy.page.locator("#notes a", has_text="history and edit").first.click()
        ivy.page.wait_for_url(re.compile(rf"/cases/{case_id}/notes/\d+/$"))
        ivy.page.fill("#note-edit-text", "Witness W1 saw the suspect leave by the north exit at 21:20.")
        ivy.page.click("text=Save as a new version")
        expect(ivy.page.locator("#notes")).to_contain_text("version 2")
        ivy.page.locator("#notes a", has_text="history and edit").first.click()
        expect(ivy.page.locator("main ol li")).to_have_count(2)
        ivy.axe()
        ivy.shot("note-history")

        # Upload, search and a first assessment: a possible match, now waiting for a second reviewer.
        ivy.go(f"/cases/{case_id}/workbench/")
        ivy.page.set_input_files("#id_images", [seed["probe"]])
        ivy.page.select_option("#id_source", "cctv")
        ivy.page.check("#id_lawfully_held")
        ivy.page.click("text=Upload")
        ivy.page.wait_for_url(re.compile(r"/probes/\d+/$"))
        expect(ivy.page.locator("#faces-heading")).to_contain_text("Faces found", timeout=90_000)
        ivy.page.locator("a.wb-button", has_text="Search with face").first.click()
        ivy.page.wait_for_url(re.compile(r"/faces/\d+/search/$"))
        ivy.page.check(f"text={seed['gallery']}")
        ivy.page.fill("#id_justification", "Suspect caught on camera 3 at 21:14")
        ivy.page.click("text=Run search")
        ivy.page.wait_for_url(re.compile(r"/searches/\d+/$"))
        expect(ivy.page.locator("#candidates-heading")).to_be_visible(timeout=90_000)
        # The search history, and keep searching.
        expect(ivy.page.locator("#history-heading")).to_be_visible()
        ivy.page.click("text=Keep searching: re-run on new enrolments")
        expect(ivy.page.locator("#keep-searching")).to_contain_text("Keep searching is on")
        ivy.axe()
        ivy.shot("search-history")
        row = ivy.page.locator("tr", has_text=seed["subject_ref"])
        row.locator("a").click()
        ivy.page.wait_for_url(re.compile(r"/candidates/\d+/$"))
        candidate_path = ivy.page.url.replace(stack["base"], "")
        ivy.page.check("#decision-possible_match")
        ivy.page.fill("#id_rationale", "Same eyebrow shape and ear; hairline consistent")
        ivy.page.click("text=Record decision")
        expect(ivy.page.locator(".wb-wording")).to_contain_text("awaiting an independent second review")

        # The supervisor: home shows the waiting review; one click opens it, ready for the second review.
        sam = Browser(browser.new_context(viewport=VIEWPORT).new_page(), stack["base"])
        sam.step = ivy.step
        sam.page.set_default_timeout(30_000)
        sam.login("sam")
        sam.go("/")
        expect(sam.page.locator("nav[aria-label=Main] .nav-count").first).to_be_visible()
        sam.axe()
        sam.shot("supervisor-home")
        link = sam.page.locator("#waiting-heading + ul a").first
        expect(link).to_be_visible()
        box = link.bounding_box()
        assert box is not None and box["y"] < VIEWPORT["height"], "the waiting review is below the fold"
        link.click()  # the one click
        sam.page.wait_for_url(re.compile(re.escape(candidate_path) + "$"))
        expect(sam.page.locator("legend").first).to_have_text("Your independent second review")
        sam.shot("supervisor-one-click")

        # The queue and the notifications pages.
        sam.go("/queue/")
        expect(sam.page.locator("#waiting-heading")).to_have_text("Second reviews waiting for you (1)")
        sam.axe()
        sam.shot("queue")
        sam.go("/notifications/")
        expect(sam.page.locator("main")).to_contain_text("A second review is waiting for you")
        sam.axe()
        sam.shot("notifications")

        # Second review, then the owner is notified of the release.
        sam.go(candidate_path)
        sam.page.check("#decision-possible_match")
        sam.page.fill("#id_rationale", "Agree: ear and jawline match")
        sam.page.click("text=Record decision")
        expect(sam.page.locator(".wb-wording")).to_contain_text("released")
        ivy.go("/notifications/")
        expect(ivy.page.locator("main")).to_contain_text("Released as a possible match")
        ivy.page.locator("button", has_text="Open").first.click()
        ivy.page.wait_for_url(re.compile(re.escape(candidate_path) + "$"))

        # Closing: a confirmation step with a reason; reopening by the supervisor, with a reason.
        ivy.go(f"/cases/{case_id}/")
        ivy.page.click("text=Close case…")
        ivy.page.wait_for_url(re.compile(rf"/cases/{case_id}/close/$"))
        ivy.axe()
        ivy.shot("close-confirm")
        ivy.page.fill("#id_reason", "Suspect charged")
        ivy.page.click("text=Close the case")
        ivy.page.wait_for_url(re.compile(rf"/cases/{case_id}/$"))
        expect(ivy.page.locator("main")).to_contain_text("Closed")
        assert ivy.page.locator("text=Reopen case…").count() == 0
        sam.go(f"/cases/{case_id}/")
        sam.page.click("text=Reopen case…")
        sam.page.wait_for_url(re.compile(rf"/cases/{case_id}/reopen/$"))
        sam.axe()
        sam.shot("reopen-confirm")
        sam.page.fill("#id_reason", "New witness statement")
        sam.page.click("text=Reopen the case")
        sam.page.wait_for_url(re.compile(rf"/cases/{case_id}/$"))
        expect(sam.page.locator("main")).to_contain_text("Open")
        browser.close()

    env, python = stack["env"], stack["python"]
    assert "OK" in _run([python, "manage.py", "audit", "verify"], env)
    shots = sorted(Path("test-artifacts/screenshots").glob("7*-*.png"))
    assert shots, "no screenshots were saved"
