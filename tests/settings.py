"""Test settings: the real settings module, with a throwaway SECRET_KEY when none is set."""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key")

from analytics_platform.settings import *  # noqa: E402,F403
