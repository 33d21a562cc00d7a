"""Send rate under Telegram's limits: a town-wide broadcast and the weekly bulletins.

The real tierbot Application (default limits: 30 messages a second, 20 a minute per group)
runs against the fake Bot API in its own process, which enforces those limits the way
Telegram does: a message beyond them is answered 429 with ``retry_after`` and not taken.
At start the weekly bulletins of a town of 2,000 units (100 communities) fall due, and the
station's head broadcasts a notice to every unit group: about 4,200 messages (texts and
the communities' charts), all through the outbox and bot/telegram/ratelimit.py. When half of them
have been taken, a resident reports in a unit group; their card must not wait behind the
rest. Goals: at least 0.9 × 30 messages a second sustained, no 429 provoked, the card in
its chat within 2 s.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from _common import (
    QUICK,
    STAFF,
    STATION_CHAT,
    TOKEN,
    FakeServer,
    RunningClock,
    chats_of,
    header,
    parse,
    poll,
    town,
    unit_chat,
    verdict,
)

from bot.app import build_application, running
from bot.store import Store

UNITS, COMMUNITIES = (300, 15) if QUICK else (2_000, 100)
LIMIT = 30.0  # Telegram's messages a second for a bot
# Monday 30 November 2026, 09:00:05 in the town: the weekly bulletin has just fallen due.
MONDAY = datetime(2026, 11, 30, 9, 0, 5, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
WINDOW = 10.0  # seconds: the slowest stretch of this length is reported too


async def run(folder: Path) -> dict[str, float]:
    async with FakeServer() as server:
        raw = town(UNITS, COMMUNITIES, folder / "send.sqlite3", base_url=server.url)
        raw["telegram"]["rate_limit"] = {"overall_per_second": LIMIT, "group_per_minute": 20, "max_retries": 3}
        await server.call("benchAddChats", chats=chats_of(raw))
        await server.call("benchLimits", per_second=LIMIT, group_per_minute=20)
        # The bot has been running for a week, so this Monday's bulletin is due (not skipped
        # as one that fell due before the bot was installed).
        store = await Store.open(raw["database"])
        async with store.transaction() as tx:
            await tx.first_started(MONDAY - 7 * 86400)
        await store.close()

        app = build_application(parse(raw), TOKEN, clock=RunningClock(MONDAY))
        async with running(app):
            await app.bot_data["menus"].wait()  # start-up work (command menus) is not sending
            svc = app.bot_data["services"]
            await server.call("benchSay", chat=STATION_CHAT, user=STAFF, name="陈所长",
                              text="/broadcast 今晚八点起停水检修，请各单元提前储水。")

            async def backlog() -> int:
                async with svc.store.read() as tx:
                    return len(await tx.outbox_due(svc.clock.now() + 1e9, limit=100_000))

            async def taken() -> int:
                return int((await server.call("benchStats"))["taken"])

            async def queued() -> bool:  # the broadcast and the bulletins are in the outbox
                return await taken() >= UNITS

            await poll(queued, 0.5)
            total = await taken() + await backlog()

            async def halfway() -> bool:
                return await taken() >= total // 2

            await poll(halfway, 0.2)

            # A card in the middle of it all.
            chat = unit_chat(UNITS // 3)
            said = time.time()
            await server.call("benchSay", chat=chat, user=800001, name="居民", text="/report 楼道灯坏了")
            card_at: list[float] = []

            async def card() -> bool:
                card_at.extend(at for at, _, text in await server.call("benchSent", chats=[chat])
                               if text.startswith("📋"))
                return bool(card_at) or time.time() - said > 60

            await poll(card, 0.05)
            card_latency = (card_at[0] - said) if card_at else float("inf")

            async def drained() -> bool:
                return not await backlog()

            await poll(drained, 0.5)
            stats = await server.call("benchStats")
            times = sorted(await server.call("benchTimes"))
    span = times[-1] - times[0]
    slowest = min(
        (sum(1 for t in times if start <= t < start + WINDOW) / WINDOW
         for start in times if start + WINDOW <= times[-1]),
        default=len(times) / span,
    )
    return {"messages": len(times), "span": span, "rate": (len(times) - 1) / span, "slowest": slowest,
            "floods": stats["floods"], "card": card_latency}


def main() -> int:
    header(f"Send rate under Telegram's limits ({UNITS:,}-group broadcast and the weekly bulletins of "
           f"{UNITS:,} units in {COMMUNITIES} communities; fake server enforcing 30/s and 20/min per group)")
    with tempfile.TemporaryDirectory() as folder:
        result = asyncio.run(run(Path(folder)))
    rate, slowest = result["rate"] / LIMIT, result["slowest"] / LIMIT
    print(f"  messages taken: {result['messages']:,} in {result['span']:.1f} s")
    print(f"  sustained: {result['rate']:.1f}/s = {rate:.2f} × 30; slowest {WINDOW:.0f} s: "
          f"{result['slowest']:.1f}/s = {slowest:.2f} × 30")
    print(f"  429 answers provoked: {result['floods']}")
    print(f"  card queued halfway: in its chat after {result['card']:.2f} s")
    ok = rate >= 0.9 and result["floods"] == 0 and result["card"] <= 2.0
    print(f"  goal: ≥ 0.90 × 30 sustained, no 429, the card within 2 s → {verdict(ok)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
