"""Ingestion benchmark (a report, not a test): `python bench/ingest.py` or `make bench`.

Starts the real stack on this machine — uvicorn (ASGI) web processes and `rqworker`
processes against PostgreSQL and Redis — in a throwaway database, then measures:

- the raw limit: psycopg COPY of 1,000-row batches straight into a table with the events
  table's indexes and unique constraint;
- end to end: events/s from the first request until every accepted event is a row, for
  1,000-event batches from several concurrent clients and for single-event posts from many;
  request latency p50/p99; the ratio end to end / raw COPY;
- peak RSS of each web and worker process.

Environment: BENCH_PG (a maintenance database URL, default postgresql://postgres@127.0.0.1:5432/postgres),
BENCH_REDIS_URL (default redis://127.0.0.1:6379/14, flushed), BENCH_WEB_WORKERS (2), BENCH_RQ_WORKERS (2),
BENCH_BATCHES (100), BENCH_SINGLES (20000), BENCH_BUFFER_TIMEOUT_MS (the stack's EVENT_BUFFER_TIMEOUT_MS, 1000).
"""

import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from events.validation import COLUMNS  # noqa: E402  (the same column order the app writes)

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
WEB_WORKERS = int(os.environ.get("BENCH_WEB_WORKERS", "2"))
RQ_WORKERS = int(os.environ.get("BENCH_RQ_WORKERS", "2"))
BATCHES = int(os.environ.get("BENCH_BATCHES", "100"))
SINGLES = int(os.environ.get("BENCH_SINGLES", "20000"))
BATCH_CLIENTS = 4
SINGLE_CLIENTS = 32
HOST, PORT = "127.0.0.1", 8765
DB_NAME = "bench_ingest"
PYTHON = sys.executable
LOG_DIR = Path(os.environ.get("BENCH_LOG_DIR") or tempfile.mkdtemp(prefix="bench-ingest-"))
LOG_DIR.mkdir(parents=True, exist_ok=True)


def database_url(name: str) -> str:
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def stack_env() -> dict:
    return {
        **os.environ,
        "DATABASE_URL": database_url(DB_NAME),
        "REDIS_URL": REDIS_URL,
        "SECRET_KEY": secrets.token_urlsafe(32),
        "DEBUG": "0",
        "ALLOWED_HOSTS": HOST,
        "LOG_LEVEL": "WARNING",
        "EVENT_BUFFER_TIMEOUT_MS": os.environ.get("BENCH_BUFFER_TIMEOUT_MS", "1000"),
    }


