"""Analytics benchmark on the column store (issue 11, a report, not a test):
`python bench/queries.py` or `make bench`.

Per size in BENCH_SIZES (default 1000000,3000000,10000000 events of the `seed` command: 50,000
users over 60 days, seed 1), each in its own PostgreSQL database `bench_cs_<size>` and its own
ANALYTICS_DIR `<BENCH_DIR>/<size>/analytics` (a database already holding that many events,
with every one of them in a live file of the mirror, is reused as it is):

1. Our cold answer over HTTP: one real `uvicorn analytics_platform.asgi:application` process
   with DATABASE_URL / REDIS_URL / ANALYTICS_DIR set and CACHE_TTL_SECONDS=0, so no answer is
   ever cached (every request computes; rate limits and the data version still use Redis).
   Median of BENCH_RUNS (3) requests of: funnel (page_view → add_to_cart → checkout_start →
   purchase, 7-day conversion window, the last 30 days), retention (signup cohorts, daily, 14
   periods, 30 cohorts), metrics (daily, 60 days, all events), summary (60 days), and a journey
   page (PostgreSQL, no counterpart). The API key (read, admin) comes from `createapikey`, the
   funnel from POST /api/v1/funnels. The web process's first request (a one-day summary, which
   opens the engine) is a warm-up and not timed.
2. The same question as hand-written DuckDB SQL (below, written from API.md, not from the
   runners) over the live Parquet files the catalog lists, the outbox being empty: a fresh
   DuckDB connection per run with the web process's own ANALYTICS_MEMORY_LIMIT and
   ANALYTICS_THREADS, files pruned by their UTC day as any reader of a day-partitioned mirror
   would, median of BENCH_RUNS, each run right after the HTTP run it is compared with. The
   answers are checked equal: the funnel's users per step (and its average and median times),
   every retention cell, every metrics bucket, the summary's totals and top events. A
   difference prints FAIL.
3. Ratios ours / hand-written, and issue 11's targets (at every size; the issue sets them at
   10M): funnel ≤ 1.0x the SQL and ≤ 2.6 s, retention ≤ 1.0x, metrics ≤ 300 ms, summary ≤ 300 ms.
4. Bytes per event: the mirror's live files (catalog bytes / rows) and PostgreSQL
   (pg_total_relation_size of events_event, indexes included; the outbox per event, measured
   by filling a temporary copy of warehouse_outbox with up to 1M of the events' ids, in rows of
   1,000 as batches write them).
5. The web process's peak RSS (VmHWM) at the end of the funnel requests, the first analytics
   it computes after the warm-up.
6. Ingestion before and after the rollups and indexes were dropped: bench/ingest.py's stack,
   load and measurements (imported, not copied), against `git worktree`s of BENCH_INGEST_BEFORE
   (172208b, the last commit with the rollups and the three indexes) and of the served commit,
   each with its own database, alternated BENCH_INGEST_ROUNDS (3) times, medians; with the
   CPU seconds of the load generator (this process), the web processes and the workers during
   each scenario (bench/live.py's counter) and the machine's busy share (/proc/stat).

The web and the ingestion stacks serve BENCH_APP (default HEAD: a `git worktree` of the
current commit under BENCH_DIR, removed at the end, so a report is always of a commit;
`BENCH_APP=.` serves this checkout as it is). Ranges end on the local day of the data's
newest event, not on today, so a database seeded days ago answers the same questions.

Environment: BENCH_PG (maintenance database URL), BENCH_REDIS_URL (default
redis://127.0.0.1:6379/12, flushed), BENCH_DIR (default /tmp/bench_cs), BENCH_SIZES, BENCH_RUNS,
BENCH_APP, BENCH_INGEST (1; 0 skips step 6), BENCH_INGEST_ROUNDS, BENCH_INGEST_BEFORE, BENCH_PORT.
"""

import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zoneinfo
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import psycopg

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
import ingest  # noqa: E402  (the ingestion stack, load and counters: step 6)
import live  # noqa: E402  (its CPU-seconds counter)

PG_ADMIN = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
BENCH_DIR = Path(os.environ.get("BENCH_DIR") or Path(tempfile.gettempdir()) / "bench_cs")
SIZES = [int(s) for s in os.environ.get("BENCH_SIZES", "1000000,3000000,10000000").split(",") if s]
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
APP = os.environ.get("BENCH_APP", "HEAD")
INGEST = os.environ.get("BENCH_INGEST", "1") == "1"
INGEST_ROUNDS = int(os.environ.get("BENCH_INGEST_ROUNDS", "3"))
INGEST_BEFORE = os.environ.get("BENCH_INGEST_BEFORE", "172208b")
HOST, PORT = "127.0.0.1", int(os.environ.get("BENCH_PORT", "8766"))
PYTHON = sys.executable
USERS, DAYS, SEED = 50_000, 60, 1

FUNNEL_STEPS = ["page_view", "add_to_cart", "checkout_start", "purchase"]
FUNNEL_WINDOW = 7 * 86400
FUNNEL_NAME = "bench_cs: " + " > ".join(FUNNEL_STEPS) + ", 7 days"
FUNNEL_DAYS, RETENTION_DAYS, RETENTION_PERIODS, METRICS_DAYS, SUMMARY_DAYS = 30, 30, 14, 60, 60
RETENTION_COHORT = "signup"
QUESTIONS = {
    "funnel": "funnel, 4 steps, 7-day window, 30 days",
    "retention": "retention, signup, daily, 14 periods, 30 cohorts",
    "metrics": "metrics, daily, 60 days, all events",
    "summary": "summary, 60 days",
    "journey": "journey, one user's first page (PostgreSQL)",
}
TARGETS = {  # issue 11, at 10M events: (max ratio ours / SQL, max ms)
    "funnel": (1.0, 2600),
    "retention": (1.0, None),
    "metrics": (None, 300),
    "summary": (None, 300),
}


