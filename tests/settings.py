"""Settings for the test suite: rfr's own settings, with a secret key of the suite's own.

The suite runs in the production shape (DATABASE_URL and REDIS_URL set), where rfr refuses to start on its
public built-in key; the key is set here, before rfr.settings reads the environment, and child processes the
tests start inherit it.
"""

import os

os.environ.setdefault("RFR_SECRET_KEY", "rfr-test-suite-only-secret-key-not-for-any-deployment-7f3c9a1e5b")

from rfr.settings import *  # noqa: F403
