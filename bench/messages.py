"""How many messages one matter costs each chat: the demo's scenarios through the real
Application against the fake Bot API (bot/dev/fakeapi.py), in this process, with the demo
town (bot/dev/demo.yaml), a real SQLite file and a clock the script moves.

For each lifecycle it prints, per chat, the bot's new messages, its edits and its
reactions. Goals (issue 14): at most 3 new messages in the unit group per ordinary matter;
at most 1 new message per escalation in each upper chat. The urgent notice to the reporter
("已通知社区和派出所 … 110") is a safety message and is counted apart.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from _common import header, verdict

from bot.app import build_application, running
from bot.clock import ManualClock
from bot.dev.demo import RESIDENT_WANG, TOKEN, load_demo_config
from bot.dev.fakeapi import FakeBotApi, buttons

NEW = frozenset({"sendmessage", "sendphoto", "sendvoice", "sendlocation", "senddocument", "copymessage",
                 "forwardmessage"})
EDITS = frozenset({"editmessagetext", "editmessagereplymarkup", "editmessagecaption"})
START = 1_795_000_000.0  # a Tuesday morning in the town, far from the weekly summary
UNIT, COMMUNITY, STATION = -1111, -1011, -1001  # the demo town's chats (bot/dev/demo.yaml)
HEAD, POLICE, STAFF = (1111, "蒋建国"), (1011, "王警官"), (1001, "陈所长")


class Play:
    """One scenario's bot, server and clock."""

    def __init__(self, app: Any, api: FakeBotApi, clock: ManualClock) -> None:
        self.app, self.api, self.clock = app, api, clock
        self.wang = api.user(*RESIDENT_WANG)

    async def settle(self) -> None:
        """Until nothing waits: no update unhandled, nothing due in the outbox."""
        store = self.app.bot_data["services"].store
        quiet = 0
        while quiet < 3:
            await asyncio.sleep(0.15)
            async with store.read() as tx:
                pending = await tx.outbox_due(self.clock.now() + 1e9, limit=1)
            quiet = quiet + 1 if not pending and not self.api.pending_updates() else 0

    def card(self) -> Any:
        return next(m for m in self.api.bot_messages(UNIT) if any(d.startswith("v1:") for _, d in buttons(m)))

    def press(self, chat: int, who: tuple[int, str], message: Any, prefix: str) -> None:
        data = next(d for _, d in buttons(message) if d.startswith(prefix))
        self.api.press_button(chat, self.api.user(*who), message.message_id, data)

    def command(self, chat: int, who: tuple[int, str], text: str) -> None:
        self.api.send_text(chat, self.api.user(*who), text)

    async def report(self, text: str = "3号楼楼道堆放大量纸箱杂物") -> None:
        self.api.send_text(UNIT, self.wang, f"/report {text}")
        await self.settle()

    async def rate(self) -> None:
        ask = next(m for m in self.api.bot_messages(UNIT) if any(d.startswith("v1:rate:") for _, d in buttons(m)))
        self.press(UNIT, RESIDENT_WANG, ask, "v1:rate:1:satisfied")
        await self.settle()

    async def climb(self) -> None:
        """Past the current tier's claim deadline (the demo's: 3 s): the sweep sends it up."""
        self.clock.advance(4)
        await asyncio.sleep(1.2)  # a sweep or two (every 0.5 s)
        await self.settle()


async def ordinary_by_button(p: Play) -> None:
    await p.report()
    p.press(UNIT, HEAD, p.card(), "v1:claim:")
    await p.settle()
    p.command(UNIT, HEAD, "/resolve 1 已联系物业清理楼道")
    await p.settle()
    await p.rate()


async def ordinary_by_command(p: Play) -> None:
    await p.report()
    p.command(UNIT, HEAD, "/claim 1")
    await p.settle()
    p.command(UNIT, HEAD, "/resolve 1 已联系物业清理楼道")
    await p.settle()
    await p.rate()


