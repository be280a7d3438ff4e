"""The hot path's connection to Redis: one pipelined connection per event loop, replies parsed
by hiredis (Redis's own C parser), for the one command events.hot sends (EVALSHA).

Why not redis.asyncio: on this project's machine (bench/README, "Hot path") a redis-py async
EVALSHA costs 172 µs of client CPU, the same call over a plain asyncio protocol 44 µs; with
redis-py the script's round trip was 60 % of a hot request's CPU. Requests in flight share
the connection: each writes its command and waits for its reply in order, so under load one
read brings several replies. Everything else in the project (the view, the workers, the
cache) keeps redis-py.

Any failure (no connection, a reply not back within the timeout, the connection lost) is
RedisUnavailable, and the connection is dropped (replies after a lost one would be out of
order); the next call connects again. events.hot then hands the request to Django, whose
redis-py client meets the same outage and writes synchronously.
"""

import asyncio
import hashlib
import ssl
from collections import deque

import hiredis
from redis.connection import SSLConnection, parse_url

CONNECT_TIMEOUT = 1.0
REPLY_TIMEOUT = 5.0


class RedisUnavailable(Exception):
    pass


class _Protocol(asyncio.Protocol):
    def __init__(self):
        self.reader = hiredis.Reader()
        self.waiting: deque[asyncio.Future] = deque()
        self.transport = None
        self.closed = False

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_result(reply)

    def connection_lost(self, exc):
        self.closed = True
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_exception(RedisUnavailable(f"connection lost: {exc}"))

    def close(self):
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class HotRedis:
    def __init__(self, url: str):
        self.options = parse_url(url)
        self.protocol: _Protocol | None = None
        self.connecting: asyncio.Lock | None = None
        self.loaded: set[str] = set()

    async def eval(self, script: str, keys: list, args: list):
        """EVALSHA, loading the script when Redis does not know it. Raises RedisUnavailable,
        or hiredis.ReplyError for an error the script raised."""
        sha = hashlib.sha1(script.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1
        reply = await self.call("EVALSHA", sha, len(keys), *keys, *args)
        if isinstance(reply, hiredis.ReplyError) and str(reply).startswith("NOSCRIPT"):
            await self.call("SCRIPT", "LOAD", script)
            reply = await self.call("EVALSHA", sha, len(keys), *keys, *args)
        if isinstance(reply, hiredis.ReplyError):
            raise reply
        return reply

    async def call(self, *command):
        protocol = await self._connected()
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        protocol.waiting.append(waiter)
        protocol.transport.write(hiredis.pack_command(command))
        timer = loop.call_later(REPLY_TIMEOUT, self._timed_out, protocol, waiter)
        try:
            return await waiter
        finally:
            timer.cancel()

    def _timed_out(self, protocol: _Protocol, waiter: asyncio.Future) -> None:
        if not waiter.done():
            waiter.set_exception(RedisUnavailable("no reply in time"))
            protocol.close()  # the replies still to come would answer the wrong requests

    async def _connected(self) -> _Protocol:
        if self.protocol is not None and not self.protocol.closed:
            return self.protocol
        if self.connecting is None:
            self.connecting = asyncio.Lock()
        async with self.connecting:
            if self.protocol is None or self.protocol.closed:
                self.protocol = await self._connect()
        return self.protocol

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        options = self.options
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                if "path" in options:
                    _, protocol = await loop.create_unix_connection(_Protocol, options["path"])
                else:
                    tls = ssl.create_default_context() if options.get("connection_class") is SSLConnection else None
                    _, protocol = await loop.create_connection(
                        _Protocol, options.get("host", "localhost"), options.get("port", 6379), ssl=tls
                    )
        except (OSError, TimeoutError) as exc:
            raise RedisUnavailable(f"cannot connect: {exc}") from None
        self.protocol = protocol  # the setup below goes through call()
        try:
            if options.get("password"):
                credentials = [options["username"]] if options.get("username") else []
                await self._checked("AUTH", *credentials, options["password"])
            if options.get("db"):
                await self._checked("SELECT", options["db"])
        except BaseException:
            protocol.close()
            raise
        return protocol

    async def _checked(self, *command) -> None:
        reply = await self.call(*command)
        if isinstance(reply, hiredis.ReplyError):
            raise RedisUnavailable(f"{command[0]} refused: {reply}")
