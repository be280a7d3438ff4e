"""Publishing stored events to the project's live-stream group (the WebSocket consumer
forwards them). Called after commit, with only the rows that were actually inserted.

Building the message costs about as much as a third of writing the batch, so it is only
built when some process has sockets on the project: each process's hub registers itself
(`listeners_add`, renewed every LISTENERS_RENEW seconds, gone LISTENERS_TTL after it stops)
before it subscribes, and the writer asks `listening` first.
"""

import asyncio
import json
import threading
import time
import uuid
from collections import defaultdict

import structlog
from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer

from analytics_platform.redis import REDIS_DOWN, redis_client

logger = structlog.get_logger(__name__)

PROCESS = uuid.uuid4().hex  # this process, as a publisher and as a listener
LISTENERS_TTL, LISTENERS_RENEW = 90, 30
_local_listeners: set[int] = set()  # without Redis: the projects with sockets in this process


def _listeners_key(project_id: int) -> str:
    return f"live:listeners:{project_id}"


def listeners_add(project_id: int) -> None:
    """This process has sockets on the project (call again every LISTENERS_RENEW seconds)."""
    client = redis_client()
    if client is None:
        _local_listeners.add(project_id)
        return
    client.zadd(_listeners_key(project_id), {PROCESS: time.time() + LISTENERS_TTL})
    client.expire(_listeners_key(project_id), LISTENERS_TTL)


def listeners_remove(project_id: int) -> None:
    client = redis_client()
    if client is None:
        _local_listeners.discard(project_id)
        return
    try:
        client.zrem(_listeners_key(project_id), PROCESS)
    except REDIS_DOWN:  # it expires anyway
        pass


def listening(project_id: int) -> bool:
    """Whether any process has sockets on the project; when Redis cannot say, yes."""
    client = redis_client()
    if client is None:
        return project_id in _local_listeners
    try:
        return client.zcount(_listeners_key(project_id), time.time(), "+inf") > 0
    except REDIS_DOWN:
        return True


def project_group(project_id: int) -> str:
    return f"project-events.{project_id}"


def event_message(row: list) -> dict:
    """A job row (COLUMNS order) in the journey's field names."""
    event_id, user_id, event_name, timestamp, properties_json, session_id, page_url = row[:7]
    return {
        "eventId": event_id,
        "userId": user_id,
        "eventName": event_name,
        "timestamp": timestamp.replace("+00:00", "Z"),  # stored rows are UTC
        "properties": json.loads(properties_json),
        "sessionId": session_id,
        "pageUrl": page_url,
    }


_sockets_loop: asyncio.AbstractEventLoop | None = None


def sockets_loop_set(loop: asyncio.AbstractEventLoop) -> None:
    """Called by the consumer: the event loop this process's sockets live on."""
    global _sockets_loop
    _sockets_loop = loop


def _group_send(layer, group: str, message: dict) -> None:
    """The in-memory layer (embedded default) keeps asyncio queues of the sockets' loop, which
    must only be touched from that loop's thread: from a request thread, hand the send over to
    that loop. The Redis layer works from any loop."""
    loop = _sockets_loop
    if isinstance(layer, InMemoryChannelLayer) and loop is not None and loop.is_running():
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not loop:
            asyncio.run_coroutine_threadsafe(layer.group_send(group, message), loop).result(timeout=5)
            return
    async_to_sync(layer.group_send)(group, message)


def event_text(event: dict) -> str:
    """What a socket receives for one event."""
    return json.dumps({"type": "event", "event": event}, separators=(",", ":"))


# Who publishes, and how many events it has published per project: the channel layer drops
# a message silently when a receiver is too far behind (its capacity, its expiry), so each
# message says where it starts in its publisher's sequence and a receiver that sees a jump
# knows how many events it lost (events.live.hub turns that into lagged notices).
_published: dict[int, int] = defaultdict(int)
_published_lock = threading.Lock()


def live_publish(*, project_id: int, rows: list[list]) -> None:
    layer = get_channel_layer()
    if layer is None or not rows or not listening(project_id):
        return
    events = [event_message(row) for row in rows]
    # each socket filters on the dicts and sends the text, serialized here once for all of them
    message = {"type": "events.stored", "events": events, "texts": [event_text(event) for event in events]}
    # numbered and sent under one lock: a process's messages leave in the order of their numbers
    with _published_lock:
        message.update(publisher=PROCESS, first=_published[project_id])
        _published[project_id] += len(events)
        try:
            _group_send(layer, project_group(project_id), message)
        except Exception as exc:  # the events are stored; a live view missing them is not worth a retry
            logger.warning("live_publish_failed", project_id=project_id, error=type(exc).__name__)
