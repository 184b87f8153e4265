"""Settings for the test suite: rfr's own settings, with a secret key and an audit key of the suite's own.

The suite runs in the production shape (DATABASE_URL and REDIS_URL set), where rfr refuses to start on its
public built-in secret key or without an audit key held outside the database; both are set here, before
rfr.settings reads the environment, and child processes the tests start (workers, the upgrade check, the
browser test's server) inherit them.
"""

import os

os.environ.setdefault("RFR_SECRET_KEY", "rfr-test-suite-only-secret-key-not-for-any-deployment-7f3c9a1e5b")
os.environ.setdefault("RFR_AUDIT_KEY", "rfr-test-suite-only-audit-key-not-for-any-deployment-2d81c6e04a")

from rfr.settings import *  # noqa: F403