# ---------------------------------------------------------------- code, databases, the mirror


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def worktree(rev: str) -> Path:
    """A clean checkout of `rev` under BENCH_DIR (a `git worktree`, reused if already there)."""
    sha = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    path = BENCH_DIR / "worktrees" / sha[:12]
    if path.is_dir():
        try:
            if git("rev-parse", "HEAD", cwd=path) == sha and not git("status", "--porcelain", cwd=path):
                return path
        except subprocess.CalledProcessError:
            pass
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, capture_output=True)
    subprocess.run(["git", "worktree", "prune"], cwd=ROOT, check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "worktree", "add", "--detach", str(path), sha], cwd=ROOT, check=True, capture_output=True)
    return path


def worktrees_remove() -> None:
    """Removes the worktrees this benchmark added (`git worktree list` as it was before)."""
    for path in (BENCH_DIR / "worktrees").glob("*"):
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, capture_output=True)
    subprocess.run(["git", "worktree", "prune"], cwd=ROOT, check=True)


def app_tree() -> tuple[Path, dict]:
    if APP == ".":
        dirty = [line for line in git("status", "--porcelain").splitlines() if not line[3:].startswith("bench/")]
        return ROOT, {"tree": str(ROOT), "commit": git("rev-parse", "HEAD"), "uncommitted": dirty}
    tree = worktree(APP)
    return tree, {"tree": str(tree), "commit": git("rev-parse", "HEAD", cwd=tree), "uncommitted": []}


def database_url(name: str) -> str:
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def app_env(size: int) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": database_url(f"bench_cs_{size}"),
        "REDIS_URL": REDIS_URL,
        "ANALYTICS_DIR": str(BENCH_DIR / str(size) / "analytics"),
        "DEPLOYMENT_NAME": f"bench_cs_{size}",  # own Redis keys per size
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DEBUG": "0",
        "ALLOWED_HOSTS": HOST,
        "LOG_LEVEL": "WARNING",
        "CACHE_TTL_SECONDS": "0",  # never an answer from the cache: every request computes
        "DJANGO_SETTINGS_MODULE": "analytics_platform.settings",
    }


