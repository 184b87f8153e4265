"""Video evidence in headless Chromium, as a new user would meet it, against a real server, a real Celery worker,
PostgreSQL and Redis (the stack of tests/e2e/test_workbench_browser.py).

Sign in, open a case, add the real Hamilton clip, watch the progress move without reloading, open the longest
track, step through the frames from the keyboard, take a frame as a still probe, search the track, review the
candidate with a supervisor's second review, download the report; every page is checked with axe-core and
each step's screenshot is saved under test-artifacts/screenshots/ (named video-*). Then `audit verify`, and
every step is on the case's audit trail.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from tests.e2e.test_workbench_browser import (  # noqa: F401  (stack is the module-scoped fixture)
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    Browser,
    _run,
    _unavailable,
    stack,
)

ROOT = Path(__file__).resolve().parents[2]
VIDEO_DIR = Path(os.environ.get("RFR_FACES_DATA") or ROOT.parent / "shared" / "data" / "faces").parent / "video"
CLIP = VIDEO_DIR / "real" / "short_hamilton_clip.mp4"
REFERENCE = VIDEO_DIR / "real" / "reference" / "lin-manuel-miranda.png"


def _enrol_reference(stack: dict[str, Any]) -> None:  # noqa: F811  (the fixture above)
    """The reference photo named in the clip's README, enrolled into the seeded gallery as a subject."""
    code = (
        "from pathlib import Path; from rfr.engine import active_engine; "
        "from search.enrolment import gallery_image_enrol; from search.models import Gallery; "
        f"g = Gallery.objects.get(name={stack['seed']['gallery']!r}); "
        f"gallery_image_enrol(gallery=g, data=Path({str(REFERENCE)!r}).read_bytes(), subject_ref='REF-MIRANDA', "
        "original_filename='lin-manuel-miranda.png', engine=active_engine())"
    )
    _run([stack["python"], "manage.py", "shell", "-c", code], stack["env"])


def _images_loaded(browser: Browser) -> None:
    browser.page.wait_for_function("() => Array.from(document.images).every(image => image.complete)")


