"""The live event stream, `ws://host/ws/events` (API.md, "Live stream").

Thin on purpose: authenticate, join the project's stream through this process's hub
(events.live.hub), say `{"type": "subscribed", ...filters}`, forward. Events are published by
the writer after commit (events.live.publish), each serialized once for every socket; stats
are counted by the writer too (events.live.stats).

Two ways in, one function (`_authenticate`): an API key (`X-API-Key`, `Authorization:
Bearer` or `?apiKey=`, read scope), from any origin, as the API takes it; or, for the
dashboard, a signed-in person's session (Channels' AuthMiddlewareStack, in
analytics_platform.routing) with `?project=<slug>`, looked up among the person's projects as
the pages do. A browser sends the cookie whichever site's page opens the socket, so the
session counts only when the Origin is one of ALLOWED_HOSTS (Channels'
AllowedHostsOriginValidator rule); from another site it is as if there were none. Every
refusal of a person is 4401, as for a missing key: another organization's project cannot be
told from one that does not exist.

A slow reader must not slow anyone else: the hub hands each batch to `deliver`, which never
waits; it queues the socket's events up to LIVE_QUEUE_EVENTS and a separate task writes them
out. When the queue is full the socket is "lagging": its events are dropped, counted, and once
the queue has drained it gets `{"type": "lagged", "dropped": n}` in their place, then events
again. Dead sockets are found by the ASGI server's pings
(uvicorn: every 20 s, 20 s to answer) and cleaned up in `disconnect`.
"""

import asyncio
import json
import re
from urllib.parse import parse_qs, urlparse

import structlog
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.security.websocket import AllowedHostsOriginValidator
from django.conf import settings

from accounts.auth import key_from_headers
from accounts.selectors import api_key_get_by_plaintext, projects_for_user
from accounts.services import api_key_touch
from events.live.hub import hub
from events.live.publish import sockets_loop_set
from events.live.stats import live_stats

logger = structlog.get_logger(__name__)

UNAUTHORIZED, FORBIDDEN = 4401, 4403
FILTERS = {"eventName": 200, "userId": 255}  # filter → longest value accepted
SLUG = re.compile(r"[-a-zA-Z0-9_]{1,100}")  # a project's slug, as the pages' URLs take it


class _Headers:
    """An ASGI scope's headers with case-insensitive `get`, as key_from_headers expects."""

    def __init__(self, scope):
        self.values = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}

    def get(self, name: str, default=""):
        return self.values.get(name.lower(), default)


def _authenticate(scope, query: dict) -> tuple[int | None, int | None]:
    """(project id, None) for a usable key with the read scope, or without a key for a
    same-site session of a person who may see the `project` slug; else (None, close code)."""
    plaintext = key_from_headers(_Headers(scope)) or query.get("apiKey")
    if plaintext:
        api_key = api_key_get_by_plaintext(plaintext=plaintext)
        if api_key is None or not api_key.is_active or api_key.is_expired:
            return None, UNAUTHORIZED
        if not api_key.has_scope("read"):
            return None, FORBIDDEN
        api_key_touch(api_key=api_key)
        return api_key.project_id, None
    user, slug = scope.get("user"), query.get("project", "")
    if user is None or not user.is_authenticated or not SLUG.fullmatch(slug) or not _same_site(scope):
        return None, UNAUTHORIZED
    project_id = projects_for_user(user).filter(slug=slug).values_list("id", flat=True).first()
    return (project_id, None) if project_id is not None else (None, UNAUTHORIZED)


def _same_site(scope) -> bool:
    """Whether the socket's Origin is one of ALLOWED_HOSTS, by Channels' own rule (read at
    each call, so a changed setting counts). No Origin, or one that is not a URL: no."""
    origin = _Headers(scope).get("origin")
    try:
        parsed = urlparse(origin) if origin else None
        return AllowedHostsOriginValidator(None).valid_origin(parsed)
    except ValueError:  # "http://[::1", a port out of range
        return False


def _clean_filters(raw: dict) -> dict:
    """{"eventName": str | None, "userId": str | None}; ValueError naming a bad one."""
    filters = {}
    for name, longest in FILTERS.items():
        value = raw.get(name)
        if value in (None, ""):
            filters[name] = None
        elif isinstance(value, str) and len(value) <= longest:
            filters[name] = value
        else:
            raise ValueError(f"{name} must be a string of at most {longest} characters")
    return filters


