"""Intake throughput: N /report messages answered by the real tierbot, against a bare PTB
Application that only calls sendMessage, measured the same way in the same run.

Both bots long-poll the fake Bot API, which runs in a process of its own
(bench/_fake_server.py). The N messages are queued on it at once, spread over the units'
chats; the clock runs from then until the N-th answer reaches it. tierbot's answer is the
matter's card, which the outbox delivery worker posts as a reply once the report is
committed to SQLite. Goal (issue 13): tierbot at least 0.85 × the bare bot.

With TIERBOT_BENCH_POSTGRES (or TIERBOT_TEST_POSTGRES) set to a server's URL, tierbot on
PostgreSQL takes its turn too, a fresh schema each round (issue 17): the three in one run.
"""

from __future__ import annotations

import asyncio
import resource
import sys
import tempfile
from pathlib import Path

from _common import (
    POSTGRES,
    QUICK,
    TOKEN,
    FakeServer,
    PostgresSchema,
    chats_of,
    header,
    median,
    parse,
    town,
    unit_chat,
    verdict,
)
from telegram import ReplyParameters, Update
from telegram.ext import ApplicationBuilder, ContextTypes, MessageHandler, filters

from bot.app import build_application, running

N = 2_000 if QUICK else 10_000
ROUNDS = 3
UNITS = 100
RESIDENTS = 1_000
TEXT = "/report 楼道堆放大量纸箱杂物，有消防隐患 {i}"


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _load(server: FakeServer, n: int) -> tuple[float, float, float]:
    """Queue n reports: seconds until the n-th answer, and the CPU seconds the bot's process
    and the server spent meanwhile."""
    chats = [unit_chat(i) for i in range(UNITS)]
    cpu = _cpu()
    await server.call("benchPush", chats=chats, n=n, text=TEXT, users=RESIDENTS)
    done = await server.call("benchWait", count=n, timeout=600)
    cpu = _cpu() - cpu
    stats = await server.call("benchStats")
    assert stats["sent"] == n, f"expected {n} answers, the server saw {stats['sent']}"
    return done["elapsed"], cpu, done["server_cpu"]


async def bare(n: int) -> tuple[float, float, float]:
    async with FakeServer() as server:
        await server.call("benchAddChats", chats=[(unit_chat(i), f"第{i + 1}小组") for i in range(UNITS)])
        app = ApplicationBuilder().token(TOKEN).base_url(server.url + "/bot").build()

        async def answer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            message = update.effective_message
            assert message is not None
            reply = ReplyParameters(message.message_id)
            await context.bot.send_message(message.chat_id, "收到", reply_parameters=reply)

        app.add_handler(MessageHandler(filters.ALL, answer))
        await app.initialize()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=10)
        await app.start()
        try:
            return await _load(server, n)
        finally:
            await app.updater.stop()
            await app.stop()
            await app.shutdown()


async def tierbot(n: int, folder: Path, postgres: bool = False) -> tuple[float, float, float]:
    if postgres:
        async with PostgresSchema() as url:
            return await _tierbot(n, url)
    return await _tierbot(n, folder / "intake.sqlite3")


async def _tierbot(n: int, database: str | Path) -> tuple[float, float, float]:
    async with FakeServer() as server:
        raw = town(UNITS, 10, database, base_url=server.url)
        await server.call("benchAddChats", chats=chats_of(raw))
        app = build_application(parse(raw), TOKEN)
        async with running(app):
            await app.bot_data["menus"].wait()  # start-up work (command menus) is not intake
            return await _load(server, n)


def show(name: str, seconds: float, cpu: float, server_cpu: float) -> None:
    print(f"  {name + ':':37} {N / seconds:5.0f} updates/s  ({seconds:4.1f} s; CPU per update: bot "
          f"{cpu / N * 1e3:.2f} ms, fake server {server_cpu / N * 1e3:.2f} ms)", flush=True)


def main() -> int:
    header(f"Intake throughput ({N:,} /report updates over {UNITS} unit chats; fake server in its own process; "
           f"{ROUNDS} rounds each, taking turns)")
    bare_rates, tier_rates, pg_rates = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        for round_no in range(ROUNDS):
            bare_s, bare_cpu, bare_server = asyncio.run(bare(N))
            show("bare PTB, handler calls sendMessage", bare_s, bare_cpu, bare_server)
            tier_s, tier_cpu, tier_server = asyncio.run(tierbot(N, Path(folder) / str(round_no)))
            show("tierbot, report → SQLite → card", tier_s, tier_cpu, tier_server)
            bare_rates.append(N / bare_s)
            tier_rates.append(N / tier_s)
            if POSTGRES:
                pg_s, pg_cpu, pg_server = asyncio.run(tierbot(N, Path(folder), postgres=True))
                show("tierbot, report → PostgreSQL → card", pg_s, pg_cpu, pg_server)
                pg_rates.append(N / pg_s)
    ratio = median(tier_rates) / median(bare_rates)
    print(f"  medians: bare {median(bare_rates):.0f}/s, tierbot {median(tier_rates):.0f}/s"
          + (f", tierbot on PostgreSQL {median(pg_rates):.0f}/s" if pg_rates else ""))
    print(f"  goal: tierbot ≥ 0.85 × bare: {ratio:.2f}× → {verdict(ratio >= 0.85)}")
    if pg_rates:
        print(f"  PostgreSQL: {median(pg_rates) / median(bare_rates):.2f}× bare, "
              f"{median(pg_rates) / median(tier_rates):.2f}× SQLite")
    else:
        print("  (PostgreSQL skipped: TIERBOT_BENCH_POSTGRES is not set)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