def test_video_flow_in_a_real_browser(stack: dict[str, Any]) -> None:  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    if not CLIP.is_file():
        _unavailable(f"shared video data not found at {VIDEO_DIR}")
    _enrol_reference(stack)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
        ivy = Browser(context.new_page(), stack["base"])
        ivy.step = 70
        ivy.page.set_default_timeout(30_000)
        ivy.login("ivy")
        ivy.go("/cases/new/")
        ivy.page.fill("input[name=reference]", "OP-E2E-VIDEO")
        ivy.page.fill("input[name=title]", "Footage from the event")
        ivy.page.select_option("select[name=purpose]", "suspect")
        ivy.page.fill("textarea[name=legal_basis]", "Prevention and detection of crime (DPA 2018 s.35)")
        ivy.page.click("form button[type=submit]")
        ivy.page.wait_for_url(re.compile(r"/cases/\d+/$"))
        case_id = int(re.search(r"/cases/(\d+)/$", ivy.page.url).group(1))  # type: ignore[union-attr]

        # Footage: from the workbench, through the upload form.
        ivy.go(f"/cases/{case_id}/workbench/")
        ivy.page.click("text=Add footage")
        ivy.page.wait_for_url(re.compile(rf"/cases/{case_id}/videos/upload/$"))
        ivy.axe()
        ivy.page.set_input_files("#id_video", str(CLIP))
        ivy.page.select_option("#id_source", "cctv")
        ivy.page.fill("#id_description", "Event footage, camera 1")
        ivy.page.check("#id_lawfully_held")
        ivy.shot("video-upload")
        ivy.page.click("form button[type=submit]")
        ivy.page.wait_for_url(re.compile(r"/videos/\d+/$"))
        video_id = int(re.search(r"/videos/(\d+)/$", ivy.page.url).group(1))  # type: ignore[union-attr]

        # The progress moves without a reload (static/js/progress.js), then the page shows the tracks.
        progress = ivy.page.locator(".wb-progress progress")
        if progress.count():
            ivy.page.wait_for_function(
                "() => { const p = document.querySelector('.wb-progress progress');"
                " return !p || Number(p.value) > 0; }",
                timeout=60_000,
            )
            ivy.shot("video-progress")
        expect(ivy.page.locator("#tracks-heading")).to_contain_text("Tracks (", timeout=180_000)
        _images_loaded(ivy)
        ivy.shot("video-tracks")
        ivy.axe()

        # The longest track: most faces.
        counts = ivy.page.eval_on_selector_all(
            ".wb-track",
            "items => items.map(li => [li.querySelector('h3 a').getAttribute('href'),"
            " parseInt((li.querySelector('p').textContent.match(/(\\d+) faces?/) || [0, 0])[1])])",
        )
        track_path = max(counts, key=lambda item: item[1])[0]
        ivy.go(track_path)
        expect(ivy.page.locator("#shots-heading")).to_be_visible()
        _images_loaded(ivy)
        ivy.shot("video-track")
        ivy.axe()

        # Step through the frames around the first best shot, from the keyboard.
        ivy.page.locator("text=View the frame").first.click()
        ivy.page.wait_for_url(re.compile(r"/videos/\d+/frame/\?t="))
        before = ivy.page.url
        ivy.page.keyboard.press("ArrowRight")
        ivy.page.wait_for_url(lambda url: url != before)
        expect(ivy.page.locator("h1")).to_contain_text(f"Video #{video_id} at")
        ivy.page.locator("a", has_text="Previous frame").focus()
        ivy.page.keyboard.press("Enter")
        ivy.page.wait_for_load_state()
        _images_loaded(ivy)
        ivy.shot("video-frame")
        ivy.axe()
        # This frame as a still probe: processed like an upload, its provenance naming the video and time.
        ivy.page.click("text=Take this frame as a still probe")
        ivy.page.wait_for_url(re.compile(r"/probes/\d+/$"))
        expect(ivy.page.locator("#faces-heading")).to_contain_text("Faces found", timeout=90_000)
        ivy.shot("video-still-probe")

        # Search the track: its fused template, through the ordinary search form.
        ivy.go(track_path)
        ivy.page.click("text=Search this track")
        ivy.page.wait_for_url(re.compile(r"/faces/\d+/search/$"))
        ivy.axe()
        ivy.page.check(f"text={stack['seed']['gallery']}")
        ivy.page.fill("#id_justification", "Person on the footage at the event; lead for enquiries")
        ivy.shot("video-search-form")
        ivy.page.click("text=Run search")
        ivy.page.wait_for_url(re.compile(r"/searches/\d+/$"))
        search_id = int(re.search(r"/searches/(\d+)/$", ivy.page.url).group(1))  # type: ignore[union-attr]
        expect(ivy.page.locator("#candidates-heading")).to_be_visible(timeout=90_000)
        first_row = ivy.page.locator("table tbody tr").first
        expect(first_row).to_contain_text("REF-MIRANDA")
        expect(ivy.page.locator("#video-source-heading")).to_have_text("Taken from footage")
        ivy.shot("video-candidates")
        ivy.axe()

        # Review as for any still: a first assessment, then a supervisor's independent second review.
        first_row.locator("a").first.click()
        ivy.page.wait_for_url(re.compile(r"/candidates/\d+/$"))
        candidate_path = ivy.page.url.replace(stack["base"], "")
        ivy.page.check("#decision-possible_match")
        ivy.page.fill("#id_rationale", "Same hairline, brows and beard")
        ivy.page.click("text=Record decision")
        expect(ivy.page.locator(".wb-wording")).to_contain_text("awaiting an independent second review")
        ivy.shot("video-first-review")
        sam = Browser(browser.new_context(viewport={"width": 1280, "height": 800}).new_page(), stack["base"])
        sam.step = ivy.step
        sam.login("sam")
        sam.go(candidate_path)
        sam.page.check("#decision-possible_match")
        sam.page.fill("#id_rationale", "Agree: brows and beard match")
        sam.page.click("text=Record decision")
        expect(sam.page.locator(".wb-wording")).to_contain_text("agreed by a second reviewer; released")
        sam.shot("video-second-review")
        ivy.step = sam.step

        ivy.go(f"/searches/{search_id}/")
        with ivy.page.expect_download() as download_info:
            ivy.page.click("text=Download the search report (PDF)")
        report = ARTIFACTS / f"video-search-{search_id}-report.pdf"
        download_info.value.save_as(str(report))
        assert report.read_bytes().startswith(b"%PDF")
        ivy.go(f"/cases/{case_id}/workbench/")
        ivy.shot("video-workbench")
        ivy.axe()
        browser.close()

    env, python = stack["env"], stack["python"]
    assert "OK" in _run([python, "manage.py", "audit", "verify"], env)
    actions = _run(
        [
            python,
            "manage.py",
            "shell",
            "-c",
            "from audit.models import AuditEvent; "
            f"events = AuditEvent.objects.filter(case_id={case_id}); "
            "print(' '.join(sorted(set(events.values_list('action', flat=True)))))",
        ],
        env,
    ).split()
    for expected in [
        "video.uploaded",
        "video.processed",
        "video.viewed",
        "video.frame_grabbed",
        "video.track_prepared",
        "probe.processed",
        "search.requested",
        "search.completed",
        "search.candidates_viewed",
        "candidate.decided",
        "search.report_downloaded",
    ]:
        assert expected in actions, f"{expected} missing from the audit trail: {actions}"
