"""Test settings: the real settings module, with a throwaway SECRET_KEY when none is set
(long and varied enough for the production rule in analytics_platform/settings.py, since
tests run with DEBUG off), and a mirror directory of their own."""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("SECRET_KEY", "test-suite-only-key-7Qm2xVr9Lk4Tz8Hc1Wp5Nb3Fd6Jg0Ys")

# The Parquet mirror of this test process, deleted when it exits (the catalog rows that name
# its files live in the test database, which goes too).
if not os.environ.get("ANALYTICS_DIR"):
    os.environ["ANALYTICS_DIR"] = tempfile.mkdtemp(prefix="analytics-test-")
    atexit.register(shutil.rmtree, os.environ["ANALYTICS_DIR"], ignore_errors=True)

from analytics_platform.settings import *  # noqa: E402,F403
