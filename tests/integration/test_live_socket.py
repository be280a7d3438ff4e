"""The live stream over real sockets: two ASGI server processes (uvicorn) and one RQ worker
process on the real PostgreSQL and Redis, with the `websockets` client. Events posted to one
server reach the sockets of both, once, filtered, never another project's; bad keys are
closed with 4401/4403; a socket that stops reading is told what it lost."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import redis
from asgiref.sync import async_to_sync
from channels_redis.core import RedisChannelLayer
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from events.live.publish import project_group
from tests.integration.test_worker_crash import database_url, wait_for

ROOT = Path(__file__).resolve().parent.parent.parent
pytestmark = pytest.mark.redis


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture
def stack(postgres, redis_url, tmp_path):
    """Two web processes (the second with a 5-event socket queue) and a worker."""
    redis.Redis.from_url(redis_url).flushdb()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": redis_url,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LIVE_STATS_SECONDS": "1",
        "EVENT_BUFFER_TIMEOUT_MS": "100",
        "DEPLOYMENT_NAME": "live-test",  # the channel layer's prefix this test publishes under
        "LOG_LEVEL": "WARNING",
    }
    ports = [free_port(), free_port()]
    processes = [
        start(
            ["-m", "uvicorn", "analytics_platform.asgi:application", "--host", "127.0.0.1", "--port", str(port)]
            + ["--ws-per-message-deflate", "false"],
            {**env, "LIVE_QUEUE_EVENTS": "5" if i else "1000"},
            tmp_path / f"web{i}.log",
        )
        for i, port in enumerate(ports)
    ]
    processes.append(start(["manage.py", "rqworker", "default"], env, tmp_path / "worker.log"))
    try:
        wait_for(lambda: all(healthy(port) for port in ports), timeout=60)
        yield ports
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=20)


def receive(ws, kind: str, timeout=10.0) -> dict:
    """The next message of this type, skipping stats and nothing else."""
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        if message["type"] == kind:
            return message
        assert message["type"] == "stats", message


def quiet(ws, seconds=1.5) -> list[dict]:
    """Every non-stats message arriving within `seconds`."""
    got, deadline = [], time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = json.loads(ws.recv(timeout=left))
        except TimeoutError:
            break
        if message["type"] != "stats":
            got.append(message)
    return got


def post(port: int, key: str, events: list[dict]) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/events",
        data=json.dumps(events).encode(),
        headers={"Content-Type": "application/json", "X-API-Key": key},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (http://127.0.0.1 only)
        return json.loads(response.read())


def close_code(url: str, **kwargs) -> int:
    with connect(url, **kwargs) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    return closed.value.rcvd.code


def test_two_servers_one_worker_real_sockets(stack, project, other_project, make_key):
    one, two = (f"ws://127.0.0.1:{port}/ws/events" for port in stack)
    read, theirs = make_key(project, scopes=["read"]), make_key(other_project, scopes=["read"])
    ingest, their_ingest = make_key(project, scopes=["ingest"]), make_key(other_project, scopes=["ingest"])

    assert close_code(one) == 4401
    assert close_code(f"{two}?apiKey=wrong") == 4401
    assert close_code(one, additional_headers={"X-API-Key": ingest}) == 4403

    with (
        connect(one, additional_headers={"X-API-Key": read}) as everything,
        connect(f"{two}?apiKey={read}&eventName=purchase") as purchases,
        connect(two, additional_headers={"Authorization": f"Bearer {theirs}"}) as other,
    ):
        for ws in (everything, purchases, other):
            receive(ws, "subscribed")
        batch = [
            {"userId": "u1", "eventName": "page_view", "timestamp": "2024-05-01T12:00:00Z", "properties": {"n": 1}},
            {"userId": "u2", "eventName": "purchase", "timestamp": "2024-05-01T12:00:01Z"},
            {"userId": "u1", "eventName": "purchase", "timestamp": "2024-05-01T12:00:02Z"},
        ]
        assert post(stack[0], ingest, batch)["accepted"] == 3
        got = [receive(everything, "event")["event"] for _ in range(3)]
        assert sorted((e["userId"], e["eventName"]) for e in got) == [
            ("u1", "page_view"),
            ("u1", "purchase"),
            ("u2", "purchase"),
        ]
        assert {receive(purchases, "event")["event"]["userId"] for _ in range(2)} == {"u1", "u2"}
        assert post(stack[1], ingest, batch)["duplicates"] == 3  # stored once, so sent once
        assert quiet(everything) == [] and quiet(purchases) == [] and quiet(other, 0.1) == []

        single = {"userId": "b1", "eventName": "signup", "timestamp": "2024-05-01T12:00:00Z"}
        assert post(stack[1], their_ingest, single)["accepted"] == 1  # buffered, then a timed drain
        # a timed drain: the RQ scheduler's poll, then the worker (delivery, not speed, is tested)
        assert receive(other, "event", timeout=30)["event"]["userId"] == "b1"
        assert quiet(everything, 0.5) == []
        # the worker's counters: 1 event over the last 5 s, 1 user in the last 5 minutes
        stats = [receive(other, "stats") for _ in range(3)]
        assert {"type": "stats", "eventsPerSecond": 0.2, "activeUsers5m": 1} in stats


def test_a_socket_that_stops_reading_is_told_what_it_lost(stack, project, make_key, redis_url):
    read = make_key(project, scopes=["read"])
    small = socket.create_connection(("127.0.0.1", stack[1]))
    small.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # small, not so small that TCP crawls
    with connect(
        f"ws://127.0.0.1:{stack[1]}/ws/events?apiKey={read}", sock=small, max_size=None, ping_interval=None
    ) as ws:
        receive(ws, "subscribed")
        layer = RedisChannelLayer(hosts=[redis_url], prefix="ap:live-test:channels")  # as the servers' settings say
        padding = "x" * 5_000  # ~15 MB in all: more than the socket buffers hold
        sent = 0
        for batch in range(60):
            events = [{"eventId": f"e{batch}-{i}", "eventName": "tick", "pad": padding} for i in range(50)]
            async_to_sync(layer.group_send)(project_group(project.id), {"type": "events.stored", "events": events})
            sent += len(events)
        time.sleep(1)  # nothing read meanwhile: the server's buffers and the 5-event queue fill up
        received, dropped = 0, 0
        while received + dropped < sent:
            message = json.loads(ws.recv(timeout=10))
            if message["type"] == "event":
                received += 1
            elif message["type"] == "lagged":
                dropped += message["dropped"]
        assert dropped > 0 and received > 0 and received + dropped == sent
