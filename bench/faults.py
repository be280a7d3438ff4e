"""Fault runs (a report, not a test): `python bench/faults.py` or `make bench`.

Each scenario gets a fresh stack of its own on this machine: a private PostgreSQL cluster and
a private Redis (AOF, `--appendfsync everysec`, as docker-compose.yml runs it) on free ports
in a temporary folder — so they can be killed without touching anyone else's servers — with
2 uvicorn web processes and 2 `rqworker` processes. It receives 102,000 distinct events (200
batches of 500 from 4 clients and 2,000 single-event posts from 16 clients at once; every
request is retried, after a connection error or a non-202 answer, until it is answered 202)
while one fault is injected:

  baseline          no fault
  worker-kill-x10   a worker killed with SIGKILL (its main process only, as the OOM killer
                    does) and a new one started, ten times, 0.8 s apart
  redis-shutdown    Redis SHUTDOWN, started again at once
  redis-kill-9      Redis killed with SIGKILL, started again 1 s later
  redis-down-15s    Redis shut down for 15 s
  postgres-down-10s PostgreSQL `stop -m immediate`, started again 10 s later

Reported per scenario: events lost (answered 202 but not stored), doubled (stored twice), the
sum of `accepted` next to the rows stored (they must be equal: `accepted` counts new events
only), answers that were 5xx other than 503 (bugs), and two times: the recovery, seconds from
the fault's end until every event answered 202 by then is stored (the load goes on meanwhile),
and seconds from the last answer until every event is stored.

Environment: BENCH_FAULTS (comma-separated scenario names, default all), BENCH_FAULT_AT
(seconds into the load when the fault starts, default 2).
"""

import asyncio
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
HOST = "127.0.0.1"
BATCHES, BATCH_SIZE, BATCH_CLIENTS = 200, 500, 4
SINGLES, SINGLE_CLIENTS = 2000, 16
FAULT_AT = float(os.environ.get("BENCH_FAULT_AT", "2"))
SETTLE_LIMIT = 300  # seconds to wait for the last events before calling them lost
DB_NAME = "bench_faults"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def pg_bin(name: str) -> str:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    return str(versions[-1] / name) if versions else name


def as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the postgres user then."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class Postgres:
    def __init__(self, root: Path):
        self.dir, self.port = root / "pg", free_port()
        self.dir.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run(
            as_postgres([pg_bin("initdb"), "-D", str(self.dir), "--auth=trust", "-U", "postgres"]),
            check=True,
            capture_output=True,
        )
        self.start()
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DB_NAME}")

    def url(self, name: str = DB_NAME) -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/{name}"

    def start(self):
        options = f"-p {self.port} -k {self.dir} -c listen_addresses={HOST} -c max_connections=200"
        subprocess.run(
            as_postgres(
                [pg_bin("pg_ctl"), "-D", str(self.dir), "-o", options, "-l", str(self.dir / "log"), "-w", "start"]
            ),
            check=True,
            capture_output=True,
        )

    def stop(self, mode: str = "fast"):
        subprocess.run(
            as_postgres([pg_bin("pg_ctl"), "-D", str(self.dir), "-m", mode, "-w", "stop"]), capture_output=True
        )


class Redis:
    def __init__(self, root: Path):
        self.dir, self.port = root / "redis", free_port()
        self.dir.mkdir()
        self.proc = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", HOST, "--dir", str(self.dir), "--save", ""]
            + ["--appendonly", "yes", "--appendfsync", "everysec", "--logfile", str(self.dir / "log")]
        )
        client = redis.Redis.from_url(self.url)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
        raise SystemExit("the private Redis did not start")

    def shutdown(self):
        try:
            redis.Redis.from_url(self.url).shutdown()
        except redis.RedisError:
            pass  # SHUTDOWN closes the connection under us
        self.proc.wait(timeout=20)

    def kill(self):
        self.proc.kill()
        self.proc.wait(timeout=20)