async def urgent(p: Play) -> None:
    await p.report("3号楼楼道堆放大量纸箱杂物，有消防隐患")
    p.press(UNIT, RESIDENT_WANG, p.card(), "v1:cats:")
    await p.settle()
    p.press(UNIT, RESIDENT_WANG, p.card(), "v1:cat:1:safety")
    await p.settle()
    p.press(UNIT, HEAD, p.card(), "v1:claim:")
    await p.settle()
    p.command(UNIT, HEAD, "/resolve 1 已联系物业清理楼道")
    await p.settle()
    await p.rate()


async def escalated(p: Play) -> None:
    await p.report("楼上邻居连续一周深夜装修，协商无果")
    await p.climb()  # to the community
    await p.climb()  # to the station
    ping = next(m for m in p.api.bot_messages(STATION) if "#1" in (m.text or "") and buttons(m))
    p.press(STATION, STAFF, ping, "v1:claim:")  # 接手
    await p.settle()
    p.command(STATION, STAFF, "/resolve 1 已协调施工时间")
    await p.settle()
    await p.rate()


SCENARIOS: list[tuple[str, Callable[[Play], Awaitable[None]]]] = [
    ("report → claim (button) → resolve → rate", ordinary_by_button),
    ("report → /claim → /resolve → rate", ordinary_by_command),
    ("urgent: report → category 安全隐患 → claim → resolve → rate", urgent),
    ("report → escalate twice → take over → resolve → rate", escalated),
]


async def play(folder: Path, index: int, scenario: Callable[[Play], Awaitable[None]]) -> dict[int, Counter[str]]:
    """Run one scenario in a fresh town; per chat, what the bot did there."""
    async with FakeBotApi() as api:
        config = load_demo_config(folder / f"m{index}.sqlite3", api.base_url, api.base_file_url)
        st = config.stations[0]
        for node in [st, *st.communities, *[u for c in st.communities for u in c.units]]:
            if node.chat_id is not None:
                api.add_chat(node.chat_id, node.name)
        clock = ManualClock(START)
        app = build_application(config, TOKEN, clock=clock)
        async with running(app):
            p = Play(app, api, clock)
            await p.settle()
            before = len(api.calls)
            await scenario(p)
            calls = api.calls[before:]
    counts: dict[int, Counter[str]] = {}
    for call in calls:
        chat = call.params.get("chat_id")
        method = call.method.lower()
        if call.status != 200 or not isinstance(chat, int):
            continue
        what = "new" if method in NEW else "edits" if method in EDITS else "reactions" \
            if method == "setmessagereaction" else None
        if what:
            counts.setdefault(chat, Counter())[what] += 1
            if what == "new" and "110" in str(call.params.get("text") or ""):
                counts[chat]["safety"] += 1
    return counts


def _name(chat: int) -> str:
    return {UNIT: "unit group", COMMUNITY: "community group", STATION: "station group"}.get(
        chat, f"DM {chat}" if chat > 0 else f"chat {chat}")


async def main() -> int:
    header("Messages per matter lifecycle (new / edits / reactions per chat)")
    ok = True
    with tempfile.TemporaryDirectory(prefix="tierbot-messages-") as folder:
        for index, (title, scenario) in enumerate(SCENARIOS):
            counts = await play(Path(folder), index, scenario)
            print(f"  {title}")
            for chat in sorted(counts, key=lambda c: (c > 0, c)):
                c = counts[chat]
                safety = f" (+{c['safety']} safety notice)" if c["safety"] else ""
                print(f"    {_name(chat):<16} {c['new'] - c['safety']:>2} new{safety}, {c['edits']:>2} edits, "
                      f"{c['reactions']:>2} reactions")
            unit_new = counts.get(UNIT, Counter())["new"] - counts.get(UNIT, Counter())["safety"]
            ok &= unit_new <= 3
    print(f"  goal: at most 3 new messages in the unit group per matter: {verdict(ok)}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
