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
import sys
import tempfile
from pathlib import Path

from _common import (
    POSTGRES,
    QUICK,
    REPORT_UNITS,
    TOKEN,
    FakeServer,
    PostgresSchema,
    chats_of,
    header,
    median,
    parse,
    push_reports,
    show_rate,
    town,
    unit_chat,
    verdict,
)
from telegram import ReplyParameters, Update
from telegram.ext import ApplicationBuilder, ContextTypes, MessageHandler, filters

from bot.app import build_application, running

N = 2_000 if QUICK else 10_000
ROUNDS = 3
async def bare(n: int) -> tuple[float, float, float]:
    async with FakeServer() as server:
        await server.call("benchAddChats", chats=[(unit_chat(i), f"第{i + 1}小组") for i in range(REPORT_UNITS)])
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
            return await push_reports(server, n, wait_up_to=600)
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
        raw = town(REPORT_UNITS, 10, database, base_url=server.url)
        await server.call("benchAddChats", chats=chats_of(raw))
        app = build_application(parse(raw), TOKEN)
        async with running(app):
            await app.bot_data["menus"].wait()  # start-up work (command menus) is not intake
            return await push_reports(server, n, wait_up_to=600)


def show(name: str, seconds: float, cpu: float, server_cpu: float) -> None:
    show_rate(name, "updates", N, seconds, cpu, server_cpu)


def main() -> int:
    header(f"Intake throughput ({N:,} /report updates over {REPORT_UNITS} unit chats; fake server in its own process; "
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
