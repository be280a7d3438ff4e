"""The hot path of `POST /api/v1/events`: an ASGI handler on the event loop, in front of Django.

A request that is what ingestion almost always is (a known ingest key, JSON, a Host Django
accepts) is answered here, without Django's request stack: the body is read and validated
with the same code as the Django view (events.services.events_validate), and then one Lua
script does, in one round trip to Redis, what the view does in four: it finds the key's
ingest entry (accounts.selectors, written whenever the view looks a key up), checks its
expiry and the page's Origin, takes a token from the key's ingestion bucket
(accounts.ratelimit's own Lua function), claims each event id (events.dedup's keys) and
pushes the new events onto the ingest buffer, which the workers' drainers store
(events.drainer). The answer is the view's: the same body, status, error shape and headers.

Anything else goes to Django with the body replayed, and Django answers it, exactly as it did
before this module existed: no or an unknown key (its lookup writes the entry, so the key's
next request is hot), a revoked or expired key, a refused Origin, a body that is not JSON or
too large, another content type or encoding, a Host not allowed, Redis unreachable (the view
then writes synchronously), the embedded default (no Redis at all), and a project whose
events were lately written without Redis (events.dedup: only the view's claims look those
up, so `accepted` stays exact). Whatever is answered here is never also passed on: once the
script has run, the answer is this module's.
"""

import asyncio
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs

import hiredis
import msgspec
import structlog
from django.conf import settings
from django.db import close_old_connections
from django.http.request import split_domain_port, validate_host

from accounts.auth import key_from_headers
from accounts.keys import hash_key, is_well_formed
from accounts.ratelimit import BUCKET_TAKE_LUA, BURST_FACTOR, INGEST_BUCKET_PREFIX, bucket_state
from accounts.selectors import ingest_entry_key
from analytics_platform import cors
from analytics_platform.errors import DomainError, error_body
from analytics_platform.logging import REQUEST_ID_PATTERN, access_line
from analytics_platform.redis import REDIS_DOWN
from events import dedup, queueing
from events.hot_redis import HotRedis, RedisUnavailable
from events.payload import MAX_BODY_BYTES, client_ip_of, gunzip_limited
from events.services import IngestResult, events_validate

PATH = "/api/v1/events"
CONTENT_TYPES = ("application/json", "text/plain")

# KEYS: the key's ingest entry, the buffer, its timer. ARGV: the request's Origin
# (normalized, or ""), the dedup keys' prefix, their TTL, the timer's milliseconds, the
# bucket keys' prefix, the burst factor; then either (no event has an id to claim: all minted
# on receipt) the job rows as JSON joined by commas, or "" followed by each new event's id to
# claim ("" for a minted one) and its job row. One joined argument costs Redis and the client
# one string instead of two thousand for a batch of 1,000. The dedup and bucket keys are made
# in the script from the entry (so it is one round trip; not for a Redis Cluster, as RQ is not).
# Returns {0} (no usable entry: Django answers), {2, bucket, rate} (rate limited) or
# {1, bucket, rate, project, buffer length, timer armed, claimed flags (with ids only)...}.
INGEST_LUA = (
    BUCKET_TAKE_LUA
    + """
local entry = redis.call('HMGET', KEYS[1], 'key', 'project', 'expires', 'rate', 'origins')
if not entry[1] or not entry[2] then return {0} end
local expires = tonumber(entry[3]) or 0
if expires > 0 then
  local clock = redis.call('TIME')
  if tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000) >= expires then return {0} end
end
local origin, origins = ARGV[1], entry[5] or ''
if origin ~= '' and origins ~= '' and not string.find('\\n' .. origins .. '\\n', '\\n' .. origin .. '\\n', 1, true) then
  return {0}
end
local rate = tonumber(entry[4])
local bucket = bucket_take(ARGV[5] .. entry[1], rate, rate * tonumber(ARGV[6]))
if bucket[1] == 0 then return {2, bucket[2], bucket[3], bucket[4], rate} end
local project = entry[2]
local reply = {1, bucket[2], bucket[3], bucket[4], rate, tonumber(project), 0, 0}
local rows = {}
if ARGV[7] ~= '' then rows[1] = ARGV[7] end
for i = 8, #ARGV, 2 do
  if ARGV[i] == '' or redis.call('SET', ARGV[2] .. project .. ':' .. ARGV[i], '1', 'NX', 'EX', ARGV[3]) then
    rows[#rows + 1] = ARGV[i + 1]
    reply[#reply + 1] = 1
  else
    reply[#reply + 1] = 0
  end
end
if #rows > 0 then
  -- one buffer item for the request's new events: [project id, row, row, ...]
  reply[7] = redis.call('RPUSH', KEYS[2], '[' .. project .. ',' .. table.concat(rows, ',') .. ']')
  if redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[4]) then reply[8] = 1 end
end
return reply
"""
)

