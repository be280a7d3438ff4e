"""The async hot path of POST /api/v1/events (events.hot) answers exactly what the Django view
answers, and stores the same events, against a real PostgreSQL and Redis.

The same sequence of requests (valid, partly rejected, duplicated, all rejected, bad bodies,
missing, unknown, revoked and read-only keys, origins, beacons, gzip, a rate limit) is sent
through the whole ASGI application twice, each time to a fresh project: once with the hot
path on and once with it off (every request then goes to the view). Answers (status, body,
headers) and the stored events must be equal, and the hot run must have answered most of
the requests itself.
"""

import asyncio
import gzip
import json
from datetime import timedelta

import pytest
from django.db import connections

from accounts.models import ApiKey
from accounts.services import api_key_create, api_key_set_active, organization_get_or_create, project_get_or_create
from analytics_platform.asgi import application
from events import hot
from events.jobs import store_buffered
from events.models import Event
from events.queueing import BUFFER_KEY

pytestmark = pytest.mark.redis


@pytest.fixture(autouse=True)
def _hot_threads_close_their_connections():
    yield  # the hot path reads a project's mark on a thread of its own: its connection goes too
    hot._blocking.submit(connections.close_all).result()


COMPARED_HEADERS = (
    "content-type",
    "allow",
    "access-control-allow-origin",
    "access-control-expose-headers",
    "vary",
    "x-ratelimit-limit",
    "retry-after",
    "x-content-type-options",
    "x-frame-options",
    "referrer-policy",
)


async def _call(method: str, path: str, body: bytes, headers: dict[str, str], query: bytes = b""):
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"content-length", str(len(body)).encode()),
            *[(k.lower().encode(), v.encode()) for k, v in headers.items()],
        ],
        "client": ("203.0.113.9", 5000),
        "server": ("localhost", 80),
    }
    chunks = [body[i : i + 700] for i in range(0, len(body), 700)] or [b""]
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    sent = []

    async def receive():
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)

    async def send(message):
        sent.append(message)

    await application(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    response_headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], content, response_headers


def call(*args, **kwargs):
    return asyncio.run(_call(*args, **kwargs))


def requests_for(keys: dict[str, str]) -> list[tuple]:
    """(label, method, body, headers, query) for one project's keys."""
    ingest, read_only = keys["ingest"], keys["read"]
    json_headers = {"Content-Type": "application/json", "X-API-Key": ingest}
    one = {"userId": "u1", "eventName": "page_view", "timestamp": "2026-11-30T10:00:00Z", "properties": {"a": 1.5}}
    batch = [
        one,
        {**one, "userId": "u2", "properties": {"big": 1e16, "tiny": 1e-7, "s": "é\x01"}},
        {"userId": "", "eventName": "x"},
        {**one, "userId": "u3", "timestamp": "2099-01-01T00:00:00Z"},
        {**one, "userId": "u4", "eventName": "a\u0000b"},
        one,
        {**one, "userId": "u5", "eventId": "fixed-1", "sessionId": "s1", "pageUrl": "https://x/y"},
    ]
    dumps = lambda v: json.dumps(v).encode()  # noqa: E731
    return [
        ("one event", "POST", dumps(one), json_headers, b""),
        ("the same again", "POST", dumps(one), json_headers, b""),
        ("a batch", "POST", dumps(batch), json_headers, b""),
        ("the batch again", "POST", dumps(batch), json_headers, b""),
        (
            "sentAt",
            "POST",
            dumps({"batch": [{**one, "userId": "u6"}], "sentAt": "2026-11-30T10:00:05Z"}),
            json_headers,
            b"",
        ),
        ("bad sentAt", "POST", dumps({"batch": [one], "sentAt": "soon"}), json_headers, b""),
        ("all rejected", "POST", dumps([{"userId": 5}, "x"]), json_headers, b""),
        (
            "lone surrogate",
            "POST",
            rb'[{"userId": "u7", "eventName": "\ud800"}, {"userId": "u7", "eventName": "ok"}]',
            json_headers,
            b"",
        ),
        ("not json", "POST", b"{nope", json_headers, b""),
        ("empty", "POST", b"", json_headers, b""),
        ("empty array", "POST", b"[]", json_headers, b""),
        (
            "gzip",
            "POST",
            gzip.compress(dumps({**one, "userId": "u8"})),
            {**json_headers, "Content-Encoding": "gzip"},
            b"",
        ),
        ("bad gzip", "POST", b"not gzip", {**json_headers, "Content-Encoding": "gzip"}, b""),
        ("xml", "POST", b"<e/>", {**json_headers, "Content-Type": "application/xml"}, b""),
        ("no key", "POST", dumps(one), {"Content-Type": "application/json"}, b""),
        ("unknown key", "POST", dumps(one), {**json_headers, "X-API-Key": "ak_" + "x" * 40}, b""),
        ("read-only key", "POST", dumps(one), {**json_headers, "X-API-Key": read_only}, b""),
        (
            "bearer",
            "POST",
            dumps({**one, "userId": "u9"}),
            {"Content-Type": "application/json", "Authorization": f"Bearer {ingest}"},
            b"",
        ),
        (
            "beacon",
            "POST",
            dumps({**one, "userId": "u10"}),
            {"Content-Type": "text/plain;charset=UTF-8", "Origin": "https://shop.example"},
            f"apiKey={ingest}".encode(),
        ),
        (
            "allowed origin",
            "POST",
            dumps({**one, "userId": "u11"}),
            {**json_headers, "Origin": "https://SHOP.example/"},
            b"",
        ),
        (
            "refused origin",
            "POST",
            dumps({**one, "userId": "u12"}),
            {**json_headers, "Origin": "https://evil.example"},
            b"",
        ),
        ("preflight", "OPTIONS", b"", {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}, b""),
        ("too many", "POST", dumps([one] * 1001), json_headers, b""),
    ]


