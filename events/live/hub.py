"""One channel-layer subscription per project per process, fanned out in memory to that
process's sockets.

A Channels consumer would normally join the project's group itself; then every batch of
events crosses Redis and is decoded once per socket (100 sockets: 100 copies of a
1,000-event message). Here the first socket of a project in this process subscribes a
channel of its own to the group and a task hands each batch to every local socket, whose
`deliver` filters and queues without waiting. The last socket to leave unsubscribes.
The layer drops messages silently when a receiver falls too far behind; the publisher numbers
its events (events.live.publish), so a jump is seen here and every socket is told (`lost`) in a
lagged notice rather than missing events unannounced.
"""

import asyncio
import weakref
from collections import defaultdict

import structlog
from channels.layers import get_channel_layer

from analytics_platform.redis import REDIS_DOWN
from events.live.publish import LISTENERS_RENEW, event_text, listeners_add, listeners_remove, project_group

logger = structlog.get_logger(__name__)

RESUBSCRIBE_SECONDS = 3600  # the Redis layer forgets group members after a day


class _Subscription:
    def __init__(self):
        self.sockets: set = set()
        self.ready = asyncio.Event()
        self.task: asyncio.Task | None = None


class Hub:
    def __init__(self):
        self.subscriptions: dict[int, _Subscription] = defaultdict(_Subscription)
        self.closing: set[asyncio.Task] = set()  # pumps cancelled, still unsubscribing

    async def join(self, project_id: int, socket) -> None:
        """Returns once events stored from now on will reach `socket.deliver`."""
        subscription = self.subscriptions[project_id]
        subscription.sockets.add(socket)
        if subscription.task is None:
            subscription.task = asyncio.create_task(self._pump(project_id, subscription))
        await subscription.ready.wait()

    def leave(self, project_id: int, socket) -> None:
        subscription = self.subscriptions.get(project_id)
        if subscription is None:
            return
        subscription.sockets.discard(socket)
        if not subscription.sockets:
            self._stop(project_id, subscription)

    def _stop(self, project_id: int, subscription: _Subscription) -> None:
        subscription.task.cancel()
        self.closing.add(subscription.task)
        subscription.task.add_done_callback(self.closing.discard)
        del self.subscriptions[project_id]

    async def shutdown(self) -> None:
        """Stops every pump of the running loop, sockets or not, and returns once each has
        unsubscribed. A server's loop runs on; a loop about to close (a test's) must call
        this, or the Redis layer is left mid-receive and refuses the next loop ("two event
        loops ... at once"). A socket whose disconnect never ran (its app timed out under
        load) would otherwise keep its pump receiving until the closed loop is collected."""
        loop = asyncio.get_running_loop()
        for project_id, subscription in list(self.subscriptions.items()):
            if subscription.task is not None and subscription.task.get_loop() is loop:
                subscription.sockets.clear()
                self._stop(project_id, subscription)
        await asyncio.gather(*self.closing, return_exceptions=True)

    async def _pump(self, project_id: int, subscription: _Subscription) -> None:
        layer, group = get_channel_layer(), project_group(project_id)
        channel = await layer.new_channel()
        renewing = None
        try:
            # announced before subscribing: from "subscribed" on, every writer publishes
            await asyncio.to_thread(listeners_add, project_id)
            renewing = asyncio.create_task(self._renew(project_id))
            await layer.group_add(group, channel)
            subscription.ready.set()
            renewed = asyncio.get_running_loop().time()
            expected: dict[str, int] = {}  # publisher → the first event number not seen yet
            while True:
                message = await layer.receive(channel)
                events = message["events"]
                texts = message.get("texts") or [event_text(event) for event in events]
                publisher, first = message.get("publisher"), message.get("first")
                if publisher is not None:
                    lost = first - expected.get(publisher, first)
                    expected[publisher] = max(expected.get(publisher, 0), first + len(events))
                    if lost > 0:  # messages the layer dropped between two of this publisher's
                        logger.warning("live_messages_lost", project_id=project_id, events=lost)
                        for socket in list(subscription.sockets):
                            socket.lost(lost)
                for socket in list(subscription.sockets):
                    socket.deliver(events, texts)
                if asyncio.get_running_loop().time() - renewed > RESUBSCRIBE_SECONDS:
                    await layer.group_add(group, channel)
                    renewed = asyncio.get_running_loop().time()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the layer is gone (Redis down): these sockets get no events
            logger.warning("live_subscription_failed", project_id=project_id, error=type(exc).__name__, exc_info=True)
        finally:
            subscription.ready.set()  # nobody waits forever
            if renewing is not None:
                renewing.cancel()
            await asyncio.shield(layer.group_discard(group, channel))
            await asyncio.shield(asyncio.to_thread(listeners_remove, project_id))

    async def _renew(self, project_id: int) -> None:
        while True:
            await asyncio.sleep(LISTENERS_RENEW)
            try:
                await asyncio.to_thread(listeners_add, project_id)
            except REDIS_DOWN as exc:
                logger.warning("live_listeners_renew_failed", project_id=project_id, error=type(exc).__name__)


_hubs: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub]" = weakref.WeakKeyDictionary()


def hub() -> Hub:
    """This event loop's hub (a server process has one loop; tests start several)."""
    loop = asyncio.get_running_loop()
    if loop not in _hubs:
        _hubs[loop] = Hub()
    return _hubs[loop]
