"""A database made by the previous release upgrades with `migrate` and keeps every row.

The previous release is taken from git (PREVIOUS_RELEASE) into a temporary folder. Its own `manage.py migrate`
and tests/upgrade/seed_previous_release.py, run there against a scratch database, fill it through its own
services: users with roles, teams, cases with members, a closed case, a gallery enrolled from real photos,
probes processed, a face from a drawn box, searches, candidates, decisions and second reviews, an audit
export. Then this tree's `manage.py migrate` runs on the same database and tests/upgrade/check_upgraded.py
compares every row, permission and file with what the seed recorded, and verifies the audit chain.

The scratch database is PostgreSQL (`rfr_upgrade_check`, on the server of the test session) when the session
runs on PostgreSQL, otherwise a SQLite file; the pytest test database is not touched. Tasks run in-process.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings

from tests import parallel

PREVIOUS_RELEASE = "6c1defa63e329fa60f07be2cbf189127155903c2"  # 6c1defa, the last release before the restructure
REPO = Path(__file__).resolve().parent.parent
UPGRADE_SCRIPTS = REPO / "tests" / "upgrade"
SCRATCH_DATABASE = "rfr_upgrade_check" + parallel.worker_suffix()  # _gw0, _gw1 on several test processes
STEP_TIMEOUT_S = 240
OUTPUT_TAIL = 6000


def _unavailable(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def previous_release(tmp_path: Path) -> Path:
    """The previous release's files, extracted with `git archive` (no checkout, no .git)."""
    tree = tmp_path / "previous"
    tree.mkdir()
    git, tar = shutil.which("git"), shutil.which("tar")
    if git is None or tar is None:
        _unavailable("git and tar are needed to extract the previous release for the upgrade test")
    assert git is not None and tar is not None
    archive = subprocess.run([git, "-C", str(REPO), "archive", PREVIOUS_RELEASE], capture_output=True, timeout=120)
    if archive.returncode != 0:
        shallow = subprocess.run(
            [git, "-C", str(REPO), "rev-parse", "--is-shallow-repository"], capture_output=True, text=True
        )
        if shallow.stdout.strip() == "true":
            # A clone made without history (git clone --depth) holds no previous release to upgrade from;
            # .ci/run fetches the history first where it can. That is the checkout's limit, not a failure.
            pytest.skip(f"this clone is shallow: the previous release {PREVIOUS_RELEASE[:7]} is not in its history")
        _unavailable(
            f"the previous release {PREVIOUS_RELEASE[:7]} cannot be read from the git history in {REPO} "
            f"(a shallow clone?): {archive.stderr.decode(errors='replace').strip()}"
        )
    subprocess.run([tar, "-x", "-C", str(tree)], input=archive.stdout, check=True, timeout=120)
    return tree


# Put on the previous release's PYTHONPATH: it runs its own code only. An editable install of this checkout
# (`pip install -e .`, as `make` does) adds an import finder that maps the project's packages to this checkout,
# and would hand the previous release any module it lacks (search/templatetags/, say), which then fails.
EDITABLE_FINDER_OFF = """import sys
sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
"""


def _postgres_params() -> dict[str, str]:
    db = settings.DATABASES["default"]
    return {
        "host": str(db.get("HOST") or ""),
        "port": str(db.get("PORT") or ""),
        "user": str(db.get("USER") or ""),
        "password": str(db.get("PASSWORD") or ""),
    }


@pytest.fixture
def scratch_database_url(tmp_path: Path) -> Iterator[str]:
    """A database URL for the upgrade, on the same kind of database as this test session."""
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        yield f"sqlite:///{tmp_path / 'upgrade.sqlite3'}"
        return
    import psycopg
    from psycopg import sql

    params = _postgres_params()
    server = psycopg.conninfo.make_conninfo(dbname="postgres", connect_timeout=10, **params)

    def admin(statement: sql.Composed) -> None:
        with psycopg.connect(server, autocommit=True) as connection:
            connection.execute(statement)

    name = sql.Identifier(SCRATCH_DATABASE)
    admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
    admin(sql.SQL("CREATE DATABASE {}").format(name))
    credentials = quote(params["user"]) + (f":{quote(params['password'])}" if params["password"] else "")
    host = params["host"] + (f":{params['port']}" if params["port"] else "")
    try:
        yield f"postgres://{credentials}@{host}/{SCRATCH_DATABASE}"
    finally:
        admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))