def fresh_project(name: str):
    organization = organization_get_or_create(name=f"Org {name}")
    project = project_get_or_create(organization=organization, name=name, timezone_name="UTC")
    project.allowed_origins = "https://shop.example"
    project.save()
    keys = {scope: api_key_create(project=project, name=scope, scopes=[scope])[1] for scope in ("ingest", "read")}
    return project, keys


def run(name: str, monkeypatch, *, hot_on: bool):
    monkeypatch.setattr(hot, "enabled", lambda: hot_on)
    answered_hot = []
    original = hot.access_line
    monkeypatch.setattr(hot, "access_line", lambda **fields: (answered_hot.append(fields), original(**fields)))
    project, keys = fresh_project(name)
    answers = {}
    for label, method, body, headers, query in requests_for(keys):
        status, content, response_headers = call(method, "/api/v1/events", body, headers, query)
        parsed = json.loads(content) if content else None
        answers[label] = (status, parsed, {h: response_headers.get(h) for h in COMPARED_HEADERS})
    return project, keys, answers, len(answered_hot)


def stored(project) -> list:
    """The project's events, an event without a timestamp under "r:" (its id is random)."""
    rows = Event.objects.filter(project=project).values_list(
        "event_id", "user_id", "event_name", "timestamp", "properties", "session_id", "page_url", "ip_address"
    )
    return sorted(("r:" if row[0].startswith("r:") else row[0], *row[1:]) for row in rows)


def test_the_hot_path_answers_and_stores_what_the_view_does(postgres, redis_cache, monkeypatch):
    hot_project, _, hot_answers, answered_hot = run("Hot", monkeypatch, hot_on=True)
    view_project, _, view_answers, answered_by_view = run("View", monkeypatch, hot_on=False)
    assert answered_by_view == 0
    assert answered_hot >= 10  # a key's first request goes to the view, which writes its entry
    for label, answer in view_answers.items():
        assert hot_answers[label] == answer, (label, hot_answers[label], answer)
    assert hot_answers["one event"][0] == 202 and hot_answers["the same again"][1]["duplicates"] == 1
    assert hot_answers["refused origin"][0] == 403 and hot_answers["read-only key"][0] == 403
    store_buffered(redis_cache, BUFFER_KEY)
    hot_rows, view_rows = stored(hot_project), stored(view_project)
    assert len(hot_rows) == 9
    assert [row[:3] + row[4:] for row in hot_rows] == [row[:3] + row[4:] for row in view_rows]  # dedup ids too
    for hot_row, view_row in zip(hot_rows, view_rows, strict=True):  # u6 (sentAt) and u7 (none): their receipt
        assert (
            abs(hot_row[3] - view_row[3]) < timedelta(seconds=30)
            if hot_row[1] in ("u6", "u7")
            else hot_row[3] == view_row[3]
        )


def test_a_rate_limited_key_gets_429_from_the_hot_path_and_nothing_is_stored(postgres, redis_cache, monkeypatch):
    monkeypatch.setattr(hot, "enabled", lambda: True)
    project, keys = fresh_project("Limited")
    ApiKey.objects.filter(name="ingest", project=project).update(ingest_rate_limit=1)  # bursts of 2
    headers = {"Content-Type": "application/json", "X-API-Key": keys["ingest"]}
    answers = [
        call("POST", "/api/v1/events", json.dumps({"userId": f"u{i}", "eventName": "e"}).encode(), headers)
        for i in range(4)
    ]
    statuses = [status for status, _, _ in answers]
    assert statuses[:2] == [202, 202] and 429 in statuses[2:]
    status, content, response_headers = next(a for a in answers if a[0] == 429)
    assert json.loads(content)["error"]["code"] == "rate_limited"
    assert response_headers["retry-after"] == "1" and response_headers["x-ratelimit-limit"] == "1"
    store_buffered(redis_cache, BUFFER_KEY)
    assert Event.objects.filter(project=project).count() == statuses.count(202)


