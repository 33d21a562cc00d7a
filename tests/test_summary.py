"""Weekly summaries: the figures (pure), the schedule, and end to end with numbers
checked against data the test made through the bot."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from bot.store import SummaryFacts
from escalation.summary import Figures, rank, unit_figures
from escalation.weekly import last_fire
from tests.conftest import (
    C1_CHAT,
    HEAD1,
    HEAD2,
    POLICE,
    RESIDENT,
    STAFF,
    STATION_CHAT,
    TZ,
    U1_CHAT,
    U2_CHAT,
    U3_CHAT,
    Running,
    parse_town,
)

pytestmark = pytest.mark.both_engines  # on SQLite and on PostgreSQL (issue 17)

H = 3600.0
START, END = 1_000_000.0, 1_000_000.0 + 7 * 24 * H


def fact(created: float, claimed: float | None = None, resolved: float | None = None,
         escalated: float | None = None, unit: str = "u1") -> SummaryFacts:
    return SummaryFacts(unit, created, claimed, resolved, escalated)


def test_figures_count_what_happened_inside_the_period() -> None:
    facts = [
        fact(START + H, claimed=START + 2 * H, resolved=START + 5 * H),  # new, claimed, resolved
        fact(START - 48 * H, claimed=START - 47 * H, resolved=START + H),  # crosses in: resolved only
        fact(START - 48 * H, escalated=START - 40 * H),  # from before, still open and overdue
        fact(END - H, resolved=END + H),  # new; resolved after the end: still open at the end
        fact(END + H),  # after the period: not counted at all
    ]
    figures = unit_figures(facts, {"u1": 1}, ["u1", "u2"], START, END)
    u1 = figures["u1"]
    assert (u1.new, u1.resolved, u1.open, u1.overdue, u1.escalated) == (2, 2, 2, 1, 1)
    assert u1.median_claim == H  # only the claim made in the period
    assert u1.median_resolve == (4 * H + 49 * H) / 2
    assert figures["u2"] == Figures()  # an empty unit is there, with zeros
    assert figures["u2"].median_claim is None


def test_ranking_puts_fewest_overdue_first() -> None:
    units = {
        "a": Figures(overdue=2, resolved=9),
        "b": Figures(overdue=0, escalated=1),
        "c": Figures(overdue=0, escalated=0, resolved=3),
        "d": Figures(overdue=0, escalated=0, resolved=1),
    }
    assert rank(units) == ["c", "d", "b", "a"]


def test_the_schedule_is_in_the_town_timezone() -> None:
    trigger = parse_town().weekly_trigger()
    monday_9 = datetime(2026, 11, 30, 9, 0, tzinfo=TZ).timestamp()
    assert last_fire(trigger, monday_9) == monday_9
    assert last_fire(trigger, monday_9 - 1) == monday_9 - 7 * 24 * H
    assert last_fire(trigger, monday_9 + 3 * 24 * H) == monday_9


async def test_weekly_summary_numbers_match_the_data(make_bot: Any) -> None:
    next_monday_9 = datetime(2026, 11, 30, 9, 0, tzinfo=TZ).timestamp()
    async with make_bot() as bot:
        # Tuesday: matter 1 in unit 1, claimed after 30 min, resolved after 2 h.
        await _report(bot, U1_CHAT, "邻里纠纷：占用公共车位")
        bot.clock.advance(0.5 * H)
        await _do(bot, U1_CHAT, HEAD1, "/claim 1", "👍")
        bot.clock.advance(1.5 * H)
        await _do(bot, U1_CHAT, HEAD1, "/resolve 1 已协调", "解决：已协调")
        # Wednesday: matter 2 in unit 1 is left alone and climbs; the police take it over.
        bot.clock.advance(22 * H)
        await _report(bot, U1_CHAT, "房东租客押金纠纷")
        bot.clock.advance(1 * H)
        await bot.wait_bot(C1_CHAT, "事项 #2 上报至社区")
        bot.clock.advance(0.5 * H)
        await _do(bot, C1_CHAT, POLICE, "/claim 2", "👍")
        # Thursday: matter 3 in unit 2, claimed after 10 minutes, never resolved.
        bot.clock.advance(22.5 * H)
        await _report(bot, U2_CHAT, "劳资纠纷：拖欠工资")
        bot.clock.advance(10 * 60)
        await _do(bot, U2_CHAT, HEAD2, "/claim 3", "👍")
        # Monday 08:59: matter 3 is overdue and goes up; matter 4 comes in just in time.
        bot.clock.set(next_monday_9 - 60)
        await bot.wait_bot(C1_CHAT, "事项 #3 上报至社区")
        await _report(bot, U2_CHAT, "楼道堆放杂物")
        await bot.settle()
        assert bot.count_bot(U1_CHAT, "周报") == 0  # not yet
        # Monday 09:01: the summaries go out, once.
        bot.clock.set(next_monday_9 + 60)
        unit1 = await bot.wait_bot(U1_CHAT, "周报")
        assert "第一村民小组 周报（11-23 09:00 至 11-30 09:00）" in unit1.text
        # Each figure with its change from the week before (which was empty).
        assert "新增 2 ↑2 · 解决 1 ↑1 · 未结 1 ↑1 · 超期 1 ↑1" in unit1.text
        assert "上报社区 1 ↑1 · 上报派出所 1 ↑1 · 小事不出村 100%" in unit1.text
        assert "认领用时中位数 1小时 · 解决用时中位数 2小时" in unit1.text
        assert "本期评星：★★★☆☆" in unit1.text
        unit2 = await bot.wait_bot(U2_CHAT, "周报")
        assert "新增 2 ↑2 · 解决 0 · 未结 2 ↑2 · 超期 1 ↑1" in unit2.text
        assert "上报社区 1 ↑1 · 上报派出所 0 · 小事不出村 —" in unit2.text
        assert "认领用时中位数 10分钟 · 解决用时中位数 —" in unit2.text
        unit3 = await bot.wait_bot(U3_CHAT, "周报")
        assert "新增 0 · 解决 0 · 未结 0 · 超期 0" in unit3.text
        assert "本期评星：—" in unit3.text
        community = await bot.wait_bot(C1_CHAT, "周报")
        assert "新增 4 ↑4 · 解决 1 ↑1 · 未结 3 ↑3 · 超期 2 ↑2" in community.text
        assert "1. ★★★☆☆ 第一村民小组：新增 2 / 解决 1 / 未结 1 / 超期 1 / 小事不出村 100%" in community.text
        assert "2. ★★☆☆☆ 第二村民小组：新增 2 / 解决 0 / 未结 2 / 超期 1 / 小事不出村 —" in community.text
        station = await bot.wait_bot(STATION_CHAT, "全镇周报")
        lines = station.text.splitlines()
        ranked = [line.split("：")[0] for line in lines if line[:2] in ("1.", "2.", "3.", "4.")]
        # Ranked by stars; units with no matters are not rated and come last.
        assert ranked == ["1. ★★★☆☆ 蒋母塘村 · 第一村民小组", "2. ★★☆☆☆ 蒋母塘村 · 第二村民小组",
                          "3. — 好派新城社区 · 3幢", "4. — 好派新城社区 · 商铺街"]
        # 通报: the matter still open at the station, and the unit that let it go up unclaimed.
        assert "#2 蒋母塘村 · 第一村民小组 · 其他 · 在派出所" in station.text
        assert "蒋母塘村 · 第一村民小组：1 件无人认领" in station.text
        bot.clock.advance(2 * H)
        await bot.settle()
        assert bot.count_bot(U1_CHAT, "周报") == 1 and bot.count_bot(STATION_CHAT, "全镇周报") == 1

        # /summary on demand: the last seven days, in any bound chat.
        bot.say(U1_CHAT, RESIDENT, "/summary")
        await bot.wait_bot(U1_CHAT, "近七天")


async def test_a_summary_missed_while_down_is_sent_once_when_back(make_bot: Any, bot_database: str) -> None:
    database = bot_database
    monday_9 = datetime(2026, 11, 30, 9, 0, tzinfo=TZ).timestamp()
    async with make_bot(database=database) as bot:
        await bot.settle()
        clock = bot.clock
    clock.set(monday_9 + 5 * H)  # down over Monday morning, back at 14:00
    async with make_bot(clock=clock, database=database) as bot:
        await bot.wait_bot(STATION_CHAT, "全镇周报")
        await bot.settle()
    clock.advance(1 * H)
    async with make_bot(clock=clock, database=database) as bot:  # restarted again
        await bot.settle()
        assert bot.count_bot(STATION_CHAT, "全镇周报") == 1
        assert bot.count_bot(U1_CHAT, "周报") == 1


async def test_a_summary_stale_by_more_than_a_day_is_skipped(make_bot: Any, bot_database: str) -> None:
    database = bot_database
    monday_9 = datetime(2026, 11, 30, 9, 0, tzinfo=TZ).timestamp()
    async with make_bot(database=database) as bot:
        clock = bot.clock
    clock.set(monday_9 + 26 * H)
    async with make_bot(clock=clock, database=database) as bot:
        await bot.settle()
        assert bot.count_bot(STATION_CHAT, "周报") == 0


async def test_a_fresh_install_does_not_open_with_last_weeks_summary(make_bot: Any) -> None:
    from bot.clock import ManualClock

    monday_10 = datetime(2026, 11, 30, 10, 0, tzinfo=TZ).timestamp()
    async with make_bot(clock=ManualClock(monday_10)) as bot:
        await bot.settle()
        assert bot.count_bot(STATION_CHAT, "周报") == 0
        bot.say(STATION_CHAT, STAFF, "/summary")  # on demand still works
        await bot.wait_bot(STATION_CHAT, "全镇近七天")


async def _report(bot: Running, chat: int, text: str) -> None:
    before = len(bot.api.bot_messages(chat))
    bot.say(chat, RESIDENT, f"/report {text}")
    await bot.api.wait_for(lambda: len(bot.api.bot_messages(chat)) > before)
    await bot.settle()


async def _do(bot: Running, chat: int, user: int, command: str, expect: str) -> None:
    """Give a command and wait for ``expect`` in a new answer ("👍": the bot's reaction on it)."""
    before = bot.count_bot(chat, expect)
    sent = bot.say(chat, user, command)
    if expect == "👍":
        await bot.done(chat, sent)
    else:
        await bot.api.wait_for(lambda: bot.count_bot(chat, expect) > before)
    await bot.settle()