class Stack:
    def __init__(self, root: Path, pg: Postgres, rd: Redis):
        self.root, self.port = root, free_port()
        self.env = {
            **os.environ,
            "DATABASE_URL": pg.url(),
            "REDIS_URL": rd.url,
            "SECRET_KEY": "bench-" + os.urandom(24).hex(),
            "DEBUG": "0",
            "ALLOWED_HOSTS": HOST,
            "LOG_LEVEL": "WARNING",
        }
        subprocess.run([PYTHON, "manage.py", "migrate", "-v0"], cwd=ROOT, env=self.env, check=True)
        out = subprocess.run(
            [PYTHON, "manage.py", "createapikey", "--org", "Bench", "--project", "Faults", "--scopes", "ingest,read"],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        )
        self.key = out.stdout.strip().splitlines()[-1]
        self.web = subprocess.Popen(
            [PYTHON, "-m", "uvicorn", "analytics_platform.asgi:application", "--host", HOST, "--port", str(self.port)]
            + ["--workers", "2", "--no-access-log", "--log-level", "warning", "--ws-per-message-deflate", "false"],
            cwd=ROOT,
            env=self.env,
            stdout=(root / "web.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        self.workers = [self.start_worker() for _ in range(2)]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://{HOST}:{self.port}/health", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise SystemExit(f"the web server did not come up (logs in {root})")
        time.sleep(1.0)

    def start_worker(self) -> subprocess.Popen:
        return subprocess.Popen(
            [PYTHON, "manage.py", "rqworker", "default", "--with-scheduler"],
            cwd=ROOT,
            env=self.env,
            stdout=(self.root / "worker.log").open("ab"),
            stderr=subprocess.STDOUT,
        )

    def stop(self):
        for proc in [self.web, *self.workers]:
            proc.terminate()
        for proc in [self.web, *self.workers]:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        # a killed worker's scheduler child may have outlived it: it must not outlive the run
        marker = f"REDIS_URL={self.env['REDIS_URL']}".encode()
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and marker in (entry / "environ").read_bytes().split(b"\0"):
                    os.kill(int(entry.name), signal.SIGKILL)
            except (OSError, ProcessLookupError):
                continue


Body = tuple[bytes, list[str]]  # a request body and the event ids in it


def make_events() -> tuple[list[Body], list[Body]]:
    base = datetime.now(UTC) - timedelta(days=1)

    def one(i: int) -> dict:
        return {
            "eventId": f"e-{i}",
            "userId": f"user_{i % 5000}",
            "eventName": ("page_view", "add_to_cart", "purchase")[i % 3],
            "timestamp": (base + timedelta(milliseconds=i)).isoformat(),
            "properties": {"n": i},
            "sessionId": f"s-{i % 900}",
        }

    batches = []
    for b in range(BATCHES):
        events = [one(b * BATCH_SIZE + j) for j in range(BATCH_SIZE)]
        batches.append((json.dumps(events).encode(), [e["eventId"] for e in events]))
    offset = BATCHES * BATCH_SIZE
    singles = [(json.dumps(e).encode(), [e["eventId"]]) for e in map(one, range(offset, offset + SINGLES))]
    return batches, singles


class Load:
    """Clients that send every body until it is answered 202, as a careful SDK would."""

    def __init__(self, port: int, key: str):
        self.port, self.key = port, key
        self.accepted = 0
        self.retries = 0
        self.server_errors: dict[int, int] = {}
        self.last_answer = 0.0
        self.answered: list[str] = []  # ids of the events whose request was answered 202

    async def client(self, bodies: list[Body]):
        head = (
            f"POST /api/v1/events HTTP/1.1\r\nHost: {HOST}\r\nX-API-Key: {self.key}\r\n"
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n"
        )
        reader = writer = None
        for body, ids in bodies:
            while True:
                try:
                    if writer is None:
                        reader, writer = await asyncio.open_connection(HOST, self.port)
                    writer.write(head.format(len(body)).encode() + body)
                    status, payload = await asyncio.wait_for(self.response(reader), timeout=30)
                except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
                    if writer is not None:
                        writer.close()
                    reader = writer = None
                    self.retries += 1
                    await asyncio.sleep(0.2)
                    continue
                if status == 202:
                    self.accepted += json.loads(payload)["accepted"]
                    self.answered += ids
                    self.last_answer = time.monotonic()
                    break
                if status >= 500 and status != 503:
                    self.server_errors[status] = self.server_errors.get(status, 0) + 1
                self.retries += 1
                await asyncio.sleep(0.2)
        if writer is not None:
            writer.close()

    @staticmethod
    async def response(reader) -> tuple[int, bytes]:
        status_line = await reader.readline()
        if not status_line:
            raise ValueError("connection closed")
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        return int(status_line.split()[1]), await reader.readexactly(length)

    async def run(self, batches: list[Body], singles: list[Body]):
        shares = [batches[c::BATCH_CLIENTS] for c in range(BATCH_CLIENTS)]
        shares += [singles[c::SINGLE_CLIENTS] for c in range(SINGLE_CLIENTS)]
        await asyncio.gather(*(self.client(share) for share in shares))


def no_fault(stack, pg, rd):
    pass


def kill_workers(stack, pg, rd):
    for n in range(10):
        victim = n % len(stack.workers)
        os.kill(stack.workers[victim].pid, signal.SIGKILL)
        stack.workers[victim].wait()
        time.sleep(0.3)
        stack.workers[victim] = stack.start_worker()
        time.sleep(0.5)


def redis_shutdown(stack, pg, rd):
    rd.shutdown()
    rd.start()


def redis_kill(stack, pg, rd):
    rd.kill()
    time.sleep(1)
    rd.start()


def redis_down(stack, pg, rd):
    rd.shutdown()
    time.sleep(15)
    rd.start()


def postgres_down(stack, pg, rd):
    pg.stop("immediate")
    time.sleep(10)
    pg.start()


SCENARIOS = {
    "baseline": no_fault,
    "worker-kill-x10": kill_workers,
    "redis-shutdown": redis_shutdown,
    "redis-kill-9": redis_kill,
    "redis-down-15s": redis_down,
    "postgres-down-10s": postgres_down,
}


def stored_of(pg: Postgres, ids: list[str]) -> int:
    """How many of these events are stored (-1 while the database does not answer)."""
    try:
        with psycopg.connect(pg.url(), connect_timeout=2) as conn:
            return conn.execute("SELECT count(*) FROM events_event WHERE event_id = ANY(%s)", [ids]).fetchone()[0]
    except psycopg.Error:
        return -1


def wait_stored(pg: Postgres, ids: list[str], since: float) -> float:
    """Seconds from `since` until all these events are stored (or SETTLE_LIMIT passed)."""
    while stored_of(pg, ids) < len(ids) and time.monotonic() - since < SETTLE_LIMIT:
        time.sleep(0.1)
    return time.monotonic() - since


def stored(pg: Postgres) -> tuple[int, int]:
    """(rows, distinct event ids), or (-1, -1) while the database does not answer."""
    try:
        with psycopg.connect(pg.url(), connect_timeout=2) as conn:
            return conn.execute("SELECT count(*), count(DISTINCT event_id) FROM events_event").fetchone()
    except psycopg.Error:
        return -1, -1


def run_scenario(name: str, fault, batches: list[Body], singles: list[Body]) -> dict:
    root = Path(tempfile.mkdtemp(prefix=f"bench-faults-{name}-"))
    os.chmod(root, 0o755)  # noqa: S103 (the postgres user must reach its data folder)
    pg, rd = Postgres(root), Redis(root)
    stack = Stack(root, pg, rd)
    load = Load(stack.port, stack.key)
    fault_times: dict[str, float] = {}

    async def orchestrate():
        sending = asyncio.create_task(load.run(batches, singles))
        await asyncio.sleep(FAULT_AT)
        fault_times["start"] = time.monotonic()
        await asyncio.to_thread(fault, stack, pg, rd)
        fault_times["end"] = time.monotonic()
        # Everything answered 202 by the fault's end, stored how long after it ended?
        answered_by_then = list(load.answered)
        recovery = asyncio.create_task(asyncio.to_thread(wait_stored, pg, answered_by_then, fault_times["end"]))
        await sending
        fault_times["recovery"] = await recovery

    started = time.monotonic()
    try:
        asyncio.run(orchestrate())
        answered = BATCHES * BATCH_SIZE + SINGLES  # every body was answered 202 by now
        deadline = time.monotonic() + SETTLE_LIMIT
        rows, distinct = stored(pg)
        while distinct < answered and time.monotonic() < deadline:
            time.sleep(0.1)
            rows, distinct = stored(pg)
        settled = time.monotonic()
    finally:
        stack.stop()
        rd.kill()
        pg.stop("immediate")
    return {
        "scenario": name,
        "events": answered,
        "lost": answered - distinct,
        "doubled": rows - distinct,
        "accepted_sum": load.accepted,
        "rows_stored": rows,
        "retries": load.retries,
        "server_errors_not_503": load.server_errors,
        "load_s": round(load.last_answer - started, 1),
        "fault_s": round(fault_times["end"] - fault_times["start"], 1),
        "recovery_s": round(fault_times["recovery"], 1),
        "stored_after_fault_end_s": round(settled - fault_times["end"], 1),
        "stored_after_last_answer_s": round(settled - load.last_answer, 1),
        "logs": str(root),
    }


def main():
    chosen = [s for s in os.environ.get("BENCH_FAULTS", ",".join(SCENARIOS)).split(",") if s]
    batches, singles = make_events()
    random.seed(1)
    results = [run_scenario(name, SCENARIOS[name], batches, singles) for name in chosen]
    out = ROOT / "bench" / "results" / f"faults-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"when": datetime.now(UTC).isoformat(timespec="seconds"), "runs": results}, indent=2))
    print(
        f"\nFault runs: {BATCHES} batches of {BATCH_SIZE} + {SINGLES} single posts = {BATCHES * BATCH_SIZE + SINGLES}"
    )
    print("events each; 2 web processes, 2 workers, private PostgreSQL and Redis (AOF).")
    header = f"{'scenario':18}{'lost':>6}{'doubled':>8}{'accepted':>10}{'stored':>8}{'5xx':>5}"
    print(header + f"{'retries':>8}{'fault s':>8}{'recovery s':>11}{'all stored, s after last 202':>30}")
    for r in results:
        errors = sum(r["server_errors_not_503"].values())
        print(
            f"{r['scenario']:18}{r['lost']:>6}{r['doubled']:>8}{r['accepted_sum']:>10}{r['rows_stored']:>8}{errors:>5}"
            f"{r['retries']:>8}{r['fault_s']:>8}{r['recovery_s']:>11}{r['stored_after_last_answer_s']:>30}"
        )
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
