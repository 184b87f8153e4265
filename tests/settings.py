"""Settings for the test suite: rfr's own settings, with a secret key and an audit key of the suite's own.

The suite runs in the production shape (DATABASE_URL and REDIS_URL set), where rfr refuses to start on its
public built-in secret key or without an audit key held outside the database; both are set here, before
rfr.settings reads the environment, and child processes the tests start (workers, the upgrade check, the
browser test's server) inherit them.

On several processes (pytest-xdist, see tests/parallel.py) each process also gets, here and so inherited by
its children, a Redis db and a data folder of its own.
"""

import os
from pathlib import Path

from tests import parallel

os.environ.setdefault("RFR_SECRET_KEY", "rfr-test-suite-only-secret-key-not-for-any-deployment-7f3c9a1e5b")
os.environ.setdefault("RFR_AUDIT_KEY", "rfr-test-suite-only-audit-key-not-for-any-deployment-2d81c6e04a")

# Once per process: a child that imports these settings again inherits the values already made its own.
if parallel.WORKER and os.environ.get("RFR_TEST_WORKER") != parallel.WORKER:
    os.environ["RFR_TEST_WORKER"] = parallel.WORKER
    if os.environ.get("REDIS_URL"):
        parallel.redis_dbs_check(os.environ["REDIS_URL"], parallel.E2E_REDIS_URL)
        os.environ["REDIS_URL"] = parallel.redis_url_of_worker(os.environ["REDIS_URL"])
    data_dir = Path(os.environ.get("RFR_DATA_DIR") or Path(__file__).resolve().parent.parent / "var")
    os.environ.setdefault("RFR_MODEL_PACK_DIR", str(data_dir / "modelpacks"))  # the packs stay shared
    os.environ["RFR_DATA_DIR"] = str(data_dir / "xdist" / parallel.WORKER)
    if os.environ.get("RFR_MEDIA_ROOT"):
        os.environ["RFR_MEDIA_ROOT"] = str(Path(os.environ["RFR_MEDIA_ROOT"]) / parallel.WORKER)
    # The processes already fill the cores: one inference thread each, as the Celery workers run.
    os.environ.setdefault("RFR_ENGINE_THREADS", "1")

from rfr.settings import *  # noqa: F403
