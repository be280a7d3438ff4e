"""Live stream benchmark (a report, not a test): `python bench/live.py` or `make bench`.

The real stack as in ingest.py (uvicorn web processes and RQ workers on PostgreSQL and
Redis, throwaway database): 1,000-event batches are posted by 4 concurrent clients, first
with no socket open, then with BENCH_LIVE_CLIENTS (100) WebSocket clients connected to the
project. Each event carries the wall-clock time its request was sent; every client records
when it receives it. Reports the ingest-to-receive latency (p50/p99 over all deliveries),
events delivered, lagged notices, and the ingest throughput (events/s until every accepted
event is a row) with and without the clients.

A third run sends the batches one every BENCH_LIVE_PACE seconds (2) to the same clients: the
latency at a rate the fan-out can sustain.

Environment: as ingest.py, plus BENCH_LIVE_CLIENTS (100), BENCH_LIVE_BATCHES (20),
BENCH_LIVE_PACE (2).
"""

import asyncio
import json
import os
import re
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest  # noqa: E402  (the same stack, database and HTTP load client)

SENT_AT = re.compile(r'"sentAt":([0-9.e+]+)')
CLIENTS = int(os.environ.get("BENCH_LIVE_CLIENTS", "100"))
BATCHES = int(os.environ.get("BENCH_LIVE_BATCHES", "20"))
POSTERS = 4
PACE = float(os.environ.get("BENCH_LIVE_PACE", "2"))  # seconds between batches in the paced run


def batch_body(tag: str, number: int) -> bytes:
    sent = time.time()
    return json.dumps(
        [
            {
                "userId": f"user{(number * 1000 + i) % 5000}",
                "eventName": "page_view",
                "timestamp": datetime.now(UTC).isoformat(),
                "eventId": f"{tag}-{number}-{i}",
                "properties": {"sentAt": sent, "i": i},
            }
            for i in range(1000)
        ]
    ).encode()


async def post_batches(tag: str, key: str, pace: float = 0.0) -> list[int]:
    """POSTs BATCHES batches from POSTERS connections (one, `pace` seconds apart, when paced),
    each body stamped when it is sent."""
    accepted: list[int] = []
    numbers = iter(range(BATCHES))

    async def poster():
        reader, writer = await asyncio.open_connection(ingest.HOST, ingest.PORT)
        for number in numbers:
            body = batch_body(tag, number)
            writer.write(
                (
                    f"POST /api/v1/events HTTP/1.1\r\nHost: {ingest.HOST}\r\nX-API-Key: {key}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                ).encode()
                + body
            )
            status = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            payload = await reader.readexactly(length)
            if b" 202 " not in status:
                raise SystemExit(f"unexpected answer {status!r} {payload[:200]!r}")
            accepted.append(json.loads(payload)["accepted"])
            await asyncio.sleep(pace)
        writer.close()

    await asyncio.gather(*(poster() for _ in range(1 if pace else POSTERS)))
    return accepted


async def wait_stored(expected: int, started: float) -> float:
    while await asyncio.to_thread(ingest.stored_count) < expected:
        if time.perf_counter() - started > 600:
            raise SystemExit("events still missing after 600 s")
        await asyncio.sleep(0.05)
    return time.perf_counter() - started


async def listener(key: str, ready: asyncio.Event, latencies: list[float], counts: dict, stop: asyncio.Event):
    url = f"ws://{ingest.HOST}:{ingest.PORT}/ws/events?apiKey={key}"
    async with websockets.connect(url, max_size=None) as ws:
        while json.loads(await ws.recv())["type"] != "subscribed":
            pass
        ready.set()
        while not stop.is_set():
            try:
                text = await asyncio.wait_for(ws.recv(), timeout=0.5)
            except TimeoutError:
                continue
            except websockets.ConnectionClosed:
                counts["closed"] += 1
                return
            received = time.time()
            if text.startswith('{"type":"event"'):
                # the sentAt property, without decoding the whole event
                sent = SENT_AT.search(text)
                latencies.append(received - float(sent.group(1)))
                counts["events"] += 1
            elif '"lagged"' in text:
                counts["lagged"] += json.loads(text)["dropped"]


def cpu_seconds(pids: set[int]) -> float:
    """User + system CPU time of these processes so far (Linux /proc)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            continue
    return total / os.sysconf("SC_CLK_TCK")


def cpu_by_role(stack) -> dict:
    """CPU seconds so far of the web processes, the workers, and this benchmark's process."""
    own = os.times()
    return {
        "web": cpu_seconds(ingest.tree([stack.web.pid])),
        "worker": cpu_seconds(ingest.tree([w.pid for w in stack.workers])),
        "bench_clients": own.user + own.system,
    }


async def run_scenario(tag: str, key: str, clients: int, pace: float = 0.0, stack=None) -> dict:
    cpu_before = cpu_by_role(stack)
    latencies: list[float] = []
    counts = {"events": 0, "lagged": 0, "closed": 0}
    stop = asyncio.Event()
    readies = [asyncio.Event() for _ in range(clients)]
    tasks = [asyncio.create_task(listener(key, ready, latencies, counts, stop)) for ready in readies]
    for ready in readies:
        await ready.wait()
    before = await asyncio.to_thread(ingest.stored_count)
    started = time.perf_counter()
    accepted = await post_batches(tag, key, pace)
    elapsed = await wait_stored(before + sum(accepted), started)
    deadline = time.perf_counter() + 30
    while clients and counts["events"] + counts["lagged"] < sum(accepted) * clients:
        if time.perf_counter() > deadline:
            break
        await asyncio.sleep(0.1)
    stop.set()
    await asyncio.gather(*tasks)
    latencies.sort()
    result = {"clients": clients, "events": sum(accepted), "events_per_s": round(sum(accepted) / elapsed)}
    if pace:
        result["paced_batches_per_s"] = round(1 / pace, 2)
    cpu_after = cpu_by_role(stack)
    result["cpu_seconds"] = {role: round(cpu_after[role] - cpu_before[role], 1) for role in cpu_after}
    if clients:
        result.update(
            deliveries=counts["events"],
            dropped_as_lagged=counts["lagged"],
            sockets_closed_by_server=counts["closed"],
            latency_p50_ms=round(statistics.median(latencies) * 1000, 1),
            latency_p99_ms=round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1),
        )
    return result


def main():
    key = ingest.prepare()
    stack = ingest.Stack()
    try:
        without = asyncio.run(run_scenario("quiet", key, 0, stack=stack))
        with_clients = asyncio.run(run_scenario("watched", key, CLIENTS, stack=stack))
        paced = asyncio.run(run_scenario("paced", key, CLIENTS, pace=PACE, stack=stack))
    finally:
        stack.stop()
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count()},
        "config": {"web_workers": ingest.WEB_WORKERS, "rq_workers": ingest.RQ_WORKERS, "batches": BATCHES},
        "without_clients": without,
        "with_clients": with_clients,
        "with_clients_paced": paced,
        "throughput_ratio": round(with_clients["events_per_s"] / without["events_per_s"], 3),
        "peak_rss_mb": {role: round(kb / 1024, 1) for role, kb in stack.peak.items()},
    }
    out = ingest.ROOT / "bench" / "results" / f"live-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"written to {out.relative_to(ingest.ROOT)}")


if __name__ == "__main__":
    main()
