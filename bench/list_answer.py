"""How long a /list answer takes now that it goes through the outbox (queued in the update's
transaction as what it is made of, worded and sent by the delivery worker), against the
handler wording and sending it directly as the code before did (that handler put back for
the measure), in the same run.

The real Application long-polls the fake Bot API (bot/dev/fakeapi.py) in this process, with a
real SQLite file and a few open matters to list. Each /list goes out alone; the time runs
from the update being queued on the server until the answer reaches it. The two ways take
turns, round by round. Goal: through the outbox at most a few milliseconds slower.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import QUICK, TOKEN, header, parse, town, unit_chat, verdict
from telegram import Update
from telegram.ext import CommandHandler, ContextTypes

import handlers.matters
from bot.app import build_application, running
from bot.dev.fakeapi import FakeBotApi
from bot.text import render
from bot.visibility import GROUPS
from handlers.common import chat_node, services

ROUNDS = 3
PER_ROUND = 50 if QUICK else 200
MATTERS = 20
HEAD = 400000  # the first unit's head (bench/_common.py's town)


async def old_list_open(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """handlers/matters.list_open as it was: worded in the handler, Telegram called from it."""
    svc = services(context)
    node = chat_node(update, context)
    message, chat, user = update.effective_message, update.effective_chat, update.effective_user
    assert node is not None and message is not None and chat is not None
    units = [u.id for u in svc.tree.units_under(node.id)]
    async with svc.store.read() as tx:
        matters = await tx.open_matters(units)
    t = svc.langs.for_user(chat.id, user.language_code if user else None)
    text = render.matter_list(node.name, matters, svc.tree, t, svc.clock.now(), audience=GROUPS[node.tier])
    await message.reply_text(text, do_quote=True)


async def _lists(api: FakeBotApi, chat: int, head: dict[str, Any], n: int) -> list[float]:
    times = []
    for _ in range(n):
        before = len(api.bot_messages(chat))
        began = time.perf_counter()
        api.send_text(chat, head, "/list")
        await api.wait_for(lambda before=before: len(api.bot_messages(chat)) > before, 10)
        times.append(time.perf_counter() - began)
    return times


async def measure(folder: Path) -> tuple[list[float], list[float]]:
    through, direct = [], []
    async with FakeBotApi() as api:
        raw = town(10, 2, folder / "list.sqlite3")
        raw["telegram"]["base_url"], raw["telegram"]["base_file_url"] = api.base_url, api.base_file_url
        for community in raw["station"]["communities"]:
            api.add_chat(community["chat_id"], community["name"])
            for unit in community["units"]:
                api.add_chat(unit["chat_id"], unit["name"])
        chat = unit_chat(0)
        head = api.user(HEAD, "组长0")
        app = build_application(parse(raw), TOKEN)
        async with running(app):
            await app.bot_data["menus"].wait()
            for i in range(MATTERS):
                api.send_text(chat, api.user(1000 + i, f"居民{i}"), f"/report 楼道堆放杂物 {i}")
            await api.wait_for(lambda: len(api.bot_messages(chat)) >= MATTERS, 30)
            await _lists(api, chat, head, 10)  # warm up
            (lists,) = [h for h in app.handlers[0]
                        if isinstance(h, CommandHandler) and h.callback is handlers.matters.list_open]
            new_list_open = lists.callback
            for _ in range(ROUNDS):
                through += await _lists(api, chat, head, PER_ROUND)
                lists.callback = old_list_open
                try:
                    direct += await _lists(api, chat, head, PER_ROUND)
                finally:
                    lists.callback = new_list_open
    return through, direct


def main() -> int:
    header(f"/list answer time ({ROUNDS} rounds of {PER_ROUND} each way, taking turns; {MATTERS} open matters)")
    with tempfile.TemporaryDirectory() as folder:
        through, direct = asyncio.run(measure(Path(folder)))
    for name, times in (("handler sends directly (before)", direct), ("through the outbox (now)", through)):
        print(f"  {name + ':':34} median {statistics.median(times) * 1e3:6.2f} ms, "
              f"p90 {statistics.quantiles(times, n=10)[-1] * 1e3:6.2f} ms")
    extra = (statistics.median(through) - statistics.median(direct)) * 1e3
    ratio = statistics.median(through) / statistics.median(direct)
    print(f"  outbox / direct: {ratio:.2f}× ({extra:+.2f} ms); goal ≤ +5 ms → {verdict(extra <= 5)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
