"""The whole workbench flow in headless Chromium against a real server, a real Celery worker, PostgreSQL
and Redis.

Log in, open a case, upload a group photo and a photo of an enrolled person, see the faces boxed, pick one,
search the gallery, review the candidate, have a supervisor agree, download the report; every page is checked
with axe-core (WCAG 2.1 A/AA) and each step's screenshot is saved under test-artifacts/screenshots/.

Needs: /usr/bin/chromium (Debian's chromium package), Playwright for Python (no `playwright install`),
tests/e2e/node_modules/axe-core (`npm install` in tests/e2e), PostgreSQL and Redis. Outside CI the test skips,
saying why, when one is missing; in CI (CI set) it fails instead.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rfr.queues import ALL_QUEUES
from tests import parallel

ROOT = Path(__file__).resolve().parents[2]
E2E_DIR = Path(__file__).resolve().parent
ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
CHROMIUM = Path(os.environ.get("RFR_E2E_CHROMIUM", "/usr/bin/chromium"))
AXE = E2E_DIR / "node_modules" / "axe-core" / "axe.min.js"
PG_ADMIN_URL = os.environ.get("RFR_E2E_PG_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres")
# Each test process its own (tests/parallel.py): rfr_e2e_gw0 and db 15 for gw0, rfr_e2e_gw1 and db 14 for gw1.
E2E_DB = os.environ.get("RFR_E2E_DB_NAME", "rfr_e2e") + parallel.worker_suffix()
REDIS_URL = parallel.redis_url_of_worker(parallel.E2E_REDIS_URL)
PASSWORD = "e2e-password-long-enough-123"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"end-to-end test cannot run in CI: {reason}")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _fresh_database() -> str:
    import psycopg

    try:
        with psycopg.connect(PG_ADMIN_URL.replace("postgres://", "postgresql://"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{E2E_DB}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{E2E_DB}"')
    except psycopg.OperationalError as exc:
        _unavailable(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + E2E_DB


def _fresh_redis() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL).flushdb()
    except redis.exceptions.ConnectionError as exc:
        _unavailable(f"Redis not reachable at {REDIS_URL}: {exc}")


def _run(args: list[str], env: dict[str, str], timeout: int = 300) -> str:
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"server exited early (code {process.returncode}); see test-artifacts/e2e-logs*"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {timeout}s")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Migrated PostgreSQL database, seeded users and gallery, runserver and a Celery worker."""
    if not CHROMIUM.is_file():
        _unavailable(f"{CHROMIUM} not found: apt-get install -y chromium chromium-driver")
    if not AXE.is_file():
        _unavailable(f"{AXE} not found: run `npm install` in tests/e2e")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("Playwright for Python is not installed: pip install playwright")
    faces_dir = Path(os.environ.get("RFR_FACES_DATA") or ROOT.parent / "shared" / "data" / "faces")
    if not (faces_dir / "celeba" / "identities.csv").is_file():
        _unavailable(f"shared face data not found at {faces_dir}")
    _fresh_redis()
    database_url = _fresh_database()
    media = tmp_path_factory.mktemp("e2e-media")
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "RFR_MEDIA_ROOT": str(media),
        # The stack's own anchor: `audit verify` below checks this database's chain against it.
        "RFR_AUDIT_ANCHOR_FILE": str(media / "audit-anchor.log"),
        "RFR_FACES_DATA": str(faces_dir),
        "E2E_PASSWORD": PASSWORD,
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    python = sys.executable
    _run([python, "manage.py", "migrate", "--noinput"], env)
    seed = json.loads(_run([python, str(E2E_DIR / "seed.py"), str(faces_dir)], env).strip().splitlines()[-1])
    logs = ARTIFACTS / f"e2e-logs{parallel.worker_suffix()}"
    logs.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    celery = str(Path(python).with_name("celery"))
    processes = [
        subprocess.Popen(
            [
                celery,
                "-A",
                "rfr",
                "worker",
                "-Q",
                ALL_QUEUES,
                "--pool",
                "solo",
                "--loglevel",
                "INFO",
                "--without-gossip",
            ],
            cwd=ROOT,
            env=env,
            stdout=(logs / "worker.log").open("wb"),
            stderr=subprocess.STDOUT,
        ),
        subprocess.Popen(
            [python, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload", "--insecure"],
            cwd=ROOT,
            env=env,
            stdout=(logs / "server.log").open("wb"),
            stderr=subprocess.STDOUT,
        ),
    ]
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_http(f"{base}/healthz", processes[1])
        yield {"base": base, "env": env, "seed": seed, "python": python}
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


class Browser:
    def __init__(self, page: Any, base: str) -> None:
        self.page = page
        self.base = base
        self.step = 0
        # rfr's Content-Security-Policy allows no inline script: any page that needs one is caught here.
        self.csp_violations: list[str] = []
        page.on(
            "console",
            lambda message: (
                self.csp_violations.append(f"{page.url}: {message.text}")
                if "Content Security Policy" in message.text
                else None
            ),
        )

    def go(self, path: str) -> None:
        self.page.goto(self.base + path)

    def shot(self, name: str) -> None:
        self.step += 1
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{self.step:02d}-{name}.png"), full_page=True)

    def axe(self) -> None:
        # Evaluated through the DevTools protocol: a <script> tag would be (rightly) refused by rfr's CSP.
        self.page.evaluate(AXE.read_text(encoding="utf-8"))
        assert not self.csp_violations, "\n".join(self.csp_violations)
        result = self.page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG_TAGS)
        problems = [
            f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
            for v in result["violations"]
        ]
        assert not problems, f"axe-core found WCAG 2.1 AA problems on {self.page.url}:\n" + "\n".join(problems)

    def login(self, username: str) -> None:
        self.go("/accounts/login/")
        self.page.fill("input[name=username]", username)
        self.page.fill("input[name=password]", PASSWORD)
        self.page.click("button[type=submit]")
        self.page.wait_for_load_state()
        assert "/accounts/login/" not in self.page.url, "sign-in failed"


