"""A 2,000-group broadcast through the leased sender (issue 18), on PostgreSQL.

Two workers (real Applications, bot/app.py) share one PostgreSQL schema: A holds the
sender's lease and takes no updates; B takes the updates (the station head's /broadcast)
and queues, and A hears of the rows through LISTEN/NOTIFY. The fake Bot API, in a process
of its own, enforces Telegram's limits in real time (30 messages a second, 20 a minute per
group: a message beyond them is answered 429 and not taken). Goal: at least 0.9 × 30
messages a second sustained, no 429 provoked.

``--handover``: A dies (its side connection dropped, its delivery stopped, the lease not
given up) when a third of the copies are taken; B takes over within ``delivery.lease``
(3 s here) and sends the rest. Printed: the gap, the copies sent twice, the rate overall.

The server: ``TIERBOT_TEST_POSTGRES`` (as for the tests); a schema of its own, dropped after.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
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
    postgres_schema,
    town,
    verdict,
)

from bot.app import build_application, running

UNITS, COMMUNITIES = (300, 15) if QUICK else (2_000, 100)
LIMIT = 30.0
LEASE = "3s"
HANDOVER = "--handover" in sys.argv
# Tuesday 1 December 2026, 10:00 in the town: no bulletin due, only the broadcast.
TUESDAY = datetime(2026, 12, 1, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
TEXT = "今晚八点起停水检修，请各单元提前储水。"


def sending(app: Any) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return bool(app.bot_data["services"].delivery.may_send())
    return check


async def run(url: str) -> dict[str, Any]:
    async with FakeServer() as server, postgres_schema(url) as database:
        raw = town(UNITS, COMMUNITIES, database, base_url=server.url)
        raw["telegram"]["rate_limit"] = {"overall_per_second": LIMIT, "group_per_minute": 20, "max_retries": 3}
        raw["delivery"] = {"lease": LEASE}
        await server.call("benchAddChats", chats=chats_of(raw))
        await server.call("benchLimits", per_second=LIMIT, group_per_minute=20)
        a = build_application(parse(raw), TOKEN, clock=RunningClock(TUESDAY))
        b = build_application(parse(raw), TOKEN, clock=RunningClock(TUESDAY))
        async with running(a, polling=False):
            await a.bot_data["menus"].wait()
            sender = a.bot_data["services"].delivery
            await poll(sending(a), 0.05)
            async with running(b, polling=True):
                await b.bot_data["menus"].wait()
                await server.call("benchSay", chat=STATION_CHAT, user=STAFF, name="陈所长", text=f"/broadcast {TEXT}")

                async def copies() -> Counter[int]:
                    return Counter(chat for _, chat, text in await server.call("benchSent") if TEXT in text)

                gap = 0.0
                if HANDOVER:
                    async def a_third() -> bool:
                        return len(await copies()) >= UNITS // 3
                    await poll(a_third, 0.2)
                    a.bot_data["workers"].kill()
                    await sender.stop()
                    killed = time.monotonic()
                    await poll(sending(b), 0.05)
                    gap = time.monotonic() - killed

                async def all_sent() -> bool:
                    return len(await copies()) >= UNITS
                await poll(all_sent, 0.5)
                sent = await copies()
                stats = await server.call("benchStats")
                times = sorted(at for at, _, text in await server.call("benchSent") if TEXT in text)
                senders = (sender.started_items, b.bot_data["services"].delivery.started_items)
    span = times[-1] - times[0]
    return {"copies": len(times), "span": span, "rate": (len(times) - 1) / span, "floods": stats["floods"],
            "twice": sum(n - 1 for n in sent.values()), "gap": gap, "senders": senders}


def main() -> int:
    url = os.environ.get("TIERBOT_TEST_POSTGRES", "").strip()
    if not url:
        print("TIERBOT_TEST_POSTGRES is not set: no PostgreSQL server to run on")
        return 2
    header(f"A {UNITS:,}-group broadcast through the leased sender (two workers on PostgreSQL; "
           f"fake server enforcing 30/s and 20/min per group){' with a handover' if HANDOVER else ''}")
    result = asyncio.run(run(url))
    rate = result["rate"] / LIMIT
    print(f"  copies taken: {result['copies']:,} in {result['span']:.1f} s = {result['rate']:.1f}/s = {rate:.2f} × 30")
    print(f"  429 answers provoked: {result['floods']}; items started by A / B: {result['senders']}")
    if HANDOVER:
        print(f"  A killed at a third: B sending after {result['gap']:.2f} s (lease {LEASE}); "
              f"copies sent twice: {result['twice']}")
    ok = rate >= 0.9 and result["floods"] == 0 if not HANDOVER else result["gap"] <= 3.5
    print(f"  goal: {'≥ 0.90 × 30, no 429' if not HANDOVER else 'B sends within the lease'} → {verdict(ok)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