def manage(tree: Path, env: dict, *args: str) -> str:
    result = subprocess.run([PYTHON, "manage.py", *args], cwd=tree, env=env, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return result.stdout


def pg(db: str, sql: str, params=None) -> list[tuple]:
    with psycopg.connect(database_url(db), autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def mirror_files(db: str, project_id: int) -> list[dict]:
    rows = pg(
        db,
        "SELECT day, path, rows, bytes, rollup FROM warehouse_mirrorfile WHERE project_id = %s AND retired_at IS NULL",
        [project_id],
    )
    return [
        {"day": day, "path": path, "rows": n, "bytes": size, "rollup": rollup} for day, path, n, size, rollup in rows
    ]


def mirror_complete(db: str, project_id: int, events: int, analytics: Path) -> bool:
    """Every event in a live file on disk with its rollup, one file per UTC day, nothing in the outbox."""
    files = mirror_files(db, project_id)
    pending = pg(db, "SELECT count(*) FROM warehouse_outbox")[0][0]
    one_per_day = len({f["day"] for f in files}) == len(files)
    on_disk = all((analytics / f["path"]).is_file() for f in files)
    rolled = all(f["rollup"] for f in files)
    return pending == 0 and one_per_day and on_disk and rolled and sum(f["rows"] for f in files) == events


def ensure_seeded(size: int, tree: Path) -> dict:
    db = f"bench_cs_{size}"
    env = app_env(size)
    analytics = Path(env["ANALYTICS_DIR"])
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db]).fetchone()
    migrated = exists and pg(db, "SELECT to_regclass('events_event') IS NOT NULL")[0][0]
    count = pg(db, "SELECT count(*) FROM events_event")[0][0] if migrated else -1
    seeded = {"database": db, "reused": count == size}
    if count != size:  # start over: a fresh database (ids from 1) and an empty mirror
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{db}"')
        subprocess.run(["rm", "-rf", str(analytics), str(BENCH_DIR / str(size) / "api-key")], check=True)
        manage(tree, env, "setup", "-v0")
        started = time.perf_counter()
        args = ["--events", str(size), "--users", str(USERS), "--days", str(DAYS), "--seed", str(SEED)]
        manage(tree, env, "seed", "--no-progress", *args)
        seeded["seed_s"] = round(time.perf_counter() - started)
        print(f"  seeded {size:,} events in {seeded['seed_s']} s", flush=True)
    manage(tree, env, "migrate", "-v0")  # the served commit's schema (no-op when current)
    project_id = pg(db, "SELECT id FROM accounts_project WHERE slug = 'demo'")[0][0]
    if not mirror_complete(db, project_id, size, analytics):
        started = time.perf_counter()
        manage(tree, env, "rebuild_mirror")
        seeded["rebuild_mirror_s"] = round(time.perf_counter() - started)
        print(f"  rebuilt the mirror in {seeded['rebuild_mirror_s']} s", flush=True)
        if not mirror_complete(db, project_id, size, analytics):
            raise SystemExit(f"{db}: the mirror does not hold the {size} events after rebuild_mirror")
    if not seeded["reused"] or "rebuild_mirror_s" in seeded:
        with psycopg.connect(database_url(db), autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
    seeded["project_id"] = project_id
    return seeded


def engine_settings(tree: Path, env: dict) -> dict:
    """The column engine's bounds as the served app reads them (warehouse/engine.py)."""
    code = (
        "import json; from django.conf import settings as s; print('SETTINGS' + json.dumps({"
        "'memory_limit': s.ANALYTICS_MEMORY_LIMIT, 'threads': s.ANALYTICS_THREADS, "
        "'spill_dir': str(s.ANALYTICS_SPILL_DIR), 'analytics_dir': str(s.ANALYTICS_DIR)}))"
    )
    out = manage(tree, env, "shell", "-c", code)
    return json.loads(next(line for line in out.splitlines() if line.startswith("SETTINGS"))[len("SETTINGS") :])


# ---------------------------------------------------------------- the web process and its API


class Web:
    """One uvicorn process (no --workers: the server is the process whose memory we read)."""

    def __init__(self, tree: Path, env: dict, log: Path):
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "uvicorn", "analytics_platform.asgi:application", "--host", HOST, "--port", str(PORT)]
            + ["--no-access-log", "--log-level", "warning", "--ws-per-message-deflate", "false"],
            cwd=tree,
            env=env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        self.log = log
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"the web process exited ({self.log})")
            try:
                urllib.request.urlopen(f"http://{HOST}:{PORT}/health", timeout=2)
                return
            except OSError:
                time.sleep(0.2)
        raise SystemExit(f"the web process did not come up ({self.log})")

    def memory_kb(self) -> dict:
        status = Path(f"/proc/{self.proc.pid}/status").read_text().splitlines()
        return {line.split(":")[0]: int(line.split()[1]) for line in status if line.startswith(("VmHWM", "VmRSS"))}

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def api(method: str, path: str, key: str, body=None) -> tuple[float, int, object]:
    """(milliseconds, status, decoded body) of one request on a new connection."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://{HOST}:{PORT}{path}", data=data, method=method)
    request.add_header("X-API-Key", key)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=900) as response:  # noqa: S310  (http://HOST:PORT only)
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    elapsed = (time.perf_counter() - started) * 1000
    return elapsed, status, json.loads(raw) if raw else None


def api_key(tree: Path, env: dict, size: int) -> str:
    """A read+admin key of the demo project, kept under BENCH_DIR while it still works."""
    saved = BENCH_DIR / str(size) / "api-key"
    if saved.is_file():
        return saved.read_text().strip()
    args = ["--org", "Demo", "--project", "Demo", "--scopes", "read,admin", "--name", "bench_cs"]
    out = manage(tree, env, "createapikey", *args, "--rate-limit", "1000000000")  # reruns stay under it
    key = out.strip().splitlines()[-1]
    saved.write_text(key + "\n")
    return key


def funnel_id(key: str) -> int:
    """The benchmark's funnel, created through the API the first time."""
    definition = {
        "name": FUNNEL_NAME,
        "steps": [{"eventName": name} for name in FUNNEL_STEPS],
        "conversionWindow": FUNNEL_WINDOW,
        "order": "ordered",
    }
    path = "/api/v1/funnels"
    while path:
        _, status, page = api("GET", path, key)
        if status != 200:
            raise SystemExit(f"GET /api/v1/funnels answered {status}: {page}")
        for funnel in page["results"]:
            steps = [step["eventName"] for step in funnel["steps"]]
            same = steps == FUNNEL_STEPS and not any(
                step.get("filters") or step.get("timeWindow") for step in funnel["steps"]
            )
            if funnel["name"] == FUNNEL_NAME and same and funnel["conversionWindow"] == FUNNEL_WINDOW:
                return funnel["id"]
        path = page["next"] and page["next"].split(f"{HOST}:{PORT}", 1)[-1]
    _, status, funnel = api("POST", "/api/v1/funnels", key, definition)
    if status != 201:
        raise SystemExit(f"POST /api/v1/funnels answered {status}: {funnel}")
    return funnel["id"]


# ---------------------------------------------------------------- the same questions, hand-written
#
# Written from API.md's definitions, not from the runners. Ranges are whole local days of the
# project's timezone, [start, end) in UTC; `files` are the catalog's live files, each with its
# UTC day, and every statement reads only the days its range can touch.


