"""The HTTP request PTB makes its Bot API calls through (all but getUpdates, which
bot/telegram/inbox.py handles): a few connections, each kept busy in turn.

The delivery worker sends to each chat from its own task, so a burst of reports can start
a hundred sends at once. httpx's connection pool looks over every connection it holds on
every request (a syscall or two each), so one pool of many connections costs far more CPU
per message than it saves. Here each connection is a client of its own, calls beyond
their number wait for one to come free, and the most recently used is taken first, so a
light load keeps to one warm connection. With Telegram's round trip of 50-200 ms, eight
connections carry well over the 30 messages a second Telegram allows a bot.
"""

from __future__ import annotations

import asyncio

import httpx
from telegram.request import BaseRequest, HTTPXRequest, RequestData


class ConnectionsRequest(BaseRequest):
    def __init__(self, connections: int) -> None:
        # One TLS context for all: each loads the CA bundle, about 35 ms apiece.
        tls = httpx.create_ssl_context()
        self._all = [HTTPXRequest(connection_pool_size=1, httpx_kwargs={"verify": tls}) for _ in range(connections)]
        self._free: asyncio.LifoQueue[HTTPXRequest] = asyncio.LifoQueue()
        for request in reversed(self._all):
            self._free.put_nowait(request)

    @property
    def read_timeout(self) -> float | None:
        return self._all[0].read_timeout

    async def initialize(self) -> None:
        for request in self._all:
            await request.initialize()

    async def shutdown(self) -> None:
        for request in self._all:
            await request.shutdown()

    async def do_request(
        self, url: str, method: str, request_data: RequestData | None = None, *args: object, **kwargs: object
    ) -> tuple[int, bytes]:
        request = await self._free.get()
        try:
            return await request.do_request(url, method, request_data, *args, **kwargs)  # type: ignore[arg-type]
        finally:
            self._free.put_nowait(request)
