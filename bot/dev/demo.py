"""``tierbot demo``: the main job, end to end, without a token or a network.

Runs the real Application against the fake Bot API server (in-process, on 127.0.0.1)
with a small town whose deadlines are seconds, plays a short script, and prints what
each tier's chats saw.
"""

from __future__ import annotations

import asyncio
import copy
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from bot.app import running
from bot.config import Config, ConfigError, parse_config
from bot.dev.fakeapi import FakeBotApi, buttons
from bot.text.i18n import Texts

DEMO_CONFIG = Path(__file__).with_name("demo.yaml")
TOKEN = "123456:DEMO-NOT-A-REAL-TOKEN"

RESIDENT_WANG = (5001, "王芳")
RESIDENT_LIU = (5002, "刘大爷")


def load_demo_config(database: Path, base_url: str, base_file_url: str, source: str | None = None) -> Config:
    """The bundled demo town, or (``source``) the town of a config.yaml played with the demo's
    deadlines of seconds; nodes without a chat get fake ones. Raises ConfigError, clearly."""
    raw = yaml.safe_load(DEMO_CONFIG.read_text(encoding="utf-8"))
    if source is not None:
        raw = town_for_demo(raw, _read(source))
    raw["database"] = str(database)
    raw.setdefault("telegram", {}).update(base_url=base_url, base_file_url=base_file_url)
    raw["screening"] = _screening_now(str(raw.get("timezone") or "Asia/Shanghai"))
    return parse_config(raw, source=str(source or DEMO_CONFIG))


def _screening_now(timezone: str) -> dict[str, Any]:
    """The weekly screening, due in an hour and asked a day ahead: its question goes out as
    the demo starts, whatever the day (issue 16's officers' side)."""
    due = datetime.now(ZoneInfo(timezone)) + timedelta(hours=1)
    return {"enabled": True, "due": due.strftime("%a %H:%M").lower(), "ask_ahead": "1d", "remind_ahead": "10m"}


