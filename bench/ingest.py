"""Ingestion benchmark (a report, not a test): `python bench/ingest.py` or `make bench`.

Starts the real stack on this machine — uvicorn (ASGI) web processes and `rqworker`
processes against PostgreSQL and Redis — in a throwaway database, then measures:

- the raw limit: psycopg COPY of 1,000-row batches straight into a table with the events
  table's indexes and unique constraint;
- the most it takes, with `wrk` (C; Debian's package): single-event posts over 32
  connections, and 1,000-event batches over 4, each for BENCH_SECONDS; a Lua script makes the
  bodies. Events/s are counted until every answered event is a row (rows are counted in the
  database, and must equal what was answered: nothing lost, nothing doubled);
- latency at a fixed rate, PACE (70 %) of that most (of what was stored per second, not
  of what was answered: the web answers faster than the workers store, for a while), with
  `hey -q` (Go; Debian's package), its workers spread over staggered processes so that they
  do not all send at once (hey_paced): p50/p99 of the answers;
- the batches' most again with a client's eventId on every event (claimed in Redis);
- each load generator's own CPU (it shares the machine's cores with the stack), the ratio of
  the batches' rate to raw COPY, and the peak RSS of each web and worker process.

Except in that last run, the bodies carry no timestamps or event ids, so the server stamps
each event and gives it an id of its own (minted: not claimed in Redis, events.dedup): every
request, hey's repeated body included, is new events.

Environment: BENCH_PG (a maintenance database URL, default postgresql://postgres@127.0.0.1:5432/postgres),
BENCH_REDIS_URL (default redis://127.0.0.1:6379/14, flushed), BENCH_WEB_WORKERS (2), BENCH_RQ_WORKERS (2),
BENCH_BATCHES (100, raw COPY transactions), BENCH_SECONDS (15), BENCH_PACE (0.7),
BENCH_BUFFER_TIMEOUT_MS (the stack's EVENT_BUFFER_TIMEOUT_MS, 1000).
"""

import json
import os
import re
import resource
import secrets
import shutil
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
BATCHES = int(os.environ.get("BENCH_BATCHES", "100"))  # raw COPY transactions of 1,000 rows, per round
RAW_ROUNDS = 3
SECONDS = int(os.environ.get("BENCH_SECONDS", "15"))
PACE = float(os.environ.get("BENCH_PACE", "0.7"))  # the paced run's rate, as a share of wrk's
SINGLE_CONNECTIONS, BATCH_CONNECTIONS, HEY_CLIENTS, HEY_PROCESSES = 32, 4, 64, 8
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
        "INGEST_RATE_LIMIT_PER_SECOND": "1000000",  # one key carries the whole load
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
    """COPY 1,000-row batches, one transaction each, into a copy of the events table: RAW_ROUNDS
    rounds of BATCHES transactions, each into a fresh table, and their median (one round of
    100,000 rows took 0.8 to 1.6 s on the same machine within an hour)."""
    rows = make_rows(BATCHES * 1000, "raw")
    columns = ", ".join(COLUMNS)
    rates = []
    with psycopg.connect(database_url(DB_NAME)) as conn:
        for _ in range(RAW_ROUNDS):
            conn.execute("CREATE TABLE bench_raw (LIKE events_event INCLUDING ALL)")
            conn.commit()
            started = time.perf_counter()
            for b in range(BATCHES):
                with conn.cursor() as cur, cur.copy(f"COPY bench_raw (project_id, {columns}) FROM STDIN") as copy:
                    for row in rows[b * 1000 : (b + 1) * 1000]:
                        copy.write_row([1, *row])
                conn.commit()
            rates.append(round(len(rows) / (time.perf_counter() - started)))
            conn.execute("DROP TABLE bench_raw")
            conn.commit()
    return {"events_per_round": len(rows), "rounds_events_per_s": rates, "events_per_s": statistics.median(rates)}


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


