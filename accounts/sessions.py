"""Django's database sessions (SESSION_ENGINE), except that a cookie holding a key Django
could not have made is no session, without a lookup: PostgreSQL refuses text with a NUL,
which the stock store lets through to the database (a 500 on every page, and on the live
stream's socket, for a crafted cookie)."""

from django.contrib.sessions.backends.base import VALID_KEY_CHARS
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore


class SessionStore(DatabaseSessionStore):
    def _get_session_from_db(self):
        key = self.session_key
        if not key or not set(key) <= set(VALID_KEY_CHARS):
            self._session_key = None
            return None
        return super()._get_session_from_db()
