"""Django's PostgreSQL backend with a pool that gets over a database restart at once.

With CONN_HEALTH_CHECKS, psycopg_pool tests a connection before handing it out, but after a
restart every idle connection is dead and it finds that out one at a time, sleeping 1, 2,
4 ... s between them: with 4 stale connections the first request waited ~7 s, with 8 it hit
the pool timeout and answered 503. Here the first failed check tests every idle connection
at once (the pool's own `check()`), so a restart costs the first request one backoff step.
"""

from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self):
        pool = super().pool
        # Django builds the pool with check=ConnectionPool.check_connection and offers no
        # way to pass another (a "check" pool option is a duplicate keyword argument).
        if pool is not None and pool._check is ConnectionPool.check_connection:
            pool._check = _sweeping_check(pool)
        return pool


def _sweeping_check(pool: ConnectionPool):
    def check(conn) -> None:
        try:
            ConnectionPool.check_connection(conn)
        except Exception:
            pool.check()  # one dead connection: the server restarted, so test them all now
            raise

    return check