def local_midnight(day: date, tz: zoneinfo.ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


class Mirror:
    def __init__(self, files: list[dict], analytics: Path, tz_name: str, engine: dict, spill: Path):
        self.files, self.analytics, self.tz_name, self.engine = files, analytics, tz_name, engine
        self.tz = zoneinfo.ZoneInfo(tz_name)
        self.spill = spill

    def read(self, start: datetime | None, end: datetime) -> str:
        """read_parquet over the live files whose UTC day intersects [start, end)."""
        first = start.astimezone(UTC).date() if start is not None else date.min
        last = (end - timedelta(microseconds=1)).astimezone(UTC).date()
        paths = sorted(str(self.analytics / f["path"]) for f in self.files if first <= f["day"] <= last)
        return "read_parquet([" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "])"

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A fresh DuckDB database with the web process's bounds (warehouse/engine.py)."""
        self.spill.mkdir(parents=True, exist_ok=True)
        config = {
            "memory_limit": self.engine["memory_limit"],
            "threads": self.engine["threads"],
            "temp_directory": str(self.spill),
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
        }
        con = duckdb.connect(":memory:", config=config)
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")  # stdout is the report's
        return con


def sql_funnel(m: Mirror, first_day: date, last_day: date) -> list[tuple]:
    """API.md "Funnels", ordered, no filters or per-step windows: every step-1 event inside the
    range starts an attempt; each next step is the earliest matching event after the previous
    one in (timestamp, id) order (one event fills one step) within t1 + window, inclusive; per
    user the furthest attempt wins, the earliest among equals. -> [(users, avg s, median s)]."""
    start, end = local_midnight(first_day, m.tz), local_midnight(last_day + timedelta(days=1), m.tz)
    window = timedelta(seconds=FUNNEL_WINDOW)
    names = {f"s{n}": name for n, name in enumerate(FUNNEL_STEPS, 1)}
    chain, previous = [], "step1"
    for n in range(2, len(FUNNEL_STEPS) + 1):
        inside = "s.ts <= a.t1 + $window"
        chain.append(
            f"""step{n} AS (
            SELECT a.*, CASE WHEN {inside} THEN s.ts END AS t{n}, CASE WHEN {inside} THEN s.seq END AS q{n}
            FROM {previous} a ASOF LEFT JOIN (SELECT user_id, ts, seq FROM events WHERE event_name = $s{n}) s
              ON a.user_id = s.user_id AND s.seq > a.q{n - 1})"""
        )
        previous = f"step{n}"
    reached = " + ".join(["1"] + [f"(t{n} IS NOT NULL)::INT" for n in range(2, len(FUNNEL_STEPS) + 1)])
    gaps = ", ".join(f"(epoch_us(t{n}) - epoch_us(t{n - 1})) / 1e6 AS gap{n}" for n in range(2, len(FUNNEL_STEPS) + 1))
    stats = ["count(*)"]
    for n in range(2, len(FUNNEL_STEPS) + 1):
        only = f"FILTER (WHERE reached >= {n})"
        stats += [f"count(*) {only}", f"avg(gap{n}) {only}", f"median(gap{n}) {only}"]
    sql = f"""
    WITH events AS (
        SELECT user_id, event_name, "timestamp" AS ts,
               epoch_us("timestamp")::HUGEINT * 1000000000 + id AS seq  -- (timestamp, id) order; ids < 1e9
        FROM {m.read(start, end + window + timedelta(microseconds=1))}
        WHERE "timestamp" >= $start AND "timestamp" <= $end + $window
          AND event_name IN ({", ".join(f"${k}" for k in names)})
    ),
    step1 AS (SELECT user_id, ts AS t1, seq AS q1 FROM events WHERE event_name = $s1 AND ts < $end),
    {", ".join(chain)},
    attempts AS (SELECT *, {reached} AS reached, {gaps} FROM {previous}),
    best AS (SELECT * FROM attempts QUALIFY row_number() OVER (PARTITION BY user_id ORDER BY reached DESC, q1) = 1)
    SELECT {", ".join(stats)} FROM best
    """
    with m.connect() as con:
        row = con.execute(sql, {"start": start, "end": end, "window": window, **names}).fetchone()
    steps = [(row[0], None, None)]
    for n in range(len(FUNNEL_STEPS) - 1):
        steps.append(tuple(row[1 + 3 * n : 4 + 3 * n]))
    return steps


def sql_retention(m: Mirror, first_day: date, last_day: date, now: datetime) -> list[tuple]:
    """API.md "Retention", first_time, daily: a user's cohort is the local day of their
    first-ever cohort event, if inside the range; period k counts the cohort's users with any
    event on cohort day + k (also after the range), null until that day has ended.
    -> [(cohort day, size, [retained 0..periods])] for every day of the range."""
    start, end = local_midnight(first_day, m.tz), local_midnight(last_day + timedelta(days=1), m.tz)
    horizon = local_midnight(last_day + timedelta(days=1 + RETENTION_PERIODS), m.tz)
    sql = f"""
    WITH first_seen AS (
        SELECT user_id, min("timestamp") AS first_at FROM {m.read(None, end)}
        WHERE event_name = $cohort GROUP BY user_id
    ),
    cohort AS (
        SELECT user_id, timezone($tz, first_at)::DATE AS cohort_day FROM first_seen
        WHERE first_at >= $start AND first_at < $end
    ),
    returns AS (
        SELECT DISTINCT c.user_id, c.cohort_day,
               date_diff('day', c.cohort_day, timezone($tz, e."timestamp")::DATE) AS period
        FROM {m.read(start, horizon)} e JOIN cohort c ON c.user_id = e.user_id
        WHERE e."timestamp" >= $start AND e."timestamp" < $horizon
    )
    SELECT cohort_day, 0 AS period, count(*) FROM cohort GROUP BY cohort_day
    UNION ALL
    SELECT cohort_day, period, count(*) FROM returns WHERE period BETWEEN 1 AND $periods GROUP BY cohort_day, period
    """
    params = {"cohort": RETENTION_COHORT, "tz": m.tz_name, "start": start, "end": end, "horizon": horizon}
    with m.connect() as con:
        rows = con.execute(sql, {**params, "periods": RETENTION_PERIODS}).fetchall()
    counts = {(day, period): n for day, period, n in rows}
    grid, day = [], first_day
    while day <= last_day:
        retained = []
        for k in range(RETENTION_PERIODS + 1):
            ended = local_midnight(day + timedelta(days=k + 1), m.tz) <= now
            retained.append(counts.get((day, k), 0) if ended or k == 0 else None)
        grid.append((day, retained[0], retained))
        day += timedelta(days=1)
    return grid


def sql_metrics(m: Mirror, first_day: date, last_day: date) -> list[tuple]:
    """API.md "Metrics", daily, all events: per local day, events and distinct users, every
    day present. -> [(day, count, unique users)]."""
    start, end = local_midnight(first_day, m.tz), local_midnight(last_day + timedelta(days=1), m.tz)
    sql = f"""
    SELECT timezone($tz, "timestamp")::DATE AS day, count(*), count(DISTINCT user_id)
    FROM {m.read(start, end)} WHERE "timestamp" >= $start AND "timestamp" < $end GROUP BY day
    """
    with m.connect() as con:
        rows = {
            day: (n, users)
            for day, n, users in con.execute(sql, {"tz": m.tz_name, "start": start, "end": end}).fetchall()
        }
    days = [first_day + timedelta(days=i) for i in range((last_day - first_day).days + 1)]
    return [(day, *rows.get(day, (0, 0))) for day in days]


def sql_summary(m: Mirror, first_day: date, last_day: date) -> tuple:
    """API.md summary: totals over the range and the 10 most frequent events (count, then
    name). -> (events, users, first at, last at, [(event, count, users)])."""
    start, end = local_midnight(first_day, m.tz), local_midnight(last_day + timedelta(days=1), m.tz)
    sql = f"""
    SELECT event_name, count(*), count(DISTINCT user_id), min("timestamp"), max("timestamp")
    FROM {m.read(start, end)} WHERE "timestamp" >= $start AND "timestamp" < $end
    GROUP BY GROUPING SETS ((), (event_name))
    """
    with m.connect() as con:
        rows = con.execute(sql, {"start": start, "end": end}).fetchall()
    total = next((r for r in rows if r[0] is None), (None, 0, 0, None, None))
    top = sorted((r[:3] for r in rows if r[0] is not None), key=lambda r: (-r[1], r[0]))[:10]
    return (total[1], total[2], total[3], total[4], [tuple(r) for r in top])


# ---------------------------------------------------------------- our answers, in the same shapes


def ours_funnel(body: dict) -> list[tuple]:
    return [(s["users"], s["avgTimeToConvertSeconds"], s["medianTimeToConvertSeconds"]) for s in body["steps"]]


def ours_retention(body: dict) -> list[tuple]:
    return [(date.fromisoformat(c["cohortStart"]), c["size"], c["retained"]) for c in body["cohorts"]]


def ours_metrics(body: dict) -> list[tuple]:
    return [(datetime.fromisoformat(b["start"]).date(), b["count"], b["uniqueUsers"]) for b in body["buckets"]]


def ours_summary(body: dict) -> tuple:
    def moment(text):
        return datetime.fromisoformat(text) if text else None

    top = [(e["eventName"], e["count"], e["uniqueUsers"]) for e in body["topEvents"]]
    return (body["totalEvents"], body["uniqueUsers"], moment(body["firstEventAt"]), moment(body["lastEventAt"]), top)


def differences(ours, theirs, path: str = "") -> list[str]:
    """Where two answers differ (floats within 1e-6 relative, datetimes as instants)."""
    if isinstance(ours, list | tuple) and isinstance(theirs, list | tuple):
        if len(ours) != len(theirs):
            return [f"{path or 'answer'}: {len(ours)} items vs {len(theirs)}"]
        return [d for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) for d in differences(a, b, f"{path}[{i}]")]
    if isinstance(ours, float) or isinstance(theirs, float):
        if ours is not None and theirs is not None and abs(ours - theirs) <= 1e-6 * max(1.0, abs(theirs)):
            return []
    elif ours == theirs:
        return []
    return [f"{path}: ours {ours!r} vs SQL {theirs!r}"]


