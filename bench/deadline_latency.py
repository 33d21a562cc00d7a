"""Time from a matter's deadline to its escalation reaching the next tier's chat.

The real tierbot Application runs with the system clock, ``sweep_interval`` 1 s and a
unit claim window of 2 s, against the fake Bot API in its own process. Residents report
matters at random moments over a stretch of time, so deadlines fall anywhere between two
sweeps; for each matter the delay is the arrival of "事项 #N 上报至…" at the fake server
minus (reported at + 2 s). Goal: p99 under 1.5 s.
"""

from __future__ import annotations

import asyncio
import random
import re
import sys
import tempfile
from pathlib import Path

from _common import (
    QUICK,
    TOKEN,
    FakeServer,
    chats_of,
    community_chat,
    header,
    parse,
    percentile,
    town,
    unit_chat,
    verdict,
)

from bot.app import build_application, running
from bot.store import Store

MATTERS = 60 if QUICK else 300
SPREAD = 6.0 if QUICK else 30.0  # seconds over which the reports are made
UNITS, COMMUNITIES = 100, 10
CLAIM = 2.0
DEADLINES = {
    "unit": {"claim": f"{CLAIM:g}s", "resolve": "1h"},
    "community": {"claim": "1h", "resolve": "2h"},
    "station": {"claim": "1h", "resolve": "2h", "repeat": "1h"},
}
TITLE = re.compile(r"事项 #(\d+) 上报至")


async def run(folder: Path) -> list[float]:
    database = folder / "latency.sqlite3"
    async with FakeServer() as server:
        raw = town(UNITS, COMMUNITIES, database, base_url=server.url, deadlines=DEADLINES, sweep_interval="1s")
        await server.call("benchAddChats", chats=chats_of(raw))
        app = build_application(parse(raw), TOKEN)
        rnd = random.Random(5)
        async with running(app):
            loop = asyncio.get_running_loop()
            began = loop.time()
            for i, at in enumerate(sorted(rnd.uniform(0, SPREAD) for _ in range(MATTERS))):
                await asyncio.sleep(max(0.0, began + at - loop.time()))
                await server.call("benchSay", chat=unit_chat(i % UNITS), user=700000 + i, name=f"居民{i}",
                                  text=f"/report 路灯损坏多日无人修理 {i}")
            communities = [community_chat(c) for c in range(COMMUNITIES)]
            # Matters due in one sweep share one message per chat, so count matters, not messages.
            arrived: dict[int, float] = {}
            deadline = loop.time() + SPREAD + 60
            while len(arrived) < MATTERS and loop.time() < deadline:
                await asyncio.sleep(0.5)
                for wall, _, text in await server.call("benchSent", chats=communities):
                    for number in TITLE.findall(text):
                        arrived.setdefault(int(number), wall)
            assert len(arrived) == MATTERS, f"only {len(arrived)} of {MATTERS} matters escalated in time"
    store = await Store.open(database)
    try:
        async with store.read() as tx:
            reported = {m: (await tx.matter(m)).created_at for m in arrived}  # type: ignore[union-attr]
    finally:
        await store.close()
    return [arrived[m] - (reported[m] + CLAIM) for m in arrived]


def main() -> int:
    header(f"Deadline to ping ({MATTERS} matters reported over {SPREAD:g} s; sweep every 1 s; unit claim {CLAIM:g} s)")
    with tempfile.TemporaryDirectory(prefix="tierbot-bench-") as folder:
        delays = asyncio.run(run(Path(folder)))
    assert len(delays) == MATTERS, f"expected {MATTERS} escalations, got {len(delays)}"
    assert min(delays) >= 0, "an escalation arrived before its deadline"
    p50, p99 = percentile(delays, 50), percentile(delays, 99)
    print(f"  delay from deadline to the community's chat: p50 {p50:.3f} s · p99 {p99:.3f} s · "
          f"max {max(delays):.3f} s · min {min(delays):.3f} s")
    print(f"  goal: p99 < 1.5 s: {verdict(p99 < 1.5)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