def _read(source: str) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(Path(source).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of settings at the top level")
    parse_config(raw, source=source)  # the file as it is must be valid: say what is wrong in it
    return raw


# What the demo takes from a real config: the town and how it speaks. Deadlines, quiet
# hours, reminders and the duty roster stay the demo's, so the play takes seconds.
TAKEN = ("language", "timezone", "station", "categories")
FAKE_CHATS = -2_000_000_000  # fake group ids count down from here, clear of real ones


def town_for_demo(demo: dict[str, Any], raw: dict[str, Any]) -> dict[str, Any]:
    """The demo's settings with ``raw``'s town; a node without chat_id gets a fake one."""
    out = {**demo, **{key: copy.deepcopy(raw[key]) for key in TAKEN if key in raw}}
    for category in out.get("categories") or []:
        if isinstance(category, dict):
            category.pop("deadlines", None)  # a category's own hours would outlast the demo
    st = out["station"]
    nodes = [st, *st["communities"], *(u for c in st["communities"] for u in c["units"])]
    fake = FAKE_CHATS
    for node in nodes:
        if node.get("chat_id") is None:
            node["chat_id"] = fake
            fake -= 1
    return out


def cast(config: Config) -> tuple[Any, Any, Any]:
    """The community and its two units the demo plays in; ConfigError if the town has none
    with two units, a head and station staff."""
    st = config.stations[0]
    community = next((c for c in st.communities if len(c.units) >= 2 and c.units[0].heads), None)
    if community is None or not st.staff:
        raise ConfigError("the demo needs station staff and a community with at least two units, "
                          "the first of them with a head")
    return community, community.units[0], community.units[1]


async def main(config_path: str | None = None) -> int:
    from bot.app import build_application

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tierbot-demo-") as folder:
        async with FakeBotApi() as api:
            try:
                config = load_demo_config(Path(folder) / "demo.sqlite3", api.base_url, api.base_file_url,
                                          config_path)
                community, unit_a, unit_b = cast(config)
            except ConfigError as exc:
                print(f"tierbot demo: {exc}", file=sys.stderr)
                return 1
            st = config.stations[0]
            t = Texts(config.language, config.tz, {c.key: (c.zh, c.en) for c in config.categories})
            for chat_id, title in _chats(config):
                api.add_chat(chat_id, title)
            head = unit_a.heads[0]
            say = _narrator(started, t)
            urgent = next((c for c in config.categories if c.urgent), None)
            app = build_application(config, TOKEN)
            async with running(app):
                wang = api.user(*RESIDENT_WANG)
                liu = api.user(*RESIDENT_LIU)
                say("demo.report", who=RESIDENT_WANG[1], unit=unit_a.name)
                api.send_text(unit_a.chat_id or 0, wang, "/report 3号楼楼道堆放大量纸箱杂物，有消防隐患")
                card = await _wait_card(api, unit_a.chat_id or 0)
                pick = next((data for _, data in buttons(card) if data.startswith("v1:cats:")), None)
                if pick and urgent is not None:  # 🏷 分类 opens the list on the card; then the urgent one
                    say("demo.urgent", category=t.category(urgent.key))
                    api.press_button(unit_a.chat_id or 0, wang, card.message_id, pick)
                    chosen = f":{urgent.key}"
                    await api.wait_for(lambda: any(d.endswith(chosen) for _, d in buttons(card)))
                    data = next(d for _, d in buttons(card) if d.endswith(chosen))
                    api.press_button(unit_a.chat_id or 0, wang, card.message_id, data)
                    await api.wait_for(lambda: _has(api, st.chat_id, "#1"))
                say("demo.noise", who=RESIDENT_LIU[1], unit=unit_b.name)
                api.send_text(unit_b.chat_id or 0, liu, "上报 楼上邻居连续一周深夜装修，协商无果")
                await _wait_card(api, unit_b.chat_id or 0)

                say("demo.claim", who=head.name or str(head.id), button=t("button.claim"))
                head_user = api.user(head.id, head.name or str(head.id))
                api.press_button(unit_a.chat_id or 0, head_user, card.message_id, buttons(card)[0][1])
                await api.wait_for(lambda: not any(d.startswith("v1:claim") for _, d in buttons(card)))
                api.send_text(unit_a.chat_id or 0, head_user, "/resolve 1 已联系物业清理楼道，消除隐患")
                await api.wait_for(lambda: not buttons(card))
                ask = await api.wait_for(lambda: next(
                    (m for m in api.bot_messages(unit_a.chat_id or 0)
                     if any(d.startswith("v1:rate:") for _, d in buttons(m))), None))
                say("demo.rate", who=RESIDENT_WANG[1], rating=t("rating.satisfied"))
                api.press_button(unit_a.chat_id or 0, wang, ask.message_id, buttons(ask)[0][1])
                await api.wait_for(lambda: not buttons(ask))

                d = config.deadlines
                say("demo.wait", unit=f"{d.unit.claim:g}", community=f"{d.community.claim:g}")
                await api.wait_for(lambda: _has(api, community.chat_id, "#2"), timeout=d.unit.claim + 10)
                say("demo.community")
                await api.wait_for(lambda: _has(api, st.chat_id, "#2"), timeout=d.community.claim + 10)
                # The community's post follows the matter up (its refresh waits a second): the
                # transcript must not show it still asking the community.
                await api.wait_for(lambda: any(m.edits and "#2" in (m.text or "")
                                               for m in api.bot_messages(community.chat_id or 0)), timeout=10)
                say("demo.station")
                staff = st.staff[0]
                api.send_text(st.chat_id or 0, api.user(staff.id, staff.name or "staff"), "/summary")
                # The figures, then their chart (drawn by the delivery worker).
                await api.wait_for(lambda: any(m.photo for m in api.bot_messages(st.chat_id or 0)), timeout=30)

                # The officers' side: the week's screening for disputes, answered with a zero-report.
                officer = community.police[0] if community.police else community.secretaries[0]
                say("demo.screening", who=officer.name or str(officer.id), community=community.name)
                ask = await api.wait_for(lambda: next(
                    (m for m in api.bot_messages(community.chat_id or 0)
                     if any(d.startswith("sc:zero:") for _, d in buttons(m))), None), timeout=10)
                zero = next(d for _, d in buttons(ask) if d.startswith("sc:zero:"))
                api.press_button(community.chat_id or 0, api.user(officer.id, officer.name or str(officer.id)),
                                 ask.message_id, zero)
                await api.wait_for(lambda: not any(d.startswith("sc:zero:") for _, d in buttons(ask)))
                if community.police:  # …and a visit logged in private
                    await _visit(api, community.police[0], unit_a, community.chat_id, say)
                await asyncio.sleep(0.3)
            names = {RESIDENT_WANG[0]: RESIDENT_WANG[1], RESIDENT_LIU[0]: RESIDENT_LIU[1]}
            chats = [unit_a.chat_id, unit_b.chat_id, community.chat_id, st.chat_id]
            print("\n" + api.transcript([c for c in chats if c is not None], names=names, tz=config.tz))
    print(t("demo.finished", seconds=f"{time.monotonic() - started:.1f}"))
    return 0


async def _visit(api: FakeBotApi, officer: Any, unit: Any, community_chat: int | None,
                 say: Callable[..., None]) -> None:
    """The community's officer logs a visit in a private chat with the bot: the one-line
    start, the unit, no findings, the place, 完成; it is posted to the community's group,
    the place after it."""
    name = officer.name or str(officer.id)
    say("demo.visit", who=name, unit=unit.name)
    cop = api.user(officer.id, name)

    async def tap(suffix: str) -> None:
        found = await api.wait_for(lambda: next(((m, d) for m in reversed(api.bot_messages(officer.id))
                                                 for _, d in buttons(m) if d.endswith(suffix)), None))
        api.press_button(officer.id, cop, found[0].message_id, found[1])

    api.send_text(officer.id, cop, "/visit 5户 帮独居老人代缴水费、检查燃气灶")
    await tap(f":u:{unit.id}")
    await api.wait_for(lambda: any("✅" in label for m in api.bot_messages(officer.id) for label, _ in buttons(m)))
    await tap(":n")
    await tap(":f")
    api.send_location(officer.id, cop, 29.3201, 120.1402)  # where: Telegram's own location, as sent
    await tap(":d")  # 完成: its button comes with the last step's question
    await api.wait_for(lambda: any("location" in m.raw for m in api.bot_messages(community_chat or 0)))


def _chats(config: Config) -> list[tuple[int, str]]:
    st = config.stations[0]
    nodes: list[Any] = [st, *st.communities, *[u for c in st.communities for u in c.units]]
    return [(n.chat_id, n.name) for n in nodes if n.chat_id is not None]


def _has(api: FakeBotApi, chat_id: int | None, text: str) -> bool:
    return chat_id is not None and any(text in (m.text or "") for m in api.bot_messages(chat_id))


async def _wait_card(api: FakeBotApi, chat_id: int) -> Any:
    return await api.wait_for(lambda: next((m for m in api.bot_messages(chat_id) if buttons(m)), None))


def _narrator(started: float, t: Texts) -> Callable[..., None]:
    """Narration in the town's language (the catalog's demo.* keys)."""
    def say(key: str, **params: object) -> None:
        print(f"[{time.monotonic() - started:5.1f}s] {t(key, **params)}", flush=True)

    return say