def test_workbench_flow_in_a_real_browser(stack: dict[str, Any], insightface_images: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    seed = stack["seed"]
    assert seed.get("probe"), f"seeding found no probe photo: {seed}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        investigator_context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
        ivy = Browser(investigator_context.new_page(), stack["base"])
        ivy.page.set_default_timeout(30_000)

        ivy.go("/accounts/login/")
        ivy.shot("sign-in")
        ivy.login("ivy")

        # A case, opened through the case pages.
        ivy.go("/cases/new/")
        ivy.page.fill("input[name=reference]", "OP-E2E-1")
        ivy.page.fill("input[name=title]", "Robbery at the station")
        ivy.page.select_option("select[name=purpose]", "suspect")
        ivy.page.fill("textarea[name=legal_basis]", "Prevention and detection of crime (DPA 2018 s.35)")
        ivy.shot("new-case")
        ivy.page.click("form button[type=submit]")
        ivy.page.wait_for_url(re.compile(r"/cases/\d+/$"))
        case_id = int(re.search(r"/cases/(\d+)/$", ivy.page.url).group(1))  # type: ignore[union-attr]

        # Probes: the insightface group photo and a photo of an enrolled person, in one upload.
        ivy.go(f"/cases/{case_id}/workbench/")
        ivy.axe()
        ivy.page.set_input_files("#id_images", [str(insightface_images / "t1.jpg"), seed["probe"]])
        ivy.page.select_option("#id_source", "cctv")
        ivy.page.fill("#id_description", "Stills from the station concourse")
        ivy.page.check("#id_lawfully_held")
        ivy.shot("upload")
        ivy.page.click("text=Upload")
        ivy.page.wait_for_url(re.compile(rf"/cases/{case_id}/workbench/$"))
        expect(ivy.page.locator(".messages")).to_contain_text("2 images uploaded")

        ivy.page.click("text=t1.jpg")
        expect(ivy.page.locator("#faces-heading")).to_have_text("Faces found (6)", timeout=90_000)
        assert ivy.page.locator(".wb-overlay .wb-box").count() == 6
        ivy.shot("group-photo-faces")
        ivy.axe()

        ivy.go(f"/cases/{case_id}/workbench/")
        ivy.page.click(f"text={Path(seed['probe']).name}")
        expect(ivy.page.locator("#faces-heading")).to_contain_text("Faces found", timeout=90_000)
        ivy.shot("probe-faces")
        ivy.page.locator("a.wb-button", has_text="Search with face").first.click()

        # Search: gallery, defaults, a justification.
        ivy.page.wait_for_url(re.compile(r"/faces/\d+/search/$"))
        ivy.axe()
        ivy.page.check(f"text={seed['gallery']}")
        ivy.page.fill("#id_justification", "Suspect caught on camera 3 at 21:14")
        ivy.shot("search-form")
        ivy.page.click("text=Run search")
        ivy.page.wait_for_url(re.compile(r"/searches/\d+/$"))
        search_id = int(re.search(r"/searches/(\d+)/$", ivy.page.url).group(1))  # type: ignore[union-attr]
        expect(ivy.page.locator("#candidates-heading")).to_be_visible(timeout=90_000)
        row = ivy.page.locator("tr", has_text=seed["subject_ref"])
        expect(row).to_have_count(1)
        ivy.shot("candidates")
        ivy.axe()

        # Review: side by side, zoom, a possible match with a rationale.
        row.locator("a").click()
        ivy.page.wait_for_url(re.compile(r"/candidates/\d+/$"))
        candidate_path = ivy.page.url.replace(stack["base"], "")
        ivy.page.click("text=Zoom in")
        expect(ivy.page.locator(".wb-zoom-level")).to_have_text("150%")
        ivy.axe()
        ivy.page.check("#decision-possible_match")
        ivy.page.fill("#id_rationale", "Same eyebrow shape and ear; hairline consistent")
        ivy.page.click("text=Record decision")
        expect(ivy.page.locator(".wb-wording")).to_contain_text("awaiting an independent second review")
        expect(ivy.page.locator(".wb-wording")).to_contain_text(
            "possible match — intelligence only, not an identification"
        )
        ivy.shot("first-review")

        # Second review by a supervisor of the case's team, in a separate session.
        supervisor_context = browser.new_context(viewport={"width": 1280, "height": 800})
        sam = Browser(supervisor_context.new_page(), stack["base"])
        sam.step = ivy.step
        sam.login("sam")
        sam.go(candidate_path)
        expect(sam.page.locator("legend").first).to_have_text("Your independent second review")
        sam.page.check("#decision-possible_match")
        sam.page.fill("#id_rationale", "Agree: ear and jawline match")
        sam.page.click("text=Record decision")
        expect(sam.page.locator(".wb-wording")).to_contain_text("agreed by a second reviewer; released")
        sam.shot("second-review")
        sam.axe()
        ivy.step = sam.step

        # The disclosure report.
        ivy.go(f"/searches/{search_id}/")
        with ivy.page.expect_download() as download_info:
            ivy.page.click("text=Download the search report (PDF)")
        report = ARTIFACTS / f"search-{search_id}-report.pdf"
        download_info.value.save_as(str(report))
        assert report.read_bytes().startswith(b"%PDF")
        ivy.shot("report-downloaded")

        # The API docs: served from rfr itself, working under its Content-Security-Policy.
        ivy.go("/api/docs/")
        if ivy.page.locator("#swagger-ui").count():
            expect(ivy.page.locator("#swagger-ui .information-container")).to_be_visible()
        else:
            expect(ivy.page.locator("h1")).to_have_text("API documentation")
        assert not ivy.csp_violations, "\n".join(ivy.csp_violations)
        ivy.shot("api-docs")
        browser.close()

    # Every step is on the audit trail, and the chain verifies.
    env, python = stack["env"], stack["python"]
    verify = _run([python, "manage.py", "audit", "verify"], env)
    assert "OK" in verify
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
        "case.created",
        "probe.uploaded",
        "probe.processed",
        "search.requested",
        "search.completed",
        "search.candidates_viewed",
        "candidate.viewed",
        "candidate.decided",
        "search.report_downloaded",
    ]:
        assert expected in actions, f"{expected} missing from the audit trail: {actions}"


