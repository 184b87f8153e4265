"""Shared fixtures: the real model pack, the shared face data, and the photos insightface ships."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.register_assert_rewrite("tests.factories")
# The one set of factories and fixtures, for every test module.
pytest_plugins = ["tests.factories"]

from django.conf import settings  # noqa: E402

from faceengine import FaceEngine  # noqa: E402

FACES_ENV = "RFR_FACES_DATA"

# On several processes (scripts/test.sh: pytest -n 2 --dist loadfile --no-loadscope-reorder) these modules,
# which mostly wait on subprocesses (Celery workers, Chromium, manage.py, scratch databases), are handed out
# first and longest first, so that no process is left running one of them alone at the end. Longest as
# measured in one process on a 2-core machine (seconds, module total); a module missing here only runs in its
# usual place, never elsewhere.
LONGEST_MODULES = (
    "tests/e2e/test_video_browser.py",  # 120 (its own stack; the Hamilton clip processed by a real worker)
    "tests/test_worker_death.py",  # 110 (a batch enrolled by one Celery worker, killed, then by another)
    "tests/e2e/test_api_token_flow.py",  # 69 (its own server, worker and seeded gallery)
    "tests/test_video_workbench.py",  # 100 (the real clips through the real engine)
    "tests/test_video_worker_death.py",  # 60 (a worker killed mid-video, another resumes)
    "tests/test_faults_broker.py",  # 54
    "tests/test_storage_s3.py",  # 60 at a load average of 8 (two Celery workers sharing only an S3 bucket)
    "tests/e2e/test_galadmin_browser.py",  # 32
    "tests/e2e/test_workbench_browser.py",  # 30
    "tests/test_gallery_resume.py",  # 29
    "tests/test_upgrade.py",  # 17
    "tests/test_gallery_celery.py",  # 16
    "tests/test_faults_enrolment.py",  # 15
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return  # one process: the usual order
    rank = {module: position for position, module in enumerate(LONGEST_MODULES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: the rest keep order


def faces_data_dir() -> Path:
    return Path(os.environ.get(FACES_ENV) or settings.RFR_FACES_DATA)


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    """../shared/data/faces (or $RFR_FACES_DATA); tests that need it skip, naming it, where it is absent."""
    path = faces_data_dir()
    if not (path / "README.md").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"The shared face data set is required in CI but was not found at {path} (${FACES_ENV}).")
        pytest.skip(f"shared face data not found at {path}; set ${FACES_ENV} to run this test")
    return path


@pytest.fixture(scope="session")
def insightface_images() -> Path:
    """The photos the insightface package ships (t1.jpg, a group of six; Tom_Hanks_54745.png)."""
    spec = importlib.util.find_spec("insightface")  # locates the package without importing it
    assert spec is not None and spec.submodule_search_locations, "insightface is a declared dependency"
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "images"


@pytest.fixture(scope="session")
def pack_dir() -> Path:
    path = Path(settings.RFR_MODEL_PACK_DIR) / settings.RFR_MODEL_PACK
    if not (path / "manifest.json").is_file():
        from faceengine.packs import fetch_default_pack

        fetch_default_pack(Path(settings.RFR_MODEL_PACK_DIR))
    return path


@pytest.fixture(scope="session")
def engine(pack_dir: Path) -> FaceEngine:
    from faceengine import get_engine

    return get_engine(pack_dir, threads=settings.RFR_ENGINE_THREADS)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """On PostgreSQL the audit table refuses TRUNCATE, which Django uses to empty tables between
    transactional tests; on the throwaway test database alone the flush gets past the trigger (audit.testing)."""
    from audit.testing import audit_flush_allow_on_test_databases

    with django_db_blocker.unblock():
        audit_flush_allow_on_test_databases()


@pytest.fixture(scope="session", autouse=True)
def _the_test_process_is_a_search_node() -> Iterator[None]:
    """Tests call the search services in-process, as a search node does, whether tasks run eagerly or not
    (tests/test_search_nodes.py checks the guard that stops any other process loading an index)."""
    from search.index.node import search_node_enter, search_node_leave

    search_node_enter()
    yield
    search_node_leave()


@pytest.fixture(scope="session", autouse=True)
def _audit_anchor_file_of_the_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Processes the tests start (workers, manage.py) anchor the audit head here, not in var/."""
    path = tmp_path_factory.mktemp("audit-anchor") / "session.log"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RFR_AUDIT_ANCHOR_FILE", str(path))
        yield


@pytest.fixture(autouse=True)
def _audit_anchor_file_of_the_test(tmp_path_factory: pytest.TempPathFactory, settings: Any) -> Path:
    """Each test anchors in a file of its own: the tables are emptied between tests, the anchor is not."""
    path = tmp_path_factory.mktemp("audit-anchor") / "anchor.log"
    settings.RFR_AUDIT_ANCHOR_FILE = path
    return path
