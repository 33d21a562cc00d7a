"""The HTTP request PTB makes its Bot API calls through (all but getUpdates, which
bot/telegram/inbox.py handles): a few connections, each kept busy in turn.

The delivery worker sends to each chat from its own task, so a burst of reports can start
a hundred sends at once. httpx's connection pool looks over every connection it holds on
every request (a syscall or two each), so one pool of many connections costs far more CPU
per message than it saves. Here each connection is a client of its own, calls beyond
their number wait for one to come free, and the most recently used is taken first, so a
light load keeps to one warm connection. With Telegram's round trip of 50-200 ms, eight
connections carry well over the 30 messages a second Telegram allows a bot.

A call without files goes as one JSON body (the Bot API takes application/json), not as PTB's
form encoding: urllib quotes each byte of a Chinese text through a Python call, which made
encoding a card cost more than sending it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, HTTPXRequest, RequestData

_DEFAULT = type(BaseRequest.DEFAULT_NONE)  # PTB's "not given": the client's own timeout
_JSON = {"Content-Type": "application/json", "User-Agent": HTTPXRequest.USER_AGENT}


class JsonRequest(HTTPXRequest):
    """PTB's HTTPXRequest, sending a call without files as a JSON body (see the module's
    docstring); the timeouts and errors are PTB's."""

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if request_data is None or request_data.contains_files or self._client.is_closed:
            return await super().do_request(url, method, request_data, read_timeout, write_timeout,
                                            connect_timeout, pool_timeout)
        default = self._client.timeout
        timeout = httpx.Timeout(
            connect=default.connect if isinstance(connect_timeout, _DEFAULT) else connect_timeout,
            read=default.read if isinstance(read_timeout, _DEFAULT) else read_timeout,
            write=default.write if isinstance(write_timeout, _DEFAULT) else write_timeout,
            pool=default.pool if isinstance(pool_timeout, _DEFAULT) else pool_timeout,
        )
        # ASCII escapes, as PTB's own JSON: a lone surrogate in a text cannot break the encoding.
        body = json.dumps(request_data.parameters).encode()
        try:
            res = await self._client.request(method=method, url=url, headers=_JSON, timeout=timeout, content=body)
        except httpx.TimeoutException as err:  # as HTTPXRequest.do_request words them
            if isinstance(err, httpx.PoolTimeout):
                raise TimedOut("Pool timeout: All connections in the connection pool are occupied. "
                               "Request was *not* sent to Telegram.") from err
            raise TimedOut from err
        except httpx.HTTPError as err:
            raise NetworkError(f"httpx.{err.__class__.__name__}: {err}") from err
        return res.status_code, res.content


class ConnectionsRequest(BaseRequest):
    def __init__(self, connections: int) -> None:
        # One TLS context for all: each loads the CA bundle, about 35 ms apiece.
        tls = httpx.create_ssl_context()
        self._all = [JsonRequest(connection_pool_size=1, httpx_kwargs={"verify": tls}) for _ in range(connections)]
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