def prepare() -> str:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    redis.Redis.from_url(REDIS_URL).flushdb()
    env = stack_env()
    subprocess.run([PYTHON, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    out = subprocess.run(
        [
            PYTHON,
            "manage.py",
            "createapikey",
            "--org",
            "Bench",
            "--project",
            "Bench",
            "--scopes",
            "ingest,read",
            "--rate-limit",
            "1000000000",
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


def make_rows(n: int, tag: str) -> list[list]:
    base = datetime.now(UTC) - timedelta(days=1)
    return [
        [
            f"{tag}-{i}",
            f"user_{i % 5000}",
            ("page_view", "add_to_cart", "purchase")[i % 3],
            (base + timedelta(milliseconds=i)).isoformat(),
            json.dumps({"path": f"/p/{i % 50}", "n": i}),
            f"s-{i % 900}",
            f"/p/{i % 50}",
            "bench/1.0",
            "10.0.0.1",
            base.isoformat(),
        ]
        for i in range(n)
    ]


def raw_copy_rate() -> dict:
    """COPY 1,000-row batches, one transaction each, into a copy of the events table."""
    rows = make_rows(BATCHES * 1000, "raw")
    columns = ", ".join(COLUMNS)
    with psycopg.connect(database_url(DB_NAME)) as conn:
        conn.execute("CREATE TABLE bench_raw (LIKE events_event INCLUDING ALL)")
        conn.commit()
        started = time.perf_counter()
        for b in range(BATCHES):
            with conn.cursor() as cur, cur.copy(f"COPY bench_raw (project_id, {columns}) FROM STDIN") as copy:
                for row in rows[b * 1000 : (b + 1) * 1000]:
                    copy.write_row([1, *row])
            conn.commit()
        elapsed = time.perf_counter() - started
        conn.execute("DROP TABLE bench_raw")
        conn.commit()
    return {"events": len(rows), "seconds": round(elapsed, 3), "events_per_s": round(len(rows) / elapsed)}


class Stack:
    def __init__(self):
        env = stack_env()
        self.web = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "uvicorn",
                "analytics_platform.asgi:application",
                "--host",
                HOST,
                "--port",
                str(PORT),
                "--workers",
                str(WEB_WORKERS),
                "--no-access-log",
                "--log-level",
                "warning",
                "--ws-per-message-deflate",  # as `make serve` and the Dockerfile run it
                "false",
            ],
            cwd=ROOT,
            env=env,
            stdout=(LOG_DIR / "web.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        self.workers = [
            subprocess.Popen(
                [PYTHON, "manage.py", "rqworker", "default", "--with-scheduler"],
                cwd=ROOT,
                env=env,
                stdout=(LOG_DIR / f"worker-{n}.log").open("ab"),
                stderr=subprocess.STDOUT,
            )
            for n in range(RQ_WORKERS)
        ]
        self.peak = {"web": 0, "worker": 0}
        self._stop = threading.Event()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://{HOST}:{PORT}/health", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise SystemExit("the web server did not come up")
        time.sleep(1.0)  # let the workers finish importing
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self):
        while not self._stop.is_set():
            for role, roots in (("web", [self.web.pid]), ("worker", [w.pid for w in self.workers])):
                for pid in tree(roots):
                    self.peak[role] = max(self.peak[role], rss_kb(pid))
            time.sleep(0.1)

    def stop(self):
        self._stop.set()
        for proc in [self.web, *self.workers]:
            proc.terminate()
        for proc in [self.web, *self.workers]:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def tree(roots: list[int]) -> set[int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = set(roots), list(roots)
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in found:
                found.add(child)
                frontier.append(child)
    return found


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


async def client(bodies: list[bytes], key: str, latencies: list[float], accepted: list[int]):
    reader, writer = await asyncio.open_connection(HOST, PORT)
    head = (
        f"POST /api/v1/events HTTP/1.1\r\nHost: {HOST}\r\nX-API-Key: {key}\r\n"
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n"
    )
    for body in bodies:
        started = time.perf_counter()
        writer.write(head.format(len(body)).encode() + body)
        status_line = await reader.readline()
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        payload = await reader.readexactly(length)
        latencies.append(time.perf_counter() - started)
        if b" 202 " not in status_line:
            raise SystemExit(f"unexpected answer: {status_line!r} {payload[:300]!r} (logs: {LOG_DIR})")
        accepted.append(json.loads(payload)["accepted"])
    writer.close()


def stored_count() -> int:
    with psycopg.connect(database_url(DB_NAME)) as conn:
        return conn.execute("SELECT count(*) FROM events_event").fetchone()[0]


def scenario(name: str, per_request: int, total: int, clients: int, key: str) -> dict:
    before = stored_count()
    rows = make_rows(total, name)
    events = [
        {
            "userId": r[1],
            "eventName": r[2],
            "timestamp": r[3],
            "properties": json.loads(r[4]),
            "sessionId": r[5],
            "pageUrl": r[6],
            "eventId": r[0],
        }
        for r in rows
    ]
    bodies = [
        json.dumps(events[i : i + per_request] if per_request > 1 else events[i]).encode()
        for i in range(0, total, per_request)
    ]
    shares = [bodies[c::clients] for c in range(clients)]
    latencies: list[float] = []
    accepted: list[int] = []

    async def run():
        await asyncio.gather(*(client(share, key, latencies, accepted) for share in shares))

    started = time.perf_counter()
    asyncio.run(run())
    answered = time.perf_counter() - started
    expected = before + sum(accepted)
    while stored_count() < expected:
        if time.perf_counter() - started > 600:
            raise SystemExit(f"{name}: events still missing after 600 s")
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "events": sum(accepted),
        "requests": len(bodies),
        "clients": clients,
        "answered_s": round(answered, 3),
        "stored_s": round(elapsed, 3),
        "events_per_s": round(sum(accepted) / elapsed),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
    }


def main():
    key = prepare()
    raw = raw_copy_rate()
    stack = Stack()
    try:
        batches = scenario("batch", 1000, BATCHES * 1000, BATCH_CLIENTS, key)
        singles = scenario("single", 1, SINGLES, SINGLE_CLIENTS, key)
    finally:
        stack.stop()
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count()},
        "config": {"web_workers": WEB_WORKERS, "rq_workers": RQ_WORKERS},
        "raw_copy": raw,
        "batches": batches,
        "singles": singles,
        "ratio_batches_to_raw_copy": round(batches["events_per_s"] / raw["events_per_s"], 3),
        "peak_rss_mb": {role: round(kb / 1024, 1) for role, kb in stack.peak.items()},
    }
    out = ROOT / "bench" / "results" / f"ingest-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nIngestion benchmark ({os.cpu_count()} CPUs; {WEB_WORKERS} web, {RQ_WORKERS} RQ workers)")
    print(f"{'':28}{'events/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'events':>9}")
    print(f"{'raw COPY, 1,000-row batches':28}{raw['events_per_s']:>10}{'':>9}{'':>9}{raw['events']:>9}")
    for label, r in (("end to end, 1,000/request", batches), ("end to end, 1/request", singles)):
        print(f"{label:28}{r['events_per_s']:>10}{r['p50_ms']:>9}{r['p99_ms']:>9}{r['events']:>9}")
    print(f"ratio batches / raw COPY: {report['ratio_batches_to_raw_copy']}")
    print(f"peak RSS per process: web {report['peak_rss_mb']['web']} MB, worker {report['peak_rss_mb']['worker']} MB")
    print(f"written to {out.relative_to(ROOT)}; process logs in {LOG_DIR}")


if __name__ == "__main__":
    main()