# ---------------------------------------------------------------- one size


def target_text(question: str) -> str:
    ratio, ms = TARGETS.get(question, (None, None))
    parts = ([f"<= {ratio:.1f}x SQL"] if ratio is not None else []) + ([f"<= {ms:,} ms"] if ms else [])
    return " and ".join(parts)


def verdict(question: str, ours_ms: float, ratio: float | None) -> str | None:
    if question not in TARGETS:
        return None
    max_ratio, max_ms = TARGETS[question]
    met = (max_ratio is None or (ratio is not None and ratio <= max_ratio)) and (max_ms is None or ours_ms <= max_ms)
    return "met" if met else "missed"


def last_local_day(m: Mirror) -> date:
    """The local date of the newest event (in the newest UTC day's file)."""
    newest = max(f["day"] for f in m.files)
    newest_file = m.read(local_midnight(newest, UTC), local_midnight(newest + timedelta(days=1), UTC))
    with m.connect() as con:
        moment = con.execute(f'SELECT max("timestamp") FROM {newest_file}').fetchone()[0]
    return moment.astimezone(m.tz).date()


def storage(db: str, files: list[dict], events: int) -> dict:
    mirror_bytes, mirror_rows = sum(f["bytes"] for f in files), sum(f["rows"] for f in files)
    with psycopg.connect(database_url(db), autocommit=True) as conn:
        total, heap, indexes, outbox, outbox_rows = conn.execute(
            "SELECT pg_total_relation_size('events_event'), pg_relation_size('events_event'), "
            "pg_indexes_size('events_event'), pg_total_relation_size('warehouse_outbox'), "
            "(SELECT coalesce(sum(events), 0) FROM warehouse_outbox)"
        ).fetchone()
        index_sizes = dict(
            conn.execute(
                "SELECT indexrelname, pg_relation_size(indexrelid) FROM pg_stat_user_indexes "
                "WHERE relname = 'events_event' ORDER BY 1"
            ).fetchall()
        )
        # The outbox holds a row per write until its export: its cost per event, filled for real.
        sample = min(events, 1_000_000)
        conn.execute("CREATE TEMPORARY TABLE bench_outbox (LIKE warehouse_outbox INCLUDING ALL)")
        conn.execute(
            "INSERT INTO bench_outbox (project_id, event_ids, events) SELECT project_id, array_agg(id), count(*) "
            "FROM (SELECT id, project_id, (row_number() OVER ()) / 1000 AS write FROM events_event LIMIT %s) t "
            "GROUP BY project_id, write",
            [sample],
        )
        conn.execute("VACUUM ANALYZE bench_outbox")
        outbox_full = conn.execute("SELECT pg_total_relation_size('bench_outbox')").fetchone()[0]
        conn.execute("DROP TABLE bench_outbox")
    return {
        "mirror": {"files": len(files), "rows": mirror_rows, "bytes": mirror_bytes},
        "mirror_bytes_per_event": round(mirror_bytes / mirror_rows, 2),
        "events_event": {"total_bytes": total, "heap_bytes": heap, "index_bytes": indexes, "indexes": index_sizes},
        "events_event_bytes_per_event": round(total / events, 1),
        "outbox_now": {"events": outbox_rows, "total_bytes": outbox},
        "outbox_bytes_per_event": round(outbox_full / sample, 1),
    }


