"""The live stream's consumer (events/live/consumers.py) through Channels' WebsocketCommunicator,
on the configured channel layer (in memory by default, Redis in CI), with events stored by
the real persistence service. Real sockets and processes: tests/integration/test_live_socket.py."""

import asyncio
import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from accounts.selectors import api_key_get_by_plaintext
from accounts.services import api_key_set_active
from analytics_platform.asgi import application
from events.live.hub import hub
from events.live.publish import listening, project_group
from events.live.stats import live_count, live_stats
from tests.helpers import store_events

pytestmark = pytest.mark.django_db(transaction=True)  # the consumer reads keys from its own thread
T0 = datetime(2024, 5, 1, 12, tzinfo=UTC)


def run(coroutine_function):
    async def then_wind_down():
        await coroutine_function()
        await hub().shutdown()

    return async_to_sync(then_wind_down)()


async def opened(path: str, key: str | None = None, **headers):
    headers = [(k.encode(), v.encode()) for k, v in headers.items()]
    if key:
        headers.append((b"x-api-key", key.encode()))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    accepted, _ = await communicator.connect()
    assert accepted
    return communicator


async def connected(path: str, key: str | None = None, **headers):
    """A socket that has said it is subscribed: from here on it receives what is stored."""
    communicator = await opened(path, key, **headers)
    assert (await next_of(communicator, "subscribed"))["type"] == "subscribed"
    return communicator


async def next_of(communicator, kind: str, timeout=3.0, skip=("stats",)) -> dict:
    """The next message of this type, skipping those of the `skip` types (and no others)."""
    while True:
        message = json.loads(await communicator.receive_from(timeout=timeout))
        if message["type"] == kind:
            return message
        assert message["type"] in skip, message


async def store(project, events):
    await database_sync_to_async(store_events)(project, events, publish=True)


def test_bad_revoked_and_ingest_only_keys_are_closed_before_any_event(project, make_key):
    revoked = make_key(project, scopes=["read"])
    api_key_set_active(api_key=api_key_get_by_plaintext(plaintext=revoked), is_active=False)
    ingest_only = make_key(project, scopes=["ingest"])

    async def body():
        for path, key, code in [
            ("/ws/events", None, 4401),
            ("/ws/events", "not-a-key", 4401),
            ("/ws/events", revoked, 4401),
            ("/ws/events", ingest_only, 4403),
            (f"/ws/events?apiKey={ingest_only}", None, 4403),
        ]:
            communicator = await opened(path, key)
            assert await communicator.receive_output(timeout=3) == {"type": "websocket.close", "code": code}
            await communicator.wait()

    run(body)


def test_events_reach_their_project_once_with_filters_and_subscribe(project, other_project, make_key):
    key, other_key = make_key(project, scopes=["read"]), make_key(other_project, scopes=["read"])

    async def body():
        everything = await connected("/ws/events", key)
        purchases = await connected(f"/ws/events?apiKey={key}&eventName=purchase")
        by_bearer = await connected("/ws/events?userId=u2", Authorization=f"Bearer {key}")
        theirs = await connected("/ws/events", other_key)
        await store(project, [("u1", "page_view", T0, {"n": 1}), ("u2", "purchase", T0, {}), ("u1", "purchase", T0)])

        got = [(await next_of(everything, "event"))["event"] for _ in range(3)]
        pairs = [(e["userId"], e["eventName"]) for e in got]
        assert pairs == [("u1", "page_view"), ("u2", "purchase"), ("u1", "purchase")]
        assert set(got[0]) == {"eventId", "userId", "eventName", "timestamp", "properties", "sessionId", "pageUrl"}
        assert got[0]["properties"] == {"n": 1} and got[0]["timestamp"] == "2024-05-01T12:00:00Z"
        assert [(await next_of(purchases, "event"))["event"]["userId"] for _ in range(2)] == ["u2", "u1"]
        assert (await next_of(by_bearer, "event"))["event"]["eventName"] == "purchase"
        for communicator in (everything, purchases, by_bearer):
            assert await communicator.receive_nothing(timeout=0.3)  # each event once
        assert await theirs.receive_nothing(timeout=0.3)

        # the same events again are duplicates: nothing is stored, nothing is sent
        await store(project, [("u1", "page_view", T0, {"n": 1})])
        await everything.send_to(text_data=json.dumps({"type": "subscribe", "eventName": "signup"}))
        assert await next_of(everything, "subscribed") == {"type": "subscribed", "eventName": "signup", "userId": None}
        later = [("u3", "page_view", T0 + timedelta(seconds=1)), ("u3", "signup", T0 + timedelta(seconds=2))]
        await store(project, later)
        assert (await next_of(everything, "event"))["event"]["eventName"] == "signup"
        assert await everything.receive_nothing(timeout=0.3)

        await everything.send_to(text_data="{not json")
        assert (await next_of(everything, "error"))["error"]["code"] == "invalid_input"
        await everything.send_to(text_data=json.dumps({"type": "subscribe", "userId": ["x"]}))
        assert (await next_of(everything, "error"))["error"]["code"] == "invalid_input"
        for communicator in (everything, purchases, by_bearer, theirs):
            await communicator.disconnect()

    run(body)