WRK_SINGLE = """
-- One event per request, a new one each time: no timestamp, so the server stamps it and
-- gives it an id of its own; users and event names vary as a shop's would.
local names = {"page_view", "add_to_cart", "purchase"}
local n = 0
request = function()
  n = n + 1
  local body = string.format(
    '{"userId":"user_%d","eventName":"%s","properties":{"path":"/p/%d","n":%d},"sessionId":"s-%d"}',
    n % 5000, names[n % 3 + 1], n % 50, n, n % 900)
  return wrk.format("POST", "/api/v1/events", nil, body)
end
"""
# A batch's 1,000 events, each without its opening brace (`rest[i]`), so a script can put a
# field in front.
_LUA_BATCH_EVENTS = """
local names = {"page_view", "add_to_cart", "purchase"}
local rest = {}
for i = 1, 1000 do
  rest[i] = string.format(
    '"userId":"user_%d","eventName":"%s","properties":{"path":"/p/%d","n":%d},"sessionId":"s-%d"}',
    i * 7 % 5000, names[i % 3 + 1], i % 50, i, i % 900)
end
"""
WRK_BATCH = (
    """
-- 1,000 events per request, made once: no timestamps or ids, so each is a new event."""
    + _LUA_BATCH_EVENTS
    + """
wrk.method = "POST"
wrk.path = "/api/v1/events"
wrk.body = "[{" .. table.concat(rest, ",{") .. "]"
"""
)
WRK_BATCH_IDS = (
    """
-- As WRK_BATCH, but every event carries a client's eventId, new in each request (as an SDK
-- that retries sends them): each id is claimed in Redis, as a client's retry needs."""
    + _LUA_BATCH_EVENTS
    + """
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local sent = 0
request = function()
  sent = sent + 1
  local events = {}
  for i = 1, 1000 do
    events[i] = string.format('{"eventId":"c%d-%d-%d",', tid, sent, i) .. rest[i]
  end
  return wrk.format("POST", "/api/v1/events", nil, "[" .. table.concat(events, ",") .. "]")
end
"""
)


def batch_body() -> bytes:
    names = ("page_view", "add_to_cart", "purchase")
    events = [
        {
            "userId": f"user_{i * 7 % 5000}",
            "eventName": names[i % 3],
            "properties": {"path": f"/p/{i % 50}", "n": i},
            "sessionId": f"s-{i % 900}",
        }
        for i in range(1, 1001)
    ]
    return json.dumps(events, separators=(",", ":")).encode()


SINGLE_BODY = b'{"userId":"user_7","eventName":"page_view","properties":{"path":"/p/7","n":7},"sessionId":"s-7"}'


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_client(command: list[str]) -> tuple[str, float, float]:
    """Runs a load generator to its end: (its output, wall seconds, its CPU seconds)."""
    cpu, started = child_cpu(), time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return out, time.perf_counter() - started, child_cpu() - cpu


def stored_count() -> int:
    with psycopg.connect(database_url(DB_NAME)) as conn:
        return conn.execute("SELECT count(*) FROM events_event").fetchone()[0]


def quiet() -> int:
    """The row count once nothing more arrives for a second and the outbox is exported (what a
    previous run left in flight is stored, and mirrored, first: a run's numbers are its own)."""
    count = stored_count()
    while True:
        time.sleep(1.0)
        if (now := stored_count()) == count and outbox_rows() == 0:
            return count
        count = now


def outbox_rows() -> int:
    with psycopg.connect(database_url(DB_NAME)) as conn:
        return conn.execute("SELECT count(*) FROM warehouse_outbox").fetchone()[0]


def settle(expected: int, started: float, in_flight: int = 0) -> float:
    """Seconds from `started` until the events table holds the `expected` rows. A load
    generator stopped by its clock does not count the requests still in flight, though the
    server may have answered them: up to `in_flight` more rows are theirs, no more."""
    while (count := stored_count()) < expected:
        if time.perf_counter() - started > 600:
            raise SystemExit(f"{expected - count} events still missing after 600 s (logs: {LOG_DIR})")
        time.sleep(0.05)
    done = time.perf_counter() - started
    time.sleep(1.0)
    if (count := stored_count()) > expected + in_flight:
        raise SystemExit(f"{count - expected} events more than were answered (logs: {LOG_DIR})")
    return done