def _run(step: str, args: list[str], *, cwd: Path, env: dict[str, str]) -> float:
    """Run one step of the upgrade; fail with its output if it exits non-zero. Returns seconds taken."""
    started = time.monotonic()
    try:
        result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=STEP_TIMEOUT_S)
    except subprocess.TimeoutExpired as timeout:
        output = timeout.stdout.decode(errors="replace") if isinstance(timeout.stdout, bytes) else timeout.stdout
        pytest.fail(f"{step} ran past {STEP_TIMEOUT_S} s, in {cwd}\n{(output or '')[-OUTPUT_TAIL:]}", pytrace=False)
    took = time.monotonic() - started
    print(f"{step}: {took:.1f} s\n{result.stdout.strip()}")
    if result.returncode != 0:
        pytest.fail(
            f"{step} failed (exit {result.returncode}, {took:.1f} s), in {cwd}\n"
            f"--- stdout ---\n{result.stdout[-OUTPUT_TAIL:]}\n--- stderr ---\n{result.stderr[-OUTPUT_TAIL:]}",
            pytrace=False,
        )
    return took


@pytest.mark.embedded
def test_previous_release_database_upgrades_and_keeps_every_row(
    previous_release: Path,
    scratch_database_url: str,
    tmp_path: Path,
    pack_dir: Path,
    faces_dir: Path,
    insightface_images: Path,
) -> None:
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RFR_")}
    for unwanted in ("DATABASE_URL", "REDIS_URL", "PYTHONPATH", "DJANGO_SETTINGS_MODULE"):
        env.pop(unwanted, None)
    env.update(
        DJANGO_SETTINGS_MODULE="rfr.settings",
        DATABASE_URL=scratch_database_url,  # no REDIS_URL: probes and searches are processed in-process
        RFR_DATA_DIR=str(data_dir),  # media and index snapshots land under tmp_path
        RFR_MEDIA_ROOT=str(data_dir / "media"),
        RFR_MODEL_PACK_DIR=str(pack_dir.parent),
        RFR_MODEL_PACK=pack_dir.name,
        RFR_LOG_LEVEL="WARNING",
        # This release needs an audit key held outside the database (the previous one ignores it), as an
        # operator sets one when upgrading (docs/workbench.md).
        RFR_AUDIT_KEY=secrets.token_hex(32),
        PYTHONDONTWRITEBYTECODE="1",
    )
    only_its_own_code = tmp_path / "previous-release-site"
    only_its_own_code.mkdir()
    (only_its_own_code / "sitecustomize.py").write_text(EDITABLE_FINDER_OFF)
    old_env = {**env, "PYTHONPATH": os.pathsep.join([str(previous_release), str(only_its_own_code)])}
    new_env = {**env, "PYTHONPATH": str(REPO)}
    fingerprint = tmp_path / "previous-release.json"
    python = sys.executable
    seed = [python, str(UPGRADE_SCRIPTS / "seed_previous_release.py"), str(fingerprint)]
    seed += ["--faces", str(faces_dir), "--insightface", str(insightface_images)]
    old, new = (previous_release, old_env), (REPO, new_env)
    steps = [
        ("previous release: migrate", [python, "manage.py", "migrate", "--no-input", "-v", "0"], *old),
        ("previous release: seed", seed, *old),
        ("this release: migrate", [python, "manage.py", "migrate", "--no-input"], *new),
        ("this release: check", [python, str(UPGRADE_SCRIPTS / "check_upgraded.py"), str(fingerprint)], *new),
    ]
    timings = [f"{step} {_run(step, args, cwd=cwd, env=env):.1f} s" for step, args, cwd, env in steps]
    print("upgrade timings: " + ", ".join(timings))