logger = structlog.get_logger(__name__)
_row_encoder = msgspec.json.Encoder()
_state: dict = {}  # per event loop: the async client and its script
_projects: dict[str, int] = {}  # key hash -> project id, learnt from the key's entry
# Database reads (a project's direct-write mark, at most once a second) and the drain timer's
# scheduling (RQ's synchronous client) run here, off the event loop.
_blocking = ThreadPoolExecutor(max_workers=2, thread_name_prefix="hot-ingest")


class Fallback(Exception):
    """This request is Django's to answer."""


def enabled() -> bool:
    return bool(settings.REDIS_URL)


def _client() -> HotRedis:
    loop = asyncio.get_running_loop()
    if _state.get("loop") is not loop:
        _state.update(loop=loop, client=HotRedis(settings.REDIS_URL))
    return _state["client"]


async def handle(scope, receive, send, django) -> None:
    """Answers the POST, or hands it to `django` (an ASGI app) with its body replayed."""
    started = time.perf_counter()
    messages: list[dict] = []
    try:
        headers = _headers(scope)
        key_hash = _preconditions(scope, headers)
        await _read_body(receive, headers, messages)
        body = b"".join(message.get("body", b"") for message in messages)
        status, body, extra, project_id = await _answer(scope, headers, key_hash, body)
    except Fallback:
        return await django(scope, _replay(messages, receive), send)
    except Exception:  # a bug here must not be a 500: logged, and the view answers instead
        logger.exception("hot_ingest_failed")
        return await django(scope, _replay(messages, receive), send)
    supplied = headers.get("x-request-id", "")
    request_id = supplied if REQUEST_ID_PATTERN.match(supplied) else os.urandom(16).hex()
    response_headers = [(b"content-type", b"application/json"), *_STATIC_HEADERS, *extra]
    response_headers += [(b"content-length", str(len(body)).encode()), (b"x-request-id", request_id.encode())]
    origin = headers.get("origin")
    if origin is not None:
        response_headers += [
            (b"access-control-expose-headers", cors.EXPOSE_HEADERS.encode()),
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"vary", b"Origin"),
        ]
    await send({"type": "http.response.start", "status": status, "headers": response_headers})
    await send({"type": "http.response.body", "body": body})
    access_line(
        method="POST",
        path=PATH,
        status=status,
        duration_ms=round((time.perf_counter() - started) * 1000, 2),
        project_id=project_id,
        request_id=request_id,
        hot=True,
    )