@pytest.mark.parametrize("hot_on", [True, False], ids=["hot path", "view"])
def test_an_id_minted_on_receipt_is_not_claimed_and_a_client_id_like_it_is(postgres, redis_cache, monkeypatch, hot_on):
    monkeypatch.setattr(hot, "enabled", lambda: hot_on)
    project, keys = fresh_project(f"Minted {hot_on}")
    headers = {"Content-Type": "application/json", "X-API-Key": keys["ingest"]}
    call("POST", "/api/v1/events", json.dumps({"userId": "u0", "eventName": "e"}).encode(), headers)  # the entry
    looks_minted = "r:" + "0" * 32
    body = json.dumps([{"userId": "u", "eventName": "e"}, {"userId": "u", "eventName": "e", "eventId": looks_minted}])
    answers = [json.loads(call("POST", "/api/v1/events", body.encode(), headers)[1]) for _ in range(2)]
    assert [(a["accepted"], a["duplicates"]) for a in answers] == [(2, 0), (1, 1)]
    assert redis_cache.keys(f"dedup:{project.id}:*") == [f"dedup:{project.id}:{looks_minted}".encode()]
    store_buffered(redis_cache, BUFFER_KEY)
    ids = list(Event.objects.filter(project=project).values_list("event_id", flat=True))
    assert len(ids) == 4 and len(set(ids)) == 4 and ids.count(looks_minted) == 1


@pytest.mark.parametrize("hot_on", [True, False], ids=["hot path", "view"])
def test_a_requests_new_events_are_one_buffer_item(postgres, redis_cache, monkeypatch, hot_on):
    monkeypatch.setattr(hot, "enabled", lambda: hot_on)
    project, keys = fresh_project(f"One item {hot_on}")
    headers = {"Content-Type": "application/json", "X-API-Key": keys["ingest"]}
    first = [{"userId": "u", "eventName": "e", "eventId": f"a{i}"} for i in range(3)]
    second = [first[1], {"userId": "u", "eventName": "e", "eventId": "b"}]
    third = [{"userId": f"m{i}", "eventName": "e"} for i in range(3)]  # ids minted: nothing claimed
    for body in (first, second, third):
        assert call("POST", "/api/v1/events", json.dumps(body).encode(), headers)[0] == 202
    items = [json.loads(item) for item in redis_cache.lrange(BUFFER_KEY, 0, -1)]
    assert [(item[0], [row[0] for row in item[1:]]) for item in items[:2]] == [
        (project.id, ["a0", "a1", "a2"]),
        (project.id, ["b"]),  # the repeat is not in it
    ]
    assert items[2][0] == project.id and [row[0][:2] for row in items[2][1:]] == ["r:"] * 3
    assert store_buffered(redis_cache, BUFFER_KEY) == 7
    users = Event.objects.filter(project=project, event_id__startswith="r:").order_by("id")
    assert list(users.values_list("user_id", flat=True)) == ["m0", "m1", "m2"]  # in the request's order


def test_a_revoked_key_is_refused_at_once_though_the_hot_path_knew_it(postgres, redis_cache, monkeypatch):
    monkeypatch.setattr(hot, "enabled", lambda: True)
    project, keys = fresh_project("Revoked")
    headers = {"Content-Type": "application/json", "X-API-Key": keys["ingest"]}
    body = json.dumps({"userId": "u", "eventName": "e"}).encode()
    assert [call("POST", "/api/v1/events", body, headers)[0] for _ in range(2)] == [202, 202]
    api_key_set_active(api_key=ApiKey.objects.get(project=project, name="ingest"), is_active=False)
    status, content, _ = call("POST", "/api/v1/events", body, headers)
    assert status == 401 and json.loads(content)["error"]["code"] == "unauthorized"


def test_with_redis_down_the_view_writes_synchronously(postgres, monkeypatch, settings):
    monkeypatch.setattr(hot, "enabled", lambda: True)
    project, keys = fresh_project("No Redis")
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    headers = {"Content-Type": "application/json", "X-API-Key": keys["ingest"]}
    status, content, _ = call("POST", "/api/v1/events", json.dumps({"userId": "u", "eventName": "e"}).encode(), headers)
    assert status == 202 and json.loads(content)["accepted"] == 1
    assert Event.objects.filter(project=project).count() == 1