def wrk_throughput(name: str, script: str, per_request: int, key: str) -> dict:
    """The most a client can get through: wrk, 2 threads, CONNECTIONS connections, SECONDS."""
    lua = write_lua(name, script)
    before = quiet()
    connections = SINGLE_CONNECTIONS if per_request == 1 else BATCH_CONNECTIONS
    out, wall, cpu = run_client(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{SECONDS}s",
            "--latency",
            "-s",
            str(lua),
            "-H",
            f"X-API-Key: {key}",
            "-H",
            "Content-Type: application/json",
            f"http://{HOST}:{PORT}/",
        ]
    )
    started_settle = time.perf_counter()
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    refused = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if refused or "Socket errors" in out:
        raise SystemExit(f"{name}: not every answer was 202:\n{out}")
    expected = before + requests * per_request
    wait = settle(expected, started_settle, in_flight=connections * per_request)
    return {
        "client": "wrk",
        "connections": connections,
        "requests": requests,
        "events": requests * per_request,
        "seconds": round(wall, 2),
        "answered_events_per_s": round(requests * per_request / wall),
        "stored_events_per_s": round(requests * per_request / (wall + wait)),
        "stored_after_last_answer_s": round(wait, 2),
        "p50_ms": latency_ms(out, "50%"),
        "p99_ms": latency_ms(out, "99%"),
        "client_cpu_s": round(cpu, 2),
        "client_cpu_share": round(cpu / wall / (os.cpu_count() or 1), 3),
    }


def latency_ms(wrk_out: str, percentile: str) -> float:
    value, unit = re.search(rf"^\s+{percentile}\s+([\d.]+)(us|ms|s)\s*$", wrk_out, re.M).groups()
    return round(float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit], 2)


