"""Test settings: the real settings module, with a throwaway SECRET_KEY when none is set
(long and varied enough for the production rule in analytics_platform/settings.py, since
tests run with DEBUG off)."""

import os

os.environ.setdefault("SECRET_KEY", "test-suite-only-key-7Qm2xVr9Lk4Tz8Hc1Wp5Nb3Fd6Jg0Ys")

from analytics_platform.settings import *  # noqa: E402,F403
