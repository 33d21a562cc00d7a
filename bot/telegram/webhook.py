"""Webhook mode (issue 18): Telegram posts each update to the worker, which answers 200
only once the update's effect is committed.

A starlette app served by uvicorn, beside PTB's Application built without an updater, as in
PTB's ``customwebhookbot`` example. PTB's own ``run_webhook`` is not used: it answers 200 as
soon as the update is queued, so a crash loses it, and drops what is queued at shutdown.

``POST <path>``: the secret token checked (``hmac.compare_digest``; 403 otherwise, nothing
read); the update written to the inbox (``ON CONFLICT DO NOTHING``, with the others posted
meanwhile in one transaction); one already done answered 200 at once; otherwise handled by
the Application's handlers, through its update processor (one at a time unless configured
otherwise, as polling does, and in turn with the updates replayed at start), then the group
commit awaited, shared with the requests in hand, and 200. Telegram posts an update again
until it gets a 2xx: a crash before the answer is a repeat, which the inbox turns into a
no-op once done. An update whose handling failed is answered 500 (Telegram tries again,
each a counted try) until it is given up on (bot/telegram/inbox.py), then 200.

``GET /healthz``: 200 when the database answers and the last sweep is recent, else 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hmac
import json
import logging
from collections.abc import Iterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from telegram import Update
from telegram.ext import Application

from bot.config import Webhook
from bot.store import LAST_SWEEP
from bot.telegram.inbox import inbox_row

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
HEALTH_TIMEOUT = 5.0  # seconds for the database to answer /healthz


class Intake:
    """What a posted update goes through before its answer (see the module's docstring)."""

    def __init__(self, app: Application) -> None:
        self.app = app
        self._in_hand: dict[int, asyncio.Task[int]] = {}  # update id -> its handling (a repeat awaits it)

    async def take(self, body: dict[str, Any]) -> int:
        """The HTTP status to answer ``body`` (an update) with."""
        update_id = int(body["update_id"])
        task = self._in_hand.get(update_id)
        if task is None:
            # Its own task: a dropped connection (or a stop) must not cut a handler half-way.
            task = asyncio.get_running_loop().create_task(self._take(update_id, body), context=contextvars.Context())
            self._in_hand[update_id] = task
            task.add_done_callback(lambda _: self._in_hand.pop(update_id, None))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("update %s could not be taken in", update_id)
            return 500

    async def wait_in_hand(self) -> None:
        """Let the updates in hand finish (a stop)."""
        if self._in_hand:
            await asyncio.gather(*self._in_hand.values(), return_exceptions=True)

    async def _take(self, update_id: int, body: dict[str, Any]) -> int:
        svc = self.app.bot_data.get("services")
        if svc is None:
            return 503  # not started yet, or stopping: Telegram posts it again
        store = svc.store
        body, payload = inbox_row(body, svc.tree)
        if not await store.admit(update_id, payload):  # posted before: done, or not yet
            async with store.read() as tx:
                if await tx.inbox_is_done(update_id):
                    return 200
            if update_id in store.started:  # replayed at start and in hand there: ask again later
                return 503
        update = Update.de_json(body, self.app.bot)
        store.tries_counted.discard(update_id)
        await self.app.update_processor.process_update(update, self.app.process_update(update))
        await store.flush()  # its effect, or "done", is in the group commit: wait for it
        if update_id not in store.tries_counted:
            return 200
        # Its handling failed (a try counted): answered 500 so that Telegram posts it again, and
        # handled again then, until the last try marks it failed, and done.
        store.tries_counted.discard(update_id)
        store.started.discard(update_id)
        async with store.read() as tx:
            return 200 if await tx.inbox_is_done(update_id) else 500


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the runner's SIGTERM stops it, in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class WebhookServer:
    """The worker's HTTP side: ``POST <path>`` and ``GET /healthz``."""

    def __init__(self, app: Application, settings: Webhook, secret: str, port: int | None = None) -> None:
        self.app = app
        self.settings = settings
        self._secret = secret.encode()
        self.intake = Intake(app)
        routes = [
            Route(settings.path, self._updates, methods=["POST"]),
            Route("/healthz", self._healthz, methods=["GET"]),
        ]
        # No access log: the path is a secret too. uvicorn's logs go to the root logger's handlers.
        config = uvicorn.Config(Starlette(routes=routes), host=settings.listen,
                                port=settings.port if port is None else port, log_config=None, access_log=False,
                                lifespan="off", timeout_graceful_shutdown=30)
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The port listened on (the one the system chose, when asked for 0)."""
        return int(self._server.servers[0].sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._server.serve(), name="tierbot-webhook")
        while not self._server.started:
            if self._task.done():  # could not listen (the port taken, say): uvicorn logged why
                self._task.result()
                raise OSError(f"cannot listen on {self.settings.listen}:{self.settings.port}")
            await asyncio.sleep(0.01)
        log.info("webhook: listening on %s:%d", self.settings.listen, self.port)

    @property
    def stopped(self) -> asyncio.Task[None] | None:
        """The server's task: done once it stopped."""
        return self._task

    @property
    def stopping(self) -> bool:
        """Whether it was asked to stop."""
        return bool(self._server.should_exit)

    async def stop(self) -> None:
        """Stop listening; the requests in hand are answered first (their updates committed)."""
        if self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(Exception):
            await self._task
        await self.intake.wait_in_hand()

    async def _updates(self, request: Request) -> Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, self._secret):
            log.warning("webhook: a post without the right secret token refused (403)")
            return Response(status_code=403)
        try:
            body = json.loads(await request.body())
            int(body["update_id"])
        except (ValueError, KeyError, TypeError):
            return Response(status_code=400)
        return Response(status_code=await self.intake.take(body))

    async def _healthz(self, request: Request) -> Response:
        svc = self.app.bot_data.get("services")
        if svc is None:
            return PlainTextResponse("starting\n", status_code=503)
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT), svc.store.read() as tx:
                values = await tx.meta_values(LAST_SWEEP)
        except Exception as exc:
            log.warning("healthz: the database did not answer (%s)", type(exc).__name__)
            return PlainTextResponse("database not answering\n", status_code=503)
        try:
            last = float(values.get(LAST_SWEEP) or 0.0)
        except ValueError:
            last = 0.0
        age = svc.clock.now() - last
        if age > self.settings.healthy_within:
            return PlainTextResponse(f"last sweep {age:.0f} s ago\n", status_code=503)
        return PlainTextResponse(f"ok, last sweep {age:.0f} s ago\n")
