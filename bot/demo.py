"""``tierbot demo``: the main job, end to end, without a token or a network.

Runs the real Application against the fake Bot API server (in-process, on 127.0.0.1)
with a small town whose deadlines are seconds, plays a short script, and prints what
each tier's chats saw.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from bot.app import running
from bot.config import Config, parse_config
from bot.fakeapi import FakeBotApi, buttons

DEMO_CONFIG = Path(__file__).with_name("demo.yaml")
TOKEN = "123456:DEMO-NOT-A-REAL-TOKEN"

RESIDENT_WANG = (5001, "王芳")
RESIDENT_LIU = (5002, "刘大爷")


def load_demo_config(database: Path, base_url: str, base_file_url: str, source: str | None = None) -> Config:
    raw = yaml.safe_load(Path(source or DEMO_CONFIG).read_text(encoding="utf-8"))
    raw["database"] = str(database)
    raw.setdefault("telegram", {}).update(base_url=base_url, base_file_url=base_file_url)
    return parse_config(raw, source=str(source or DEMO_CONFIG))


async def main(config_path: str | None = None) -> int:
    from bot.app import build_application

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tierbot-demo-") as folder:
        async with FakeBotApi() as api:
            config = load_demo_config(Path(folder) / "demo.sqlite3", api.base_url, api.base_file_url, config_path)
            st = config.station
            community, unit_a, unit_b = st.communities[0], st.communities[0].units[0], st.communities[0].units[1]
            for chat_id, title in _chats(config):
                api.add_chat(chat_id, title)
            head = unit_a.heads[0]
            say = _narrator(started)
            app = build_application(config, TOKEN)
            async with running(app):
                wang = api.user(*RESIDENT_WANG)
                liu = api.user(*RESIDENT_LIU)
                say(f"{RESIDENT_WANG[1]} reports a fire hazard in {unit_a.name}")
                api.send_text(unit_a.chat_id or 0, wang, "/report 3号楼楼道堆放大量纸箱杂物，有消防隐患")
                card = await _wait_card(api, unit_a.chat_id or 0)
                say("she taps 🏷 分类, then 安全隐患: urgent, so the community and the station hear at once")
                pick = next((data for _, data in buttons(card) if data.startswith("v1:cats:")), None)
                if pick:  # 🏷 分类 opens the list on the card; then 安全隐患
                    api.press_button(unit_a.chat_id or 0, wang, card.message_id, pick)
                    await api.wait_for(lambda: any(d.endswith(":safety") for _, d in buttons(card)))
                    safety = next(d for _, d in buttons(card) if d.endswith(":safety"))
                    api.press_button(unit_a.chat_id or 0, wang, card.message_id, safety)
                    await api.wait_for(lambda: _has(api, st.chat_id, "紧急事项"))
                say(f"{RESIDENT_LIU[1]} reports a noise dispute in {unit_b.name}; nobody will answer it")
                api.send_text(unit_b.chat_id or 0, liu, "上报 楼上邻居连续一周深夜装修，协商无果")
                await _wait_card(api, unit_b.chat_id or 0)

                say(f"unit head {head.name} taps 认领 Claim on the first card, then resolves it")
                head_user = api.user(head.id, head.name or str(head.id))
                api.press_button(unit_a.chat_id or 0, head_user, card.message_id, buttons(card)[0][1])
                await api.wait_for(lambda: "处理中" in (card.text or ""))
                api.send_text(unit_a.chat_id or 0, head_user, "/resolve 1 已联系物业清理楼道，消除隐患")
                await api.wait_for(lambda: not buttons(card))
                ask = await api.wait_for(lambda: next(
                    (m for m in api.bot_messages(unit_a.chat_id or 0) if "请评价" in (m.text or "")), None))
                say(f"{RESIDENT_WANG[1]} rates it 满意 (群众满意度)")
                api.press_button(unit_a.chat_id or 0, wang, ask.message_id, buttons(ask)[0][1])
                await api.wait_for(lambda: "感谢" in (ask.text or ""))

                d = config.deadlines
                say(f"matter #2 waits: {d.unit.claim:g}s to the community, {d.community.claim:g}s more to the station")
                await api.wait_for(lambda: _has(api, community.chat_id, "上报至社区"), timeout=d.unit.claim + 10)
                say("the community's group is pinged; nobody takes it over either")
                await api.wait_for(lambda: _has(api, st.chat_id, "上报至派出所"), timeout=d.community.claim + 10)
                say("the station is pinged; the station asks for this week's figures")
                staff = st.staff[0]
                api.send_text(st.chat_id or 0, api.user(staff.id, staff.name or "staff"), "/summary")
                await api.wait_for(lambda: _has(api, st.chat_id, "全镇近七天"))
                await asyncio.sleep(0.3)
            names = {RESIDENT_WANG[0]: RESIDENT_WANG[1], RESIDENT_LIU[0]: RESIDENT_LIU[1]}
            chats = [unit_a.chat_id, unit_b.chat_id, community.chat_id, st.chat_id]
            print("\n" + api.transcript([c for c in chats if c is not None], names=names))
    print(f"demo finished in {time.monotonic() - started:.1f}s — no token, no network.")
    return 0


def _chats(config: Config) -> list[tuple[int, str]]:
    st = config.station
    nodes: list[Any] = [st, *st.communities, *[u for c in st.communities for u in c.units]]
    return [(n.chat_id, n.name) for n in nodes if n.chat_id is not None]


def _has(api: FakeBotApi, chat_id: int | None, text: str) -> bool:
    return chat_id is not None and any(text in (m.text or "") for m in api.bot_messages(chat_id))


async def _wait_card(api: FakeBotApi, chat_id: int) -> Any:
    return await api.wait_for(lambda: next((m for m in api.bot_messages(chat_id) if buttons(m)), None))


def _narrator(started: float) -> Callable[[str], None]:
    def say(line: str) -> None:
        print(f"[{time.monotonic() - started:5.1f}s] {line}", flush=True)

    return say
