"""Webhook intake (issue 18): N /report messages posted by the fake Bot API's webhook mode to
one tierbot worker on PostgreSQL, against a bare PTB webhook bot (starlette + uvicorn, the
Application without an updater) that handles each update before answering 200 and only
calls sendMessage. Same driver, same run, taking turns.

The fake runs in a process of its own (bench/_fake_server.py) and posts the way Telegram
does: each chat's updates one at a time, at most ``max_connections`` (40) in flight. The
clock runs from the push of the N updates until the N-th answer reaches the fake: tierbot's
is the matter's card, posted by the outbox worker once the report is committed (the post
itself is answered 200 only then). Goal: tierbot ≥ 0.7 × the bare bot.

PostgreSQL: ``TIERBOT_BENCH_POSTGRES`` or ``TIERBOT_TEST_POSTGRES`` (a fresh schema per
round, dropped after); without either, SQLite, and the line says so.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from _common import (
    POSTGRES,
    QUICK,
    REPORT_UNITS,
    TOKEN,
    FakeServer,
    chats_of,
    header,
    median,
    parse,
    postgres_schema,
    push_reports,
    show_rate,
    town,
    unit_chat,
    verdict,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from telegram import ReplyParameters, Update
from telegram.ext import ApplicationBuilder, ContextTypes, MessageHandler, filters

from bot.app import build_application, running

N = 1_000 if QUICK else 5_000
ROUNDS = 3
MAX_CONNECTIONS = 40
SECRET = "bench-secret"
PATH = "/telegram/bench"


async def _load(server: FakeServer, url: str, secret: str, n: int) -> tuple[float, float, float]:
    """Set the webhook, post n reports (push_reports); none of it by long polling."""
    await server.call("setWebhook", url=url, secret_token=secret, max_connections=MAX_CONNECTIONS,
                      allowed_updates=["message", "callback_query", "poll"])
    measured = await push_reports(server, n, wait_up_to=900)
    assert (await server.call("benchStats"))["methods"].get("getUpdates", 0) == 0
    return measured


async def bare(n: int) -> tuple[float, float, float]:
    async with FakeServer() as server:
        await server.call("benchAddChats", chats=[(unit_chat(i), f"第{i + 1}小组") for i in range(REPORT_UNITS)])
        # as many connections as tierbot's default (telegram.connections): its handlers run side by side
        app = (ApplicationBuilder().token(TOKEN).base_url(server.url + "/bot").updater(None)
               .connection_pool_size(8).build())

        async def answer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            message = update.effective_message
            assert message is not None
            reply = ReplyParameters(message.message_id)
            await context.bot.send_message(message.chat_id, "收到", reply_parameters=reply)

        async def posted(request: Request) -> Response:
            await app.process_update(Update.de_json(await request.json(), app.bot))  # handled, then answered
            return Response()

        app.add_handler(MessageHandler(filters.ALL, answer))
        web = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route(PATH, posted, methods=["POST"])]),
                                            host="127.0.0.1", port=0, log_config=None, access_log=False,
                                            lifespan="off"))
        async with app:
            await app.start()
            serving = asyncio.create_task(web.serve())
            while not web.started:
                if serving.done():
                    serving.result()
                await asyncio.sleep(0.01)
            port = web.servers[0].sockets[0].getsockname()[1]
            try:
                return await _load(server, f"http://127.0.0.1:{port}{PATH}", "", n)
            finally:
                web.should_exit = True
                await serving
                await app.stop()


@asynccontextmanager
async def database(folder: Path) -> AsyncIterator[str]:
    if not POSTGRES:
        yield str(folder / "webhook.sqlite3")
        return
    async with postgres_schema(POSTGRES) as url:
        yield url


async def tierbot(n: int, folder: Path) -> tuple[float, float, float]:
    async with FakeServer() as server, database(folder) as url:
        raw = town(REPORT_UNITS, 10, url, base_url=server.url)
        raw["telegram"].update(mode="webhook", webhook={"path": PATH, "max_connections": MAX_CONNECTIONS})
        await server.call("benchAddChats", chats=chats_of(raw))
        app = build_application(parse(raw), TOKEN)
        async with running(app, webhook_secret=SECRET):
            await app.bot_data["menus"].wait()  # start-up work (command menus) is not intake
            port = app.bot_data["webhook"].port
            return await _load(server, f"http://127.0.0.1:{port}{PATH}", SECRET, n)


def show(name: str, seconds: float, cpu: float, server_cpu: float) -> None:
    show_rate(name, "replies", N, seconds, cpu, server_cpu, width=44)


def main() -> int:
    engine = "PostgreSQL" if POSTGRES else "SQLite (no TIERBOT_BENCH_POSTGRES / TIERBOT_TEST_POSTGRES set)"
    header(f"Webhook intake ({N:,} /report updates over {REPORT_UNITS} unit chats, posted by the fake with "
           f"max_connections {MAX_CONNECTIONS}; tierbot on {engine}, one worker; {ROUNDS} rounds each, taking turns)")
    bare_rates, tier_rates = [], []
    with tempfile.TemporaryDirectory() as folder:
        for round_no in range(ROUNDS):
            bare_s, bare_cpu, bare_server = asyncio.run(bare(N))
            show("bare PTB webhook bot, handler calls sendMessage", bare_s, bare_cpu, bare_server)
            (Path(folder) / str(round_no)).mkdir()
            tier_s, tier_cpu, tier_server = asyncio.run(tierbot(N, Path(folder) / str(round_no)))
            show("tierbot worker, report → commit → 200; card", tier_s, tier_cpu, tier_server)
            bare_rates.append(N / bare_s)
            tier_rates.append(N / tier_s)
    ratio = median(tier_rates) / median(bare_rates)
    print(f"  medians: bare {median(bare_rates):.0f}/s, tierbot {median(tier_rates):.0f}/s")
    print(f"  goal: tierbot ≥ 0.7 × bare: {ratio:.2f}× → {verdict(ratio >= 0.7)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
