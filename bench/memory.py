"""Memory: peak RSS of the running bot with 1,000,000 matters in its database, after its
first sweep (100 matters due) and a /summary in the station's chat.

The bot runs as in production, ``python -m bot run --config X`` in its own process,
long-polling the fake Bot API (bench/_fake_server.py); the town has 2,000 units. Its peak
is read from /proc/PID/status (VmHWM) while it still runs. Goal: under 200 MB.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _common import (
    QUICK,
    STAFF,
    STATION_CHAT,
    TOKEN,
    FakeServer,
    chats_of,
    community_chat,
    header,
    history,
    town,
    verdict,
)

MATTERS = 100_000 if QUICK else 1_000_000
DUE = 100
UNITS, COMMUNITIES = 2_000, 80


def status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in kB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


async def run(database: Path) -> dict[str, dict[str, int]]:
    folder = database.parent
    seen: dict[str, dict[str, int]] = {}
    async with FakeServer() as server:
        raw = town(UNITS, COMMUNITIES, database, base_url=server.url)
        await server.call("benchAddChats", chats=chats_of(raw))
        config = folder / "config.yaml"
        config.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
        log = (folder / "bot.log").open("wb")
        bot = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", "--config", str(config),
            env={**os.environ, "TELEGRAM_BOT_TOKEN": TOKEN}, stderr=log,
        )
        try:
            communities = [community_chat(c) for c in range(COMMUNITIES)]
            # The first sweep escalates the due matters to their communities' chats (those due
            # together share one message per chat, so count the matters named).
            escalated: set[str] = set()
            for _ in range(600):
                sent = await server.call("benchSent", chats=communities)
                escalated = {n for _, _, text in sent for n in re.findall(r"事项 #(\d+) 上报至", text)}
                if len(escalated) >= DUE:
                    break
                await asyncio.sleep(0.5)
            assert len(escalated) >= DUE, f"only {len(escalated)} of {DUE} matters escalated"
            seen["after the sweep"] = status(bot.pid)
            await server.call("benchSay", chat=STATION_CHAT, user=STAFF, name="陈所长", text="/summary")
            await server.call("benchWait", count=1, chats=[STATION_CHAT], timeout=300)
            seen["after /summary"] = status(bot.pid)
            # A town's summary may come in several parts; the first names itself.
            summary = (await server.call("benchSent", chats=[STATION_CHAT]))[0]
            assert "周报" in summary[2], f"expected the town's summary, got {summary[2][:80]!r}"
        finally:
            if bot.returncode is None:
                bot.send_signal(signal.SIGTERM)
                await asyncio.wait_for(bot.wait(), 60)
            log.close()
    errors = [line for line in (folder / "bot.log").read_text().splitlines() if " ERROR " in line]
    assert not errors, "the bot logged errors:\n" + "\n".join(errors[:10])
    return seen


def main() -> int:
    header(f"Memory of the running bot ({MATTERS:,} matters, {UNITS:,} units; `python -m bot run`)")
    with tempfile.TemporaryDirectory(prefix="tierbot-bench-") as folder:
        database = Path(folder) / "memory.sqlite3"
        started = time.perf_counter()
        # Not cached: its "now" must be the bot's real clock, so that exactly DUE matters are due.
        history(town(UNITS, COMMUNITIES, database), MATTERS, time.time(), due_now=DUE, path=database)
        print(f"  database of {MATTERS:,} matters built in {time.perf_counter() - started:.0f} s "
              f"({database.stat().st_size / 1e6:,.0f} MB)", flush=True)
        seen = asyncio.run(run(database))
    for moment, figures in seen.items():
        rss, peak = figures["VmRSS"] / 1024, figures["VmHWM"] / 1024
        print(f"  {moment + ':':17} RSS {rss:6.1f} MB, peak so far {peak:6.1f} MB")
    peak = max(f["VmHWM"] for f in seen.values()) / 1024
    print(f"  goal: peak < 200 MB: {peak:.1f} MB → {verdict(peak < 200)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