def measure_size(size: int, tree: Path) -> dict:
    print(f"\n== {size:,} events", flush=True)
    seeded = ensure_seeded(size, tree)
    db, project_id = seeded["database"], seeded["project_id"]
    env = app_env(size)
    engine = engine_settings(tree, env)
    tz_name = pg(db, "SELECT timezone FROM accounts_project WHERE id = %s", [project_id])[0][0]
    if pg(db, "SELECT max(id) FROM events_event")[0][0] >= 10**9:
        raise SystemExit(f"{db}: ids past 1e9, the SQL funnel's (timestamp, id) key would overlap")
    files = mirror_files(db, project_id)
    mirror = Mirror(files, Path(engine["analytics_dir"]), tz_name, engine, BENCH_DIR / str(size) / "spill-sql")
    last = last_local_day(mirror)

    def days(n: int) -> tuple[date, date, str]:
        first = last - timedelta(days=n - 1)
        return first, last, f"startDate={first.isoformat()}&endDate={last.isoformat()}"

    log = BENCH_DIR / str(size) / "web.log"
    web = Web(tree, env, log)
    result = {"seeded": seeded, "engine": engine, "timezone": tz_name, "last_day": last.isoformat(), "questions": {}}
    result["load_before"] = os.getloadavg()
    try:
        key = api_key(tree, env, size)
        if api("GET", "/api/v1/project", key)[1] != 200:  # a key of an older database
            (BENCH_DIR / str(size) / "api-key").unlink()
            key = api_key(tree, env, size)
        fid = funnel_id(key)
        f1, f2, f_range = days(FUNNEL_DAYS)
        r1, r2, r_range = days(RETENTION_DAYS)
        m1, m2, m_range = days(METRICS_DAYS)
        s1, s2, s_range = days(SUMMARY_DAYS)
        retention = f"cohort={RETENTION_COHORT}&period=day&periods={RETENTION_PERIODS}&type=first_time"
        plan = {
            "funnel": (f"/api/v1/funnels/{fid}/analytics?{f_range}", ours_funnel, lambda: sql_funnel(mirror, f1, f2)),
            "retention": (
                f"/api/v1/retention?{retention}&{r_range}",
                ours_retention,
                lambda: sql_retention(mirror, r1, r2, datetime.now(UTC)),
            ),
            "metrics": (f"/api/v1/metrics?interval=day&{m_range}", ours_metrics, lambda: sql_metrics(mirror, m1, m2)),
            "summary": (f"/api/v1/events/summary?{s_range}", ours_summary, lambda: sql_summary(mirror, s1, s2)),
            "journey": (f"/api/v1/users/user_0000042/journey?{s_range}", None, None),
        }
        warm = api("GET", f"/api/v1/events/summary?startDate={last}&endDate={last}", key)
        if warm[1] != 200:
            raise SystemExit(f"warm-up answered {warm[1]}: {warm[2]}")
        memory_before = web.memory_kb()
        for question, (path, shape, handwritten) in plan.items():
            ours_ms, sql_ms, diffs = [], [], []
            for _ in range(RUNS):
                ms, status, body = api("GET", path, key)
                if status != 200:
                    raise SystemExit(f"{question}: GET {path} answered {status}: {body} (log: {log})")
                ours_ms.append(round(ms, 1))
                if handwritten is not None:
                    started = time.perf_counter()
                    theirs = handwritten()
                    sql_ms.append(round((time.perf_counter() - started) * 1000, 1))
                    diffs += differences(shape(body), theirs)
            entry = {"path": path, "ours_ms": ours_ms, "ours_median_ms": statistics.median(ours_ms)}
            if handwritten is not None:
                entry.update(sql_ms=sql_ms, sql_median_ms=statistics.median(sql_ms), equal=not diffs, diffs=diffs[:10])
                entry["ratio"] = round(entry["ours_median_ms"] / entry["sql_median_ms"], 2)
                if question == "funnel":
                    entry["steps"] = [list(step) for step in theirs]
            entry["target"] = verdict(question, entry["ours_median_ms"], entry.get("ratio"))
            result["questions"][question] = entry
            if question == "funnel":
                after = web.memory_kb()
                result["web_memory_mb"] = {
                    "rss_before_funnel": round(memory_before["VmRSS"] / 1024),
                    "peak_through_funnel": round(after["VmHWM"] / 1024),
                    "rss_after_funnel": round(after["VmRSS"] / 1024),
                }
            flag = "" if entry.get("equal", True) else "  FAIL: answers differ"
            sql = f", SQL {entry['sql_median_ms']:,.0f} ms" if handwritten is not None else ""
            print(f"  {question}: ours {entry['ours_median_ms']:,.0f} ms{sql}{flag}", flush=True)
        result["web_memory_mb"]["peak_whole_run"] = round(web.memory_kb()["VmHWM"] / 1024)
    finally:
        web.stop()
    result["load_after"] = os.getloadavg()
    result["storage"] = storage(db, files, size)
    return result


