"""How soon a posted single event can be seen (a report, not a test): `python
bench/visibility.py` or `make bench`.

The real stack as in ingest.py (uvicorn web processes and RQ workers with their drainers,
PostgreSQL, Redis, a throwaway database) with the production default
EVENT_BUFFER_TIMEOUT_MS (5000): one client posts BENCH_VISIBILITY_EVENTS (300) single events,
BENCH_VISIBILITY_RATE (20) per second, each carrying the time it was sent. Measured per event:
- stored: until a poll of the events table (every 5 ms, from this process) sees its row;
  a stored event is in every analytics answer at once (the snapshot reads the outbox tail);
- live: until a WebSocket client of the project's live stream receives it;
- the request's own latency (post to 202).
Reports p50/p99/max of each, and the CPU seconds of this process (the load generator, poller
and listener together).
"""

import asyncio
import json
import os
import re
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import websockets

os.environ.setdefault("BENCH_BUFFER_TIMEOUT_MS", "5000")  # the production default
sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest  # noqa: E402  (the same stack and database)

EVENTS = int(os.environ.get("BENCH_VISIBILITY_EVENTS", "300"))
RATE = float(os.environ.get("BENCH_VISIBILITY_RATE", "20"))
NUMBER = re.compile(r'"n":([0-9]+)')


def percentiles(values: list[float]) -> dict:
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p99_ms": round(pick(0.99) * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


def poll_stored(sent: dict, stored: dict, done: threading.Event) -> None:
    # Every row each time (a few hundred): ids are taken before commit, so a transaction can
    # commit ids below ones already seen, and polling `id > the last seen` missed one.
    with psycopg.connect(ingest.database_url(ingest.DB_NAME), autocommit=True) as conn:
        while not done.is_set():
            rows = conn.execute("SELECT (properties->>'n')::int FROM events_event").fetchall()
            now = time.time()
            for (n,) in rows:
                stored.setdefault(n, now)
            time.sleep(0.005)


async def listen(key: str, live: dict, ready: asyncio.Event, done: asyncio.Event) -> None:
    url = f"ws://{ingest.HOST}:{ingest.PORT}/ws/events?apiKey={key}"
    async with websockets.connect(url, max_size=None) as ws:
        while json.loads(await ws.recv())["type"] != "subscribed":
            pass
        ready.set()
        while not done.is_set():
            try:
                text = await asyncio.wait_for(ws.recv(), timeout=0.2)
            except TimeoutError:
                continue
            if text.startswith('{"type":"event"') and (match := NUMBER.search(text)):
                live.setdefault(int(match.group(1)), time.time())


async def post_all(key: str, sent: dict, answered: dict) -> None:
    reader, writer = await asyncio.open_connection(ingest.HOST, ingest.PORT)
    for n in range(EVENTS):
        body = json.dumps(
            {"userId": f"v{n % 50}", "eventName": "page_view", "eventId": f"vis-{n}", "properties": {"n": n}}
        )
        sent[n] = time.time()
        writer.write(
            (
                f"POST /api/v1/events HTTP/1.1\r\nHost: {ingest.HOST}\r\nX-API-Key: {key}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}"
            ).encode()
        )
        status = await reader.readline()
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        answered[n] = time.time()
        if b" 202 " not in status:
            raise SystemExit(f"unexpected answer {status!r}")
        await asyncio.sleep(max(0.0, sent[n] + 1 / RATE - time.time()))
    writer.close()


async def run(key: str) -> dict:
    sent, answered, stored, live = {}, {}, {}, {}
    done_polling = threading.Event()
    poller = threading.Thread(target=poll_stored, args=(sent, stored, done_polling), daemon=True)
    poller.start()
    ready, done = asyncio.Event(), asyncio.Event()
    listener = asyncio.create_task(listen(key, live, ready, done))
    await ready.wait()
    cpu = time.process_time()
    await post_all(key, sent, answered)
    deadline = time.time() + 30
    while (len(stored) < EVENTS or len(live) < EVENTS) and time.time() < deadline:
        await asyncio.sleep(0.05)
    cpu = time.process_time() - cpu
    done.set()
    done_polling.set()
    await listener
    return {
        "events": EVENTS,
        "rate_per_s": RATE,
        "request": percentiles([answered[n] - sent[n] for n in sent]),
        "stored": percentiles([stored[n] - sent[n] for n in stored]),
        "live": percentiles([live[n] - sent[n] for n in live]),
        "missing": {"stored": EVENTS - len(stored), "live": EVENTS - len(live)},
        "load_generator_cpu_s": round(cpu, 2),
    }


def main():
    key = ingest.prepare()
    stack = ingest.Stack()
    try:
        result = asyncio.run(run(key))
    finally:
        stack.stop()
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "load_before": os.getloadavg()},
        "config": {
            "web_workers": ingest.WEB_WORKERS,
            "rq_workers": ingest.RQ_WORKERS,
            "EVENT_BUFFER_TIMEOUT_MS": int(os.environ["BENCH_BUFFER_TIMEOUT_MS"]),
        },
        **result,
        "peak_rss_mb": {role: round(kb / 1024, 1) for role, kb in stack.peak.items()},
    }
    out = ingest.ROOT / "bench" / "results" / f"visibility-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"written to {out.relative_to(ingest.ROOT)}")


if __name__ == "__main__":
    main()
