"""The candidate list with faces and the comparison view, in headless Chromium at 1366x768 (issue 13, items 2-3).

An investigator searches a photo of an enrolled person, filters the candidate list, opens the candidate and
works in the comparison view: it opens centred on both faces at the same size; zooming and panning move both
sides together; unlinked, only the side in use moves; landmarks, aligned crops, overlay and rotation respond;
the decision is recorded with its feature checklist. axe-core (WCAG 2.1 AA) runs on the list and the candidate
page; screenshots go to test-artifacts/screenshots/ (numbered from 70).

Uses the stack of tests/e2e/test_workbench_browser.py (same requirements; skips, saying why, without them).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.e2e.test_workbench_browser import CHROMIUM, CHROMIUM_ARGS, Browser, _run, stack  # noqa: F401
from tests.test_evaluations import _utk_subset

# Where each side's face box sits on screen, and its viewport.
GEOMETRY_JS = """() => [...document.querySelectorAll('.cmp-side')].map(side => {
  const viewport = side.querySelector('.cmp-viewport').getBoundingClientRect();
  const stage = side.querySelector('.cmp-stage:not([hidden])');
  const face = stage.querySelector('.cmp-facebox').getBoundingClientRect();
  return {
    name: side.dataset.side, transform: stage.style.transform,
    vx: viewport.x + viewport.width / 2, vy: viewport.y + viewport.height / 2, vw: viewport.width, vh: viewport.height,
    fx: face.x + face.width / 2, fy: face.y + face.height / 2, fw: face.width, fh: face.height,
  };
})"""


def _sides(page: Any) -> dict[str, dict[str, Any]]:
    return {side["name"]: side for side in page.evaluate(GEOMETRY_JS)}


def _centred(side: dict[str, Any], tolerance: float = 3.0) -> bool:
    return abs(side["fx"] - side["vx"]) <= tolerance and abs(side["fy"] - side["vy"]) <= tolerance


def test_comparison_view_in_a_real_browser(stack: dict[str, Any], tmp_path: Path) -> None:  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    seed = stack["seed"]
    assert seed.get("probe"), f"seeding found no probe photo: {seed}"
    # A stored evaluation of the active pack (40 UTKFace images), which gives the scores their meaning.
    subset = _utk_subset(Path(stack["env"]["RFR_FACES_DATA"]), tmp_path / "utk")
    evaluate = ["evaluate", "demographics", "--labels", str(subset / "labels.csv"), "--images", str(subset / "images")]
    _run([stack["python"], "manage.py", *evaluate, "--store", "--dataset-name", "UTKFace subset"], stack["env"])
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        ivy = Browser(browser.new_context(viewport={"width": 1366, "height": 768}).new_page(), stack["base"])
        ivy.step = 70
        ivy.page.set_default_timeout(30_000)
        ivy.login("ivy")

        ivy.go("/cases/new/")
        ivy.page.fill("input[name=reference]", "OP-E2E-COMPARE")
        ivy.page.fill("input[name=title]", "Comparison view")
        ivy.page.select_option("select[name=purpose]", "suspect")
        ivy.page.fill("textarea[name=legal_basis]", "Prevention and detection of crime (DPA 2018 s.35)")
        ivy.page.click("form button[type=submit]")
        ivy.page.wait_for_url(re.compile(r"/cases/\d+/$"))
        case_id = int(re.search(r"/cases/(\d+)/$", ivy.page.url).group(1))  # type: ignore[union-attr]
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
        search_path = ivy.page.url.replace(stack["base"], "")
        expect(ivy.page.locator("#candidates-heading")).to_be_visible(timeout=90_000)

        # The list: the searched face and every candidate's face, the score's meaning, filters by state.
        ivy.page.wait_for_load_state("networkidle")
        thumbs = ivy.page.locator("img.wb-thumb")
        assert thumbs.count() >= 2
        assert all(
            ivy.page.evaluate("img => img.complete && img.naturalWidth === 112", thumbs.nth(i).element_handle())
            for i in range(thumbs.count())
        ), "a thumbnail did not load"
        row = ivy.page.locator("tr", has_text=seed["subject_ref"])
        expect(row).to_have_count(1)
        expect(row.locator(".wb-meaning")).to_contain_text("different-person pairs")
        expect(row.locator(".wb-meaning")).to_contain_text("on UTKFace subset (research data set)")
        ivy.shot("candidate-list-with-faces")
        ivy.axe()
        ivy.page.locator(".wb-filter a", has_text="Not yet reviewed").press("Enter")
        ivy.page.wait_for_url(re.compile(r"state=unreviewed"))
        expect(ivy.page.locator(".wb-filter a[aria-current]")).to_contain_text("Not yet reviewed")

        # The comparison: opens centred on both faces, at the same size on screen.
        ivy.go(search_path)
        ivy.page.locator("tr", has_text=seed["subject_ref"]).locator("a").click()
        ivy.page.wait_for_url(re.compile(r"/candidates/\d+/$"))
        ivy.page.wait_for_function(
            "() => document.querySelector('.cmp-js') &&"
            " [...document.querySelectorAll('.cmp-stage[data-view=image]')].every(s => s.style.transform)"
        )
        start = _sides(ivy.page)
        assert set(start) == {"probe", "candidate"}
        for side in start.values():
            assert _centred(side), f"the {side['name']} view does not open centred on its face: {side}"
        assert abs(start["probe"]["fh"] - start["candidate"]["fh"]) / start["probe"]["fh"] < 0.35
        expect(ivy.page.locator(".cmp-level")).to_have_text("100%")
        ivy.page.wait_for_load_state("networkidle")
        ivy.shot("comparison-opens-on-the-faces")
        ivy.axe()

        # Zoom in: both sides change together and stay centred on the faces.
        ivy.page.click("[data-cmp=in]")
        expect(ivy.page.locator(".cmp-level")).to_have_text("150%")
        zoomed = _sides(ivy.page)
        for name in ("probe", "candidate"):
            assert zoomed[name]["transform"] != start[name]["transform"], f"{name} did not zoom"
            assert _centred(zoomed[name])
            assert abs(zoomed[name]["fh"] / start[name]["fh"] - 1.5) < 0.05
        # Pan by dragging the probe: both faces move by the same screen distance.
        box = ivy.page.locator('.cmp-side[data-side="probe"] .cmp-viewport').bounding_box()
        assert box is not None
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        ivy.page.mouse.move(cx, cy)
        ivy.page.mouse.down()
        ivy.page.mouse.move(cx + 60, cy + 40, steps=4)
        ivy.page.mouse.up()
        panned = _sides(ivy.page)
        for name in ("probe", "candidate"):
            assert (
                abs(panned[name]["fx"] - zoomed[name]["fx"] - 60) < 2
                and abs(panned[name]["fy"] - zoomed[name]["fy"] - 40) < 2
            )
        ivy.shot("comparison-zoomed-and-panned-together")

        # Unlinked: only the side in use moves (the candidate, with the keyboard).
        ivy.page.uncheck("[data-cmp-toggle=link]")
        candidate_viewport = ivy.page.locator('.cmp-side[data-side="candidate"] .cmp-viewport')
        candidate_viewport.focus()
        ivy.page.keyboard.press("+")
        ivy.page.keyboard.press("ArrowLeft")
        unlinked = _sides(ivy.page)
        assert unlinked["probe"]["transform"] == panned["probe"]["transform"]
        assert unlinked["candidate"]["transform"] != panned["candidate"]["transform"]
        ivy.page.keyboard.press("l")  # linked again
        expect(ivy.page.locator('[data-cmp-toggle="link"]')).to_be_checked()
        ivy.page.keyboard.press("0")  # both back on the faces
        for side in _sides(ivy.page).values():
            assert _centred(side)

        # Rotate one side, landmarks on request, aligned crops at high zoom, overlay.
        ivy.page.locator('.cmp-side[data-side="probe"] [data-cmp-rotate="5"]').click()
        assert "rotate(5deg)" in _sides(ivy.page)["probe"]["transform"]
        ivy.page.check("[data-cmp-toggle=landmarks]")
        expect(ivy.page.locator(".cmp-landmarks circle").first).to_be_visible()
        assert ivy.page.locator(".cmp-stage[data-view=image] .cmp-landmarks circle").count() == 10
        ivy.page.check("[data-cmp-toggle=crops]")
        for _ in range(3):
            ivy.page.click("[data-cmp=in]")
        ivy.page.wait_for_function(
            "() => [...document.querySelectorAll('.cmp-stage[data-view=crop] img')]"
            ".every(i => i.complete && i.naturalWidth)"
        )
        crops = _sides(ivy.page)
        assert all(_centred(side) for side in crops.values())
        assert crops["probe"]["fh"] > 0.55 * min(crops["probe"]["vw"], crops["probe"]["vh"]) * 3
        ivy.shot("aligned-crops-zoomed-with-landmarks")
        ivy.page.click("[data-cmp-mode=overlay]")
        expect(ivy.page.locator('[data-cmp-mode="overlay"]')).to_have_attribute("aria-pressed", "true")
        stacked = _sides(ivy.page)
        assert abs(stacked["probe"]["vx"] - stacked["candidate"]["vx"]) < 1
        assert abs(stacked["probe"]["vy"] - stacked["candidate"]["vy"]) < 1
        ivy.shot("overlay")
        ivy.axe()
        # Flicker (M from overlay): the candidate alternates with the probe, under two changes a second.
        ivy.page.locator('.cmp-side[data-side="candidate"] .cmp-viewport').focus()
        ivy.page.keyboard.press("m")
        expect(ivy.page.locator('[data-cmp-mode="flicker"]')).to_have_attribute("aria-pressed", "true")
        candidate_figure = ivy.page.locator('.cmp-side[data-side="candidate"]')
        expect(candidate_figure).to_have_class(re.compile("cmp-flicker-off"), timeout=2000)
        expect(candidate_figure).not_to_have_class(re.compile("cmp-flicker-off"), timeout=2000)
        ivy.page.click("[data-cmp-mode=side]")
        # Whole images: each image fits its viewport.
        ivy.page.uncheck("[data-cmp-toggle=crops]")
        ivy.page.click("[data-cmp=whole]")
        for name in ("probe", "candidate"):
            image = ivy.page.locator(f'.cmp-side[data-side="{name}"] .cmp-stage[data-view=image]').bounding_box()
            frame = ivy.page.locator(f'.cmp-side[data-side="{name}"] .cmp-viewport').bounding_box()
            assert image is not None and frame is not None
            assert image["x"] >= frame["x"] - 1 and image["x"] + image["width"] <= frame["x"] + frame["width"] + 1
            assert image["y"] >= frame["y"] - 1 and image["y"] + image["height"] <= frame["y"] + frame["height"] + 1

        # The decision with its feature checklist, shown with the decision.
        ivy.page.check("#decision-possible_match")
        ivy.page.fill("#id_rationale", "Same eyebrow shape and ear; hairline consistent")
        ivy.page.check("#feature-eyebrows-similar")
        ivy.page.check("#feature-ears-similar")
        ivy.page.check("#feature-marks-not_visible")
        ivy.page.click("text=Record decision")
        expect(ivy.page.locator(".cmp-checklist-table")).to_contain_text("Scars, marks and tattoos")
        expect(ivy.page.locator(".cmp-checklist-table tr", has_text="Eyebrows")).to_contain_text("Similar")
        ivy.page.wait_for_load_state("networkidle")
        ivy.shot("decision-with-checklist")
        ivy.axe()
        browser.close()
