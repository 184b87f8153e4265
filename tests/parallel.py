"""The suite on several processes (pytest-xdist; scripts/test.sh runs `pytest -n $RFR_TEST_PROCESSES`, 2 by
default): what each process owns, so that two tests running at the same time never share a resource.

xdist names its processes gw0, gw1, ... in PYTEST_XDIST_WORKER. Per process:
- Redis: its own database, counting down from the one given (REDIS_URL db 15 → 15 for gw0, 14 for gw1),
  set by tests/settings.py before rfr.settings reads the environment, so that the Celery workers the tests
  start inherit it; the end-to-end stack's RFR_E2E_REDIS_URL and the worker tests' db 13 count down likewise;
- PostgreSQL: pytest-django suffixes the test database itself (test_rfr_gw0); the scratch databases that
  tests make under a fixed name (rfr_upgrade_check, rfr_e2e) get the same suffix;
- the data folder (index snapshots, media, uploads): <RFR_DATA_DIR or var>/xdist/gw0, set by tests/settings.py;
- ports: the test that runs its own redis-server adds the process's index to its port.
In a plain run (no xdist, RFR_TEST_PROCESSES=1) every function here returns its input unchanged.
No Django here: tests/settings.py imports this module before the settings are read.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ... under xdist; "" in a plain run
WORKER_COUNT = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
REDIS_DATABASES = 16  # Redis's default `databases`
WORKER_TESTS_REDIS_DB = 13  # the Celery worker tests' own db (test_gallery_celery, test_worker_death)
E2E_REDIS_URL = os.environ.get("RFR_E2E_REDIS_URL", "redis://127.0.0.1:6379/15")  # the browser tests' stack


def worker_index() -> int:
    return int(WORKER[2:]) if WORKER.startswith("gw") else 0


# Several checkouts testing on one machine at once (e.g. git worktrees) set these so that their scratch
# databases and the ports of the servers tests start never meet; unset, nothing changes.
CHECKOUT_SUFFIX = os.environ.get("RFR_TEST_CHECKOUT_SUFFIX", "")
CHECKOUT_PORT_OFFSET = int(os.environ.get("RFR_TEST_PORT_OFFSET") or 0)


def worker_suffix() -> str:
    """ "_gw0", "_gw1", ... under xdist (as pytest-django names the test databases); "" in a plain run."""
    return (f"_{WORKER}" if WORKER else "") + CHECKOUT_SUFFIX


def redis_db_of_worker(db: int) -> int:
    shifted = db - worker_index()
    if not 0 <= shifted < REDIS_DATABASES:
        raise RuntimeError(f"Redis db {db} counted down for {WORKER} gives {shifted}: use a higher db number")
    return shifted


def redis_url_of_worker(url: str) -> str:
    """The URL with its database number counted down by the process's index (db 0 where the URL names none)."""
    parts = urlsplit(url)
    db = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{redis_db_of_worker(db)}"))


def _dbs(first: int) -> set[int]:
    return {first - i for i in range(WORKER_COUNT)}


def redis_dbs_check(main_url: str, e2e_url: str) -> None:
    """No process may flush a db that another process is using: the worker tests flush theirs, the e2e stack
    its own (which may be the process's main db: the two never run at the same time in one process)."""
    main, e2e = (int(urlsplit(url).path.strip("/") or 0) for url in (main_url, e2e_url))
    clashes = _dbs(main) & _dbs(WORKER_TESTS_REDIS_DB)
    if e2e != main:
        clashes |= _dbs(e2e) & (_dbs(main) | _dbs(WORKER_TESTS_REDIS_DB))
    if clashes:
        raise RuntimeError(
            f"{WORKER_COUNT} test processes on Redis db {main} (REDIS_URL), {e2e} (RFR_E2E_REDIS_URL) and"
            f" {WORKER_TESTS_REDIS_DB} (worker tests), each counting down, would share dbs {sorted(clashes)}:"
            " use fewer processes or other dbs"
        )


def port_of_worker(port: int) -> int:
    return port + worker_index() + CHECKOUT_PORT_OFFSET