def test_a_slow_reader_is_told_how_many_events_it_lost(project, make_key, settings):
    settings.LIVE_QUEUE_EVENTS = 3
    key = make_key(project, scopes=["read"])

    async def body():
        communicator = await connected("/ws/events", key)
        layer = get_channel_layer()
        batch = [{"eventId": f"e{i}", "userId": "u", "eventName": "tick", "properties": {"i": i}} for i in range(10)]
        # one batch handed over at once: the socket's queue takes 3, the other 7 are dropped
        await layer.group_send(project_group(project.id), {"type": "events.stored", "events": batch})
        got = [(await next_of(communicator, "event"))["event"]["eventId"] for _ in range(3)]
        assert got == ["e0", "e1", "e2"]
        assert await next_of(communicator, "lagged") == {"type": "lagged", "dropped": 7}
        await layer.group_send(project_group(project.id), {"type": "events.stored", "events": batch[:1]})
        assert (await next_of(communicator, "event"))["event"]["eventId"] == "e0"  # streaming again
        await communicator.disconnect()

    run(body)


def test_stats_come_from_counters_the_writer_keeps(project, make_key, settings):
    settings.LIVE_STATS_SECONDS = 1
    key = make_key(project, scopes=["read"])
    users = [f"stats-{project.id}-{i}" for i in range(3)]

    async def body():
        communicator = await connected("/ws/events", key)
        await store(project, [(users[i % 3], "page_view", T0 + timedelta(seconds=i)) for i in range(30)])
        seen = []
        for _ in range(4):
            seen.append(await next_of(communicator, "stats", skip=("event",)))
        assert set(seen[0]) == {"type", "eventsPerSecond", "activeUsers5m"}
        # 30 events in the last 5 s: 6.0/s in the stats sent a second later
        assert max(s["eventsPerSecond"] for s in seen) >= 6.0
        assert min(s["activeUsers5m"] for s in seen) >= 3
        await communicator.disconnect()

    run(body)


def test_live_counters_rate_and_active_users():
    project_id, now = random.randrange(10**9, 2 * 10**9), 1_700_000_000.5  # an id no test project has
    live_count(project_id=project_id, user_ids=["a", "b", "a"], now=now - 3)
    live_count(project_id=project_id, user_ids=["c"] * 7, now=now - 1)
    live_count(project_id=project_id, user_ids=["d"], now=now)  # this second is not over yet
    live_count(project_id=project_id, user_ids=["old"], now=now - 600)
    assert live_stats(project_id=project_id, now=now) == {"type": "stats", "eventsPerSecond": 2.0, "activeUsers5m": 4}
    assert live_stats(project_id=project_id, now=now + 3600)["activeUsers5m"] == 0


def test_events_the_channel_layer_dropped_are_reported_as_lagged(project, make_key):
    """Each message says where it starts in its publisher's count; a jump is a loss."""
    key = make_key(project, scopes=["read"])

    def batch(first: int, count: int) -> dict:
        events = [{"eventId": f"e{first + i}", "userId": "u", "eventName": "tick"} for i in range(count)]
        return {"type": "events.stored", "events": events, "publisher": "p1", "first": first}

    async def body():
        communicator = await connected("/ws/events", key)
        layer = get_channel_layer()
        group = project_group(project.id)
        await layer.group_send(group, batch(0, 2))
        assert [(await next_of(communicator, "event"))["event"]["eventId"] for _ in range(2)] == ["e0", "e1"]
        await layer.group_send(group, batch(5, 2))  # events 2..4 never arrived
        # the lost three, and this batch's two, which came while the socket was lagging
        assert await next_of(communicator, "lagged") == {"type": "lagged", "dropped": 5}
        await layer.group_send(group, batch(7, 1))
        assert (await next_of(communicator, "event"))["event"]["eventId"] == "e7"
        await communicator.disconnect()

    run(body)


def test_events_are_only_published_while_some_socket_listens(project, make_key):
    key = make_key(project, scopes=["read"])

    async def body():
        assert not await sync_to_async(listening)(project.id)  # nothing is built for nobody
        communicator = await connected("/ws/events", key)
        assert await sync_to_async(listening)(project.id)
        await communicator.disconnect()
        await asyncio.sleep(0.1)  # the hub unregisters once its task has wound down
        assert not await sync_to_async(listening)(project.id)

    run(body)
