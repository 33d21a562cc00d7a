"""Fixtures: a small town, the fake Bot API server, and the real Application running
against it with a real SQLite file and a clock the test moves."""

from __future__ import annotations

import copy
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from telegram.ext import Application

from bot.app import Services, build_application, running
from bot.clock import ManualClock
from bot.config import Config, parse_config
from bot.dev.fakeapi import FakeBotApi
from bot.store import SecondWrite
from tests.postgres import bot_database, database_url, parametrize_engines, postgres_url  # noqa: F401  (issue 17)

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "123456:TEST-TOKEN"
TZ = ZoneInfo("Asia/Shanghai")
# Tuesday 24 November 2026, 10:00 in the town: more than a day after Monday's 09:00
# weekly summary, so no summary is due until the test moves the clock to next Monday.
START = datetime(2026, 11, 24, 10, 0, tzinfo=TZ).timestamp()

STATION_CHAT, C1_CHAT, C2_CHAT = -100, -200, -300
U1_CHAT, U2_CHAT, U3_CHAT = -201, -202, -301
STAFF, POLICE, SECRETARY, POLICE2 = 11, 21, 22, 23
HEAD1, HEAD2, HEAD3 = 31, 32, 33
RESIDENT, RESIDENT2 = 901, 902

TOWN: dict[str, Any] = {
    "language": "zh",
    "timezone": "Asia/Shanghai",
    "sweep_interval": "0.1s",
    "weekly_summary": "mon 09:00",
    # The officers' weekly messages (issue 16) are off in the test town, so that a test
    # moving the clock across a Friday sees only what it is about; their own tests turn them on.
    "notice": {"enabled": False},
    "screening": {"enabled": False},
    "telegram": {"poll_timeout": 1, "rate_limit": {"group_per_minute": 6000, "overall_per_second": 1000}},
    "deadlines": {
        "unit": {"claim": "1h", "resolve": "1d"},
        "community": {"claim": "2h", "resolve": "2d"},
        "station": {"claim": "3h", "resolve": "3d", "repeat": "6h"},
    },
    "station": {
        "id": "st",
        "name": "苏溪派出所",
        "chat_id": STATION_CHAT,
        "staff": [{"id": STAFF, "name": "陈所长"}],
        "communities": [
            {
                "id": "c1",
                "name": "蒋母塘村",
                "kind": "village",
                "chat_id": C1_CHAT,
                "police": [{"id": POLICE, "name": "王警官"}],
                "secretaries": [{"id": SECRETARY, "name": "李书记"}],
                "units": [
                    {"id": "u1", "name": "第一村民小组", "kind": "village", "chat_id": U1_CHAT,
                     "heads": [{"id": HEAD1, "name": "蒋建国"}]},
                    {"id": "u2", "name": "第二村民小组", "kind": "village", "chat_id": U2_CHAT,
                     "heads": [{"id": HEAD2, "name": "周明"}]},
                ],
            },
            {
                "id": "c2",
                "name": "好派新城社区",
                "kind": "estate",
                "chat_id": C2_CHAT,
                "police": [{"id": POLICE2, "name": "赵警官"}],
                "secretaries": [24],
                "units": [
                    {"id": "u3", "name": "3幢", "kind": "estate", "chat_id": U3_CHAT,
                     "heads": [{"id": HEAD3, "name": "吴楼长"}]},
                    {"id": "u4", "name": "商铺街", "kind": "street", "heads": [34]},
                ],
            },
        ],
    },
}


def town(**overrides: Any) -> dict[str, Any]:
    """A copy of the test town; keyword arguments replace top-level keys."""
    raw = copy.deepcopy(TOWN)
    raw.update(overrides)
    return raw


def parse_town(**overrides: Any) -> Config:
    return parse_config(town(**overrides))


@dataclass
class Running:
    app: Application
    api: FakeBotApi
    clock: ManualClock
    config: Config

    @property
    def svc(self) -> Services:
        return self.app.bot_data["services"]

    def user(self, user_id: int, name: str | None = None) -> dict[str, Any]:
        return self.api.user(user_id, name or f"用户{user_id}")

    def say(self, chat_id: int, user_id: int, text: str, **kwargs: Any) -> dict[str, Any]:
        return self.api.send_text(chat_id, self.user(user_id), text, **kwargs)

    def bot_texts(self, chat_id: int) -> list[str]:
        return [m.text for m in self.api.bot_messages(chat_id)]

    async def wait_bot(self, chat_id: int, contains: str, within: float = 5.0) -> Any:
        """The first bot message in the chat containing ``contains``."""
        def found() -> Any:
            return next((m for m in self.api.bot_messages(chat_id) if contains in (m.text or "")), None)

        return await self.api.wait_for(found, within)

    async def done(self, chat_id: int, sent: dict[str, Any], emoji: str = "👍", within: float = 5.0) -> None:
        """Wait for the bot's reaction on a message it sent: a head's command that the card's
        edit answers is acknowledged with 👍, not a new message (issue 14)."""
        await self.api.wait_for(lambda: emoji in self.api.reactions(chat_id, sent["message_id"]), within)

    def count_bot(self, chat_id: int, contains: str) -> int:
        """How many bot messages in the chat contain ``contains`` (as people see them)."""
        return sum(contains in (m.text or "") for m in self.api.bot_messages(chat_id))

    async def settle(self) -> None:
        """Let queued updates, sweeps and deliveries run to completion."""
        import asyncio

        for _ in range(3):
            await asyncio.sleep(0.3)
            async with self.svc.store.read() as tx:
                pending = await tx.outbox_due(self.clock.now() + 1e9, limit=1)
            if not pending and not self.api.pending_updates():
                return


def add_chats(api: FakeBotApi, raw: dict[str, Any]) -> None:
    stations = raw["stations"] if "stations" in raw else [raw["station"]]  # a city's, or a town's one
    nodes = [n for st in stations
             for n in (st, *st["communities"], *[u for c in st["communities"] for u in c["units"]])]
    for node in nodes:
        if node.get("chat_id"):
            api.add_chat(node["chat_id"], node["name"])


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_engines(metafunc)  # a both_engines module's tests on SQLite and on PostgreSQL (issue 17)


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as server:
        yield server


@pytest.fixture
def make_bot(bot_database: str, api: FakeBotApi) -> Callable[..., Any]:  # noqa: F811 (the fixture)
    """``async with make_bot(raw_config) as bot:`` runs the real Application."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def start(raw: dict[str, Any] | None = None, clock: ManualClock | None = None,
                    database: Path | None = None) -> AsyncIterator[Running]:
        raw = copy.deepcopy(raw or TOWN)
        raw["database"] = str(database or bot_database)
        raw.setdefault("telegram", {})
        raw["telegram"]["base_url"] = api.base_url
        raw["telegram"]["base_file_url"] = api.base_file_url
        config = parse_config(raw)
        add_chats(api, raw)
        clock = clock or ManualClock(START)
        app = build_application(config, TOKEN, clock=clock)
        second = _SecondWrites()
        logging.getLogger().addHandler(second)
        try:
            async with running(app):
                yield Running(app, api, clock, config)
        finally:
            logging.getLogger().removeHandler(second)
        # Every handler path a test drives makes one write transaction for its update.
        assert not second.seen, f"a handler wrote twice for one update: {second.seen}"

    return start


class _SecondWrites(logging.Handler):
    """Collects the SecondWrite errors logged while a bot runs (bot/store/store.py)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and isinstance(record.exc_info[1], SecondWrite):
            self.seen.append(str(record.exc_info[1]))