# ---------------------------------------------------------------- ingestion before / after


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs so far (/proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def ingest_once(label: str, tree: Path) -> dict:
    """bench/ingest.py's measurements (raw COPY, 1,000-event batches, single events) against
    the code in `tree`, in the database bench_cs_ingest_<label>."""
    ingest.ROOT, ingest.DB_NAME, ingest.REDIS_URL, ingest.PORT = tree, f"bench_cs_ingest_{label}", REDIS_URL, PORT + 1
    analytics = BENCH_DIR / f"ingest-{label}" / "analytics"
    subprocess.run(["rm", "-rf", str(analytics)], check=True)
    saved = os.environ.get("ANALYTICS_DIR")
    os.environ["ANALYTICS_DIR"] = str(analytics)  # ingest.stack_env() passes os.environ on
    try:
        key = ingest.prepare()
        out = {"raw_copy": ingest.raw_copy_rate()}
        # the outbox of the tree served: a row per write, a row per event before, or none
        outbox = pg(
            ingest.DB_NAME, "SELECT coalesce(to_regclass('warehouse_outbox'), to_regclass('warehouse_pending'))"
        )
        has_outbox = outbox[0][0] is not None
        stack = ingest.Stack()
        try:
            for name, per_request, total, clients in (
                ("batches", 1000, ingest.BATCHES * 1000, ingest.BATCH_CLIENTS),
                ("singles", 1, ingest.SINGLES, ingest.SINGLE_CLIENTS),
            ):
                cpu, busy, started = live.cpu_by_role(stack), machine_busy(), time.perf_counter()
                scenario = ingest.scenario(name, per_request, total, clients, key)
                after, busy_after = live.cpu_by_role(stack), machine_busy()
                scenario["cpu_seconds"] = {role: round(after[role] - cpu[role], 1) for role in after}
                scenario["machine_busy"] = round((busy_after[0] - busy[0]) / max(busy_after[1] - busy[1], 1), 2)
                if has_outbox:  # until the exports have moved every event into the mirror
                    while pg(ingest.DB_NAME, f"SELECT count(*) FROM {outbox[0][0]}")[0][0]:
                        if time.perf_counter() - started > 300:
                            break
                        time.sleep(0.05)
                    scenario["mirrored_s"] = round(time.perf_counter() - started, 2)
                out[name] = scenario
        finally:
            stack.stop()
        out["peak_rss_mb"] = {role: round(kb / 1024, 1) for role, kb in stack.peak.items()}
        return out
    finally:
        if saved is None:
            os.environ.pop("ANALYTICS_DIR", None)
        else:
            os.environ["ANALYTICS_DIR"] = saved


def ingestion(after_tree: Path) -> dict:
    """Before (INGEST_BEFORE) and after (the served commit), alternated, medians."""
    before_tree = worktree(INGEST_BEFORE)
    runs: dict[str, list] = {"before": [], "after": []}
    for round_number in range(INGEST_ROUNDS):
        for label, tree in (("before", before_tree), ("after", after_tree)):
            print(f"  ingestion {label} ({tree.name}), round {round_number + 1} of {INGEST_ROUNDS}", flush=True)
            runs[label].append(ingest_once(label, tree))
    medians = {}
    for label, results in runs.items():
        medians[label] = {
            "commit": git("rev-parse", "HEAD", cwd=before_tree if label == "before" else after_tree),
            "raw_copy_events_per_s": statistics.median(r["raw_copy"]["events_per_s"] for r in results),
            "peak_rss_mb": {role: max(r["peak_rss_mb"][role] for r in results) for role in ("web", "worker")},
        }
        for name in ("batches", "singles"):
            medians[label][name] = {
                field: statistics.median(r[name][field] for r in results)
                for field in ("events_per_s", "p50_ms", "p99_ms", "machine_busy")
            }
            medians[label][name]["cpu_seconds"] = {
                role: statistics.median(r[name]["cpu_seconds"][role] for r in results)
                for role in results[0][name]["cpu_seconds"]
            }
            if "mirrored_s" in results[0][name]:
                medians[label][name]["mirrored_s"] = statistics.median(r[name]["mirrored_s"] for r in results)
    return {"runs": runs, "medians": medians, "load": {"batches": ingest.BATCHES, "singles": ingest.SINGLES}}


# ---------------------------------------------------------------- the report


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def print_size(size: int, r: dict) -> None:
    s, mem, engine = r["storage"], r["web_memory_mb"], r["engine"]
    reused = "reused" if r["seeded"]["reused"] else f"seeded in {r['seeded'].get('seed_s')} s"
    print(
        f"\n{size:,} events: {r['seeded']['database']} ({reused}), ranges ending {r['last_day']} ({r['timezone']}), "
        f"DuckDB {engine['memory_limit']} / {engine['threads']} threads on both sides; median of {RUNS}, cold, ms; "
        f"load average {r['load_before'][0]:.2f} -> {r['load_after'][0]:.2f}"
    )
    print(f"{'question':52}{'ours, HTTP':>11}{'SQL':>9}{'ours/SQL':>10}  {'answers':9}target")
    for question, q in r["questions"].items():
        sql = f"{q['sql_median_ms']:>9,.0f}" if "sql_median_ms" in q else f"{'':>9}"
        ratio = f"{q['ratio']:>9.2f}x" if "ratio" in q else f"{'':>10}"
        answers = ("equal" if q["equal"] else "FAIL") if "equal" in q else ""
        target = f"{target_text(question)}: {q['target']}" if q["target"] else ""
        print(f"{QUESTIONS[question]:52}{q['ours_median_ms']:>11,.0f}{sql}{ratio}  {answers:9}{target}")
        for diff in q.get("diffs", [])[:5]:
            print(f"    FAIL {diff}")
    steps = r["questions"]["funnel"].get("steps")
    if steps:
        print("funnel users per step: " + " / ".join(f"{users:,}" for users, *_ in steps))
    print(
        f"web process RSS: {mem['rss_before_funnel']} MB before the funnel, peak {mem['peak_through_funnel']} MB "
        f"through it (VmHWM), {mem['rss_after_funnel']} MB after; peak over the whole run {mem['peak_whole_run']} MB"
    )
    pg_bytes = s["events_event"]
    print(
        f"bytes per event: mirror {s['mirror_bytes_per_event']} ({s['mirror']['files']} live files, "
        f"{s['mirror']['bytes'] / 2**20:,.1f} MiB); PostgreSQL events_event {s['events_event_bytes_per_event']} "
        f"(heap {pg_bytes['heap_bytes'] / size:.1f} + indexes {pg_bytes['index_bytes'] / size:.1f} + toast/maps); "
        f"outbox {s['outbox_bytes_per_event']} per waiting event ({s['outbox_now']['events']} waiting now)"
    )


def print_summary(report: dict) -> None:
    sizes = list(report["sizes"])
    print(f"\nSummary: cold, median of {RUNS}, ms (ours over HTTP / hand-written DuckDB SQL, ratio)")
    print(f"{'':52}" + "".join(f"{int(s) / 1e6:>6g}M: ours / SQL / ratio" for s in sizes) + "   target (issue 11, 10M)")
    for question in QUESTIONS:
        cells = ""
        for size in sizes:
            q = report["sizes"][size]["questions"][question]
            if "sql_median_ms" in q:
                mark = "" if q["equal"] else " FAIL"
                cells += f"{q['ours_median_ms']:>12,.0f} / {q['sql_median_ms']:>6,.0f} / {q['ratio']:>4.2f}x{mark}"
            else:
                cells += f"{q['ours_median_ms']:>12,.0f}{'':>17}"
        last = report["sizes"][sizes[-1]]["questions"][question]
        target = f"   {target_text(question)}: {last['target']} at {int(sizes[-1]):,}" if last["target"] else ""
        print(f"{QUESTIONS[question]:52}{cells}{target}")
    print(
        f"{'peak RSS of the web process, funnel (MB)':52}"
        + "".join(f"{report['sizes'][s]['web_memory_mb']['peak_through_funnel']:>29}" for s in sizes)
    )
    print(
        f"{'bytes/event: mirror / events_event':52}"
        + "".join(
            f"{report['sizes'][s]['storage']['mirror_bytes_per_event']:>20} / "
            f"{report['sizes'][s]['storage']['events_event_bytes_per_event']:>6}"
            for s in sizes
        )
    )
    failed = [f"{s} {q}" for s in sizes for q, v in report["sizes"][s]["questions"].items() if v.get("equal") is False]
    print("answers: " + (f"FAIL ({', '.join(failed)})" if failed else "all equal"))


def print_ingestion(ing: dict) -> None:
    before, after = ing["medians"]["before"], ing["medians"]["after"]
    print(
        f"\nIngestion (bench/ingest.py's stack and load: {ing['load']['batches']} x 1,000-event batches from 4 "
        f"clients, {ing['load']['singles']:,} single events from 32; medians of {INGEST_ROUNDS} alternated runs)"
    )
    print(f"{'':44}{'before ' + before['commit'][:7]:>16}{'after ' + after['commit'][:7]:>16}{'after/before':>14}")

    def row(label, a, b, fmt="{:,.0f}"):
        ratio = f"{b / a:>13.2f}x" if a else ""
        print(f"{label:44}{fmt.format(a):>16}{fmt.format(b):>16}{ratio}")

    row("raw COPY, 1,000-row batches, events/s", before["raw_copy_events_per_s"], after["raw_copy_events_per_s"])
    for name, label in (("batches", "end to end, 1,000 events/request"), ("singles", "end to end, 1 event/request")):
        b, a = before[name], after[name]
        row(f"{label}, events/s", b["events_per_s"], a["events_per_s"])
        row("  p50 ms", b["p50_ms"], a["p50_ms"], "{:,.1f}")
        row("  p99 ms", b["p99_ms"], a["p99_ms"], "{:,.1f}")
        for role in ("bench_clients", "web", "worker"):
            who = "load generator" if role == "bench_clients" else role
            row(f"  CPU s, {who}", b["cpu_seconds"][role], a["cpu_seconds"][role], "{:,.1f}")
        row("  machine busy (both cores)", b["machine_busy"], a["machine_busy"], "{:.0%}")
        if "mirrored_s" in a:
            print(f"{'  all in the mirror after, s':44}{'':>16}{a['mirrored_s']:>16,.1f}")
    for role in ("web", "worker"):
        row(f"peak RSS per {role} process, MB", before["peak_rss_mb"][role], after["peak_rss_mb"][role])


def main():
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    tree, app = app_tree()
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "uptime_before": uptime(),
        "app": app,
        "runs": RUNS,
        "cache": "CACHE_TTL_SECONDS=0: no answer is cached",
        "sizes": {},
    }
    print(f"serving {app['commit'][:12]} from {app['tree']}; {report['uptime_before']}", flush=True)
    if app["uncommitted"]:
        print(f"  (uncommitted app changes served: {', '.join(app['uncommitted'])})")
    try:
        for size in SIZES:
            report["sizes"][str(size)] = measure_size(size, tree)
        if INGEST:
            print("\n== ingestion before / after", flush=True)
            report["ingestion"] = ingestion(tree)
    finally:
        worktrees_remove()  # re-adding one takes seconds
    report["uptime_after"] = uptime()
    out = ROOT / "bench" / "results" / f"queries-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    for size, r in report["sizes"].items():
        print_size(int(size), r)
    if report["sizes"]:
        print_summary(report)
    if INGEST:
        print_ingestion(report["ingestion"])
    print(f"\nbefore: {report['uptime_before']}\nafter:  {report['uptime_after']}")
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