def _security_headers() -> list[tuple[bytes, bytes]]:
    """What Django's SecurityMiddleware and XFrameOptionsMiddleware add to the view's answer."""
    pairs = [(b"allow", b"POST"), (b"x-frame-options", settings.X_FRAME_OPTIONS.encode())]
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        pairs.append((b"x-content-type-options", b"nosniff"))
    if settings.SECURE_REFERRER_POLICY:
        pairs.append((b"referrer-policy", settings.SECURE_REFERRER_POLICY.encode()))
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        pairs.append((b"cross-origin-opener-policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY.encode()))
    return pairs


_STATIC_HEADERS = _security_headers()


class _Headers(dict):
    """Header values by lower-case name; `get` takes any case (as Django's request.headers)."""

    def get(self, name: str, default=None):
        return super().get(name.lower(), default)


def _headers(scope) -> _Headers:
    """The request's headers by lower-case name, as WSGI would decode them (Latin-1); a
    repeated header keeps its first value, and makes Django answer if it matters."""
    headers = _Headers()
    for name, value in scope["headers"]:
        key = name.decode("latin-1").lower()
        if key in headers:
            if key in ("x-api-key", "authorization", "content-type", "content-encoding", "origin", "host"):
                raise Fallback
            continue
        headers[key] = value.decode("latin-1")
    return headers


def _preconditions(scope, headers: dict[str, str]) -> str:
    """The key's hash, if this request is one the hot path answers."""
    host = headers.get("host", "")
    allowed = settings.ALLOWED_HOSTS or ([".localhost", "127.0.0.1", "[::1]"] if settings.DEBUG else [])
    domain, _port = split_domain_port(host)
    if not domain or not validate_host(domain, allowed):
        raise Fallback
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in CONTENT_TYPES and not content_type.endswith("+json"):
        raise Fallback
    if headers.get("content-encoding", "").strip().lower() not in ("", "identity", "gzip"):
        raise Fallback
    plaintext = _key_of(scope, headers)
    if plaintext is None or not is_well_formed(plaintext):
        raise Fallback
    return hash_key(plaintext)


def _key_of(scope, headers: _Headers) -> str | None:
    """accounts.auth's rule: the headers' key, else (ingestion only) ?apiKey=."""
    key = key_from_headers(headers)
    if key is not None:
        return key
    query = scope.get("query_string", b"")
    if b"apiKey=" not in query:
        return None
    values = parse_qs(query.decode("latin-1")).get("apiKey")
    return (values[-1].strip() or None) if values else None


async def _read_body(receive, headers: dict[str, str], messages: list[dict]) -> None:
    declared = headers.get("content-length", "")
    if declared and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise Fallback
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            raise Fallback  # the client went away: Django's handler deals with that as always
        size += len(message.get("body", b""))
        if size > MAX_BODY_BYTES:
            raise Fallback
        if not message.get("more_body", False):
            return


def _replay(messages: list[dict], receive):
    """A `receive` that gives the messages read so far again, then whatever is still to come."""
    pending = list(messages)

    async def replayed():
        return pending.pop(0) if pending else await receive()

    return replayed


async def _answer(scope, headers: dict[str, str], key_hash: str, body: bytes):
    """(status, body bytes, extra headers, project id) of an answer given here."""
    if headers.get("content-encoding", "").strip().lower() == "gzip":
        try:
            body = gunzip_limited(body)
        except Exception:  # not gzip, truncated, too large: Django says which
            raise Fallback from None
    if not body.strip():
        raise Fallback
    client_address = (scope.get("client") or (None,))[0]
    try:
        result, rows, _, claims = events_validate(
            body,
            client_ip=client_ip_of(client_address, headers.get("x-forwarded-for", "")),
            user_agent=headers.get("user-agent", "")[:2048],
        )
    except DomainError:
        raise Fallback from None  # a bad body: authenticated first, then answered, by the view
    client = _client()
    project_id = _projects.get(key_hash)
    try:
        if project_id is None:
            project = await client.call("HGET", ingest_entry_key(key_hash), "project")
            if not isinstance(project, bytes):
                raise Fallback
            project_id = _projects[key_hash] = int(project)
        if await _written_directly_lately(project_id):
            raise Fallback
        reply = await client.eval(INGEST_LUA, _script_keys(key_hash), _script_args(headers, rows, claims))
    except RedisUnavailable:
        raise Fallback from None
    except hiredis.ReplyError:
        logger.exception("hot_ingest_script_failed")
        raise Fallback from None
    outcome = reply[0]
    if outcome == 0:
        raise Fallback
    state = bucket_state(int(reply[4]), outcome == 1, reply[1] / 1000, reply[2], reply[3])
    rate_headers = [(name.lower().encode(), value.encode()) for name, value in state.headers().items()]
    if outcome == 2:
        wait = state.reset_seconds
        message = f"Request was throttled. Expected available in {wait} second{'s' if wait != 1 else ''}."
        body = json.dumps(error_body("rate_limited", message)).encode()
        return 429, body, [*rate_headers, (b"retry-after", str(wait).encode())], project_id
    armed, claimed = reply[7], reply[8:]
    if armed:
        await asyncio.get_running_loop().run_in_executor(_blocking, _schedule_drain)
    accepted = sum(claimed) if claimed else (len(rows) if reply[6] else 0)
    return _ingest_answer(result, len(rows), accepted) + (rate_headers, project_id)


def _ingest_answer(result: IngestResult, offered: int, accepted: int) -> tuple[int, bytes]:
    result.accepted = accepted
    result.duplicates += offered - accepted
    if result.accepted or result.duplicates:
        return 202, _compact(result.as_body())
    body = error_body("all_events_rejected", "Every event was rejected; see rejected.", None)
    return 400, _compact({**result.as_body(), **body})


def _compact(value) -> bytes:
    """As DRF's JSONRenderer writes it."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _script_keys(key_hash: str) -> list[str]:
    return [ingest_entry_key(key_hash), queueing.BUFFER_KEY, queueing.ARMED_KEY]


def _script_args(headers: dict[str, str], rows: list[list], claims: list[str | None]) -> list:
    origin = headers.get("origin")
    args = [
        "" if origin is None else origin.strip().lower().rstrip("/"),
        dedup.KEY_PREFIX,
        dedup.TTL_SECONDS,
        settings.EVENT_BUFFER_TIMEOUT_MS,
        INGEST_BUCKET_PREFIX,
        BURST_FACTOR,
    ]
    if not any(claims):
        return [*args, _row_encoder.encode(rows)[1:-1]]  # "[row,row,...]" without its brackets
    args.append("")
    for row, claim in zip(rows, claims, strict=True):
        args += ("" if claim is None else claim, _row_encoder.encode(row))
    return args


async def _written_directly_lately(project_id: int) -> bool:
    cached = dedup.mark_cached(project_id)  # never the database: this is the event loop
    if cached is not None:
        return cached
    return await asyncio.get_running_loop().run_in_executor(_blocking, _mark_read, project_id)


def _mark_read(project_id: int) -> bool:
    close_old_connections()  # this thread's connection may have died with a database restart
    return dedup.written_directly_lately(project_id)


def _schedule_drain() -> None:
    try:
        queueing.schedule_drain()
    except REDIS_DOWN as exc:  # the events are in the buffer; a drainer or the next push takes them
        logger.warning("hot_ingest_drain_schedule_failed", error=type(exc).__name__)