class EventStreamConsumer(AsyncWebsocketConsumer):
    # no channel of its own on the layer (a blocking Redis read per socket): the hub reads
    # the project's group once for the whole process (get_channel_layer answers None here)
    channel_layer_alias = "no layer per socket"
    project_id: int | None = None

    async def connect(self):
        # accepted first: a close code only reaches the client on an open socket
        await self.accept()
        query = {k: v[-1] for k, v in parse_qs(self.scope.get("query_string", b"").decode("latin-1")).items()}
        project_id, refusal = await database_sync_to_async(_authenticate)(self.scope, query)
        if refusal is not None:
            logger.info("live_refused", code=refusal)
            await self.close(code=refusal)
            return
        try:
            self.filters = _clean_filters(query)
        except ValueError as exc:
            await self._send({"type": "error", "error": {"code": "invalid_input", "message": str(exc)}})
            await self.close(code=4400)
            return
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=settings.LIVE_QUEUE_EVENTS)
        self.lagging, self.dropped = False, 0
        self.send_lock = asyncio.Lock()
        self.project_id = project_id
        sockets_loop_set(asyncio.get_running_loop())
        await hub().join(project_id, self)
        self.tasks = [asyncio.create_task(self._forward()), asyncio.create_task(self._stats())]
        logger.info("live_connected", project_id=project_id, **self.filters)
        # the client's signal that the stream is live: events stored from now on will come
        await self._send({"type": "subscribed", **self.filters})

    async def disconnect(self, code):
        if self.project_id is None:
            return
        for task in self.tasks:
            task.cancel()
        hub().leave(self.project_id, self)
        logger.info("live_disconnected", project_id=self.project_id, code=code)

    async def receive(self, text_data=None, bytes_data=None):
        try:
            message = json.loads(text_data if text_data is not None else bytes_data)
            if not isinstance(message, dict) or message.get("type") != "subscribe":
                raise ValueError('the only message a client sends is {"type": "subscribe", ...}')
            self.filters = _clean_filters(message)
        except ValueError as exc:  # includes malformed JSON
            await self._send({"type": "error", "error": {"code": "invalid_input", "message": str(exc)}})
            return
        await self._send({"type": "subscribed", **self.filters})

    def deliver(self, events: list[dict], texts: list[str]) -> None:
        """From this process's hub: a batch of newly stored events of this project (and their
        texts). Never waits: a full queue makes the socket lag instead."""
        wanted_name, wanted_user = self.filters["eventName"], self.filters["userId"]
        for event, text in zip(events, texts, strict=True):
            if (wanted_name and event["eventName"] != wanted_name) or (wanted_user and event["userId"] != wanted_user):
                continue
            if self.lagging or self.queue.full():
                self.lagging = True
                self.dropped += 1
            else:
                self.queue.put_nowait(text)

    def lost(self, count: int) -> None:
        """From the hub: `count` events of the project never reached this process (the channel
        layer dropped them); told like events this socket dropped itself."""
        if self.queue.empty():
            self.queue.put_nowait(None)  # wakes the sender, which then says "lagged"
        self.lagging = True
        self.dropped += count

    async def _forward(self):
        send = self.base_send  # what self.send does for text, minus a layer per message
        while True:
            text = await self.queue.get()
            async with self.send_lock:  # a whole burst per lock: the queue is drained in one go
                while True:
                    if text is not None:  # None: only a wake-up (see `lost`)
                        await send({"type": "websocket.send", "text": text})
                    if self.queue.empty():
                        break
                    text = self.queue.get_nowait()
            if self.lagging and self.queue.empty():
                dropped, self.dropped, self.lagging = self.dropped, 0, False
                await self._send({"type": "lagged", "dropped": dropped})

    async def _stats(self):
        while True:
            await asyncio.sleep(settings.LIVE_STATS_SECONDS)
            await self._send(await sync_to_async(live_stats, thread_sensitive=False)(project_id=self.project_id))

    async def _send(self, message: dict) -> None:
        async with self.send_lock:
            await self.send(text_data=json.dumps(message))