def hey_paced(name: str, body: bytes, per_request: int, requests_per_s: float, key: str) -> dict:
    """Latency at a fixed rate: up to HEY_CLIENTS hey workers in all (5 requests/s each at
    least), each sending at its share of the rate; a worker whose answer comes after its next
    tick skips that tick, so there are enough of them to keep the rate. One hey process starts
    its workers together and they keep step (its `-q` is a ticker per worker), so all its
    workers' requests arrive at once: the workers are spread over hey processes started a slot
    apart (one per worker for batches, up to HEY_PROCESSES; two for single events, whose step
    of 32 is small), so the requests arrive as evenly as that many steps allow. Each process
    writes every answer (`-o csv`); p50/p99 are over all of them."""
    path = LOG_DIR / f"{name}.json"
    path.write_bytes(body)
    clients = min(HEY_CLIENTS, max(1, int(requests_per_s // 5)))
    processes = min(HEY_PROCESSES, clients, max(2, clients * per_request // 1000))
    per_client = requests_per_s / clients
    before = quiet()
    cpu, started = child_cpu(), time.perf_counter()
    running = []
    for n in range(processes):
        workers = clients // processes + (n < clients % processes)
        command = ["hey", "-z", f"{SECONDS}s", "-c", str(workers), "-q", f"{per_client:.2f}", "-o", "csv"]
        command += ["-m", "POST", "-T", "application/json", "-H", f"X-API-Key: {key}", "-D", str(path)]
        running.append(
            subprocess.Popen([*command, f"http://{HOST}:{PORT}/api/v1/events"], stdout=subprocess.PIPE, text=True)
        )
        time.sleep(1 / per_client / processes)  # the next process's step: a slot later
    outputs = [proc.communicate()[0] for proc in running]
    wall, cpu = time.perf_counter() - started, child_cpu() - cpu
    started_settle = time.perf_counter()
    latencies, statuses = [], {}
    for out in outputs:
        lines = out.splitlines()
        header = lines[0].split(",")
        at_latency, at_status = header.index("response-time"), header.index("status-code")
        for line in lines[1:]:
            fields = line.split(",")
            latencies.append(float(fields[at_latency]) * 1000)
            statuses[fields[at_status]] = statuses.get(fields[at_status], 0) + 1
    if set(statuses) != {"202"}:
        raise SystemExit(f"{name}: not every answer was 202: {statuses}")
    requests = statuses["202"]
    # Requests cut off by -z are not in the CSV, answered or not: at most one per worker.
    wait = settle(before + requests * per_request, started_settle, in_flight=clients * per_request)
    latencies.sort()
    percentile = lambda p: round(latencies[min(len(latencies) - 1, int(len(latencies) * p / 100))], 2)  # noqa: E731
    return {
        "client": "hey",
        "hey_processes": processes,
        "hey_workers": clients,
        "target_requests_per_s": round(requests_per_s, 1),
        "events_per_request": per_request,
        "achieved_requests_per_s": round(requests / wall, 1),
        "events": requests * per_request,
        "p50_ms": percentile(50),
        "p99_ms": percentile(99),
        "stored_after_last_answer_s": round(wait, 2),
        "client_cpu_s": round(cpu, 2),
        "client_cpu_share": round(cpu / wall / (os.cpu_count() or 1), 3),
    }


def main():
    for tool in ("wrk", "hey"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (Debian: apt-get install -y wrk hey)")
    key = prepare()
    raw = raw_copy_rate()
    stack = Stack()
    try:
        run_client(
            [
                "wrk",
                "-t1",
                "-c4",
                "-d2s",
                "-s",
                str(write_lua("warm", WRK_SINGLE)),  # hot caches, entry
                "-H",
                f"X-API-Key: {key}",
                "-H",
                "Content-Type: application/json",
                f"http://{HOST}:{PORT}/",
            ]
        )
        singles = wrk_throughput("singles", WRK_SINGLE, 1, key)
        singles_paced = hey_paced("singles-paced", SINGLE_BODY, 1, singles["stored_events_per_s"] * PACE, key)
        batches = wrk_throughput("batches", WRK_BATCH, 1000, key)
        batches_paced = hey_paced(
            "batches-paced", batch_body(), 1000, batches["stored_events_per_s"] / 1000 * PACE, key
        )
        batches_ids = wrk_throughput("batches-ids", WRK_BATCH_IDS, 1000, key)
    finally:
        stack.stop()
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count()},
        "config": {"web_workers": WEB_WORKERS, "rq_workers": RQ_WORKERS, "seconds": SECONDS, "pace": PACE},
        "raw_copy": raw,
        "singles": singles,
        "singles_paced": singles_paced,
        "batches": batches,
        "batches_paced": batches_paced,
        "batches_with_event_ids": batches_ids,
        "ratio_batches_to_raw_copy": round(batches["stored_events_per_s"] / raw["events_per_s"], 3),
        "peak_rss_mb": {role: round(kb / 1024, 1) for role, kb in stack.peak.items()},
    }
    out = ROOT / "bench" / "results" / f"ingest-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    cpus = os.cpu_count()
    print(f"\nIngestion benchmark ({cpus} CPUs; {WEB_WORKERS} web, {RQ_WORKERS} RQ workers; {SECONDS} s per run)")
    print(f"{'':34}{'events/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'client CPU':>12}")
    print(f"{'raw COPY, 1,000-row transactions':34}{raw['events_per_s']:>10}  (median of {raw['rounds_events_per_s']})")
    for label, r in (
        ("singles, wrk (most)", singles),
        ("batches of 1,000, wrk (most)", batches),
        ("batches with eventIds, wrk (most)", batches_ids),
    ):
        share = f"{r['client_cpu_share'] * 100:.1f}%"
        print(f"{label:34}{r['stored_events_per_s']:>10}{r['p50_ms']:>9}{r['p99_ms']:>9}{share:>12}")
    for label, r in ((f"singles, hey at {PACE:.0%}", singles_paced), (f"batches, hey at {PACE:.0%}", batches_paced)):
        rate = round(r["achieved_requests_per_s"] * r["events_per_request"])
        share = f"{r['client_cpu_share'] * 100:.1f}%"
        print(f"{label:34}{rate:>10}{r['p50_ms']:>9}{r['p99_ms']:>9}{share:>12}")
    print(f"ratio batches stored / raw COPY: {report['ratio_batches_to_raw_copy']}")
    print(f"peak RSS per process: web {report['peak_rss_mb']['web']} MB, worker {report['peak_rss_mb']['worker']} MB")
    print(f"written to {out.relative_to(ROOT)}; process logs in {LOG_DIR}")


def write_lua(name: str, script: str) -> Path:
    path = LOG_DIR / f"{name}.lua"
    path.write_text(script)
    return path


if __name__ == "__main__":
    main()