def test_marking_a_face_by_hand_in_a_real_browser(stack: dict[str, Any], insightface_images: Path) -> None:
    """Five landmarks placed by clicking on the enlarged region (static/js/landmarks.js), one undone and placed
    again, the aligned crop previewed in place, then saved: the face reads "manually marked"."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        ivy = Browser(browser.new_context(viewport={"width": 1366, "height": 768}).new_page(), stack["base"])
        ivy.step = 50
        ivy.page.set_default_timeout(30_000)
        ivy.login("ivy")
        ivy.go("/cases/new/")
        ivy.page.fill("input[name=reference]", "OP-E2E-2")
        ivy.page.fill("input[name=title]", "Face marked by hand")
        ivy.page.select_option("select[name=purpose]", "suspect")
        ivy.page.fill("textarea[name=legal_basis]", "Prevention and detection of crime (DPA 2018 s.35)")
        ivy.page.click("form button[type=submit]")
        ivy.page.wait_for_url(re.compile(r"/cases/\d+/$"))
        case_id = int(re.search(r"/cases/(\d+)/$", ivy.page.url).group(1))  # type: ignore[union-attr]
        ivy.go(f"/cases/{case_id}/workbench/")
        ivy.page.set_input_files("#id_images", [str(insightface_images / "Tom_Hanks_54745.png")])
        ivy.page.select_option("#id_source", "cctv")
        ivy.page.check("#id_lawfully_held")
        ivy.page.click("text=Upload")
        ivy.page.wait_for_url(re.compile(r"/probes/\d+/$"))
        probe_id = int(re.search(r"/probes/(\d+)/$", ivy.page.url).group(1))  # type: ignore[union-attr]
        expect(ivy.page.locator("#faces-heading")).to_have_text("Faces found (1)", timeout=90_000)
        # The detector's landmarks are where a careful person would click.
        face = ivy.page.request.get(f"{stack['base']}/api/probes/{probe_id}/").json()["faces"][0]
        points, (x, y, w, h) = face["landmarks"], face["box"]

        ivy.go(f"/probes/{probe_id}/mark/?box={x:.0f},{y:.0f},{w:.0f},{h:.0f}")
        stage = ivy.page.locator(".wb-mark-stage")
        region = [float(stage.get_attribute(f"data-region-{k}") or 0) for k in "xywh"]

        def click(point: list[float]) -> None:
            image = ivy.page.locator(".wb-mark-img")
            image.scroll_into_view_if_needed()
            box = image.bounding_box()
            assert box is not None
            ivy.page.mouse.click(
                box["x"] + (point[0] - region[0]) * box["width"] / region[2],
                box["y"] + (point[1] - region[1]) * box["height"] / region[3],
            )

        for point in points[:3]:
            click(point)
        ivy.page.click("text=Undo last point")
        expect(ivy.page.locator(".wb-mark-next")).to_contain_text("Next: point 3, the nose tip")
        for point in points[2:]:
            click(point)
        expect(ivy.page.locator(".wb-mark-next")).to_have_text("All five points placed.")
        assert ivy.page.locator(".wb-marker:not(.wb-marker-off)").count() == 5
        assert abs(float(ivy.page.input_value("#id_p5x")) - points[4][0]) < 1.0
        ivy.page.click("text=Preview the aligned face")
        expect(ivy.page.locator(".wb-mark-preview-figure")).to_be_visible()
        ivy.shot("landmarks-preview")
        ivy.axe()
        ivy.page.click("text=Save this face")
        ivy.page.wait_for_url(re.compile(rf"/probes/{probe_id}/"))
        expect(ivy.page.locator(".wb-face-card .wb-manual")).to_have_text("manually marked")
        ivy.shot("landmarks-saved")
        ivy.axe()
        browser.close()
