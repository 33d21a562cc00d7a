"""Figures a station can rely on (issue 12): every rating kept and counted when given,
moves up counted as the README defines them, periods computed from the timeline as it
stood at their end, and the edge cases of display. Each test is the smallest case of one
point, end to end where the point is about what the bot sends."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from bot.clock import ManualClock
from bot.store import Matter
from bot.text.i18n import Texts
from escalation.policy import State
from escalation.reports import bulletin, ledger, service
from escalation.summary import Figures, half_up
from tests.conftest import (
    C1_CHAT,
    HEAD1,
    POLICE,
    RESIDENT,
    STAFF,
    STATION_CHAT,
    TZ,
    U1_CHAT,
    Running,
    town,
)

pytestmark = pytest.mark.both_engines  # on SQLite and on PostgreSQL (issue 17)

H = 3600.0
DAY = 24 * H
MONDAY_9 = datetime(2026, 11, 30, 9, 0, tzinfo=TZ).timestamp()  # the first weekly bulletin after START


def long_rating(**overrides: Any) -> dict[str, Any]:
    """The test town, with a month to rate and deadlines that never pass during a test."""
    raw = town(**overrides)
    raw["satisfaction"] = {"ask_for": "30d"}
    raw["deadlines"]["unit"] = {"claim": "60d", "resolve": "60d"}
    raw["deadlines"]["community"] = {"claim": "60d", "resolve": "60d"}
    raw["deadlines"]["station"] = {"claim": "60d", "resolve": "60d", "repeat": "60d"}
    return raw


async def matter(bot: Running, matter_id: int) -> Matter:
    async with bot.svc.store.read() as tx:
        found = await tx.matter(matter_id)
    assert found is not None
    return found


async def report(bot: Running, text: str, chat: int = U1_CHAT, who: int = RESIDENT) -> None:
    before = len(bot.api.bot_messages(chat))
    bot.say(chat, who, f"/report {text}")
    await bot.api.wait_for(lambda: len(bot.api.bot_messages(chat)) > before)
    await bot.settle()


async def do(bot: Running, chat: int, user: int, command: str, expect: str) -> None:
    """Give a command and wait for ``expect`` in a new answer ("👍": the bot's reaction on it)."""
    before = bot.count_bot(chat, expect)
    sent = bot.say(chat, user, command)
    if expect == "👍":
        await bot.done(chat, sent)
    else:
        await bot.api.wait_for(lambda: bot.count_bot(chat, expect) > before)
    await bot.settle()


async def asked(bot: Running, matter_id: int) -> int:
    """The request to rate the matter now waiting for an answer (answered ones are edited)."""
    def waiting() -> object:
        return next((m for m in bot.api.bot_messages(U1_CHAT)
                     if f"事项 #{matter_id} 已由" in (m.text or "") and "请评价处理结果" in (m.text or "")), None)

    ask = await bot.api.wait_for(waiting)
    return int(ask.message_id)  # type: ignore[attr-defined]


async def rate(bot: Running, matter_id: int, rating: str, ask: int | None = None) -> str:
    """The reporter taps ``rating`` under a request to rate the matter (the waiting one
    unless ``ask`` says which); returns what the button answered."""
    ask = ask or await asked(bot, matter_id)
    before = len(bot.api.callback_answers)
    bot.api.press_button(U1_CHAT, bot.user(RESIDENT), ask, f"v1:rate:{matter_id}:{rating}")
    await bot.api.wait_for(lambda: len(bot.api.callback_answers) > before)
    await bot.settle()
    return str(bot.api.callback_answers[-1].get("text") or "")


async def summary(bot: Running, chat: int, user: int) -> str:
    bot.clock.advance(60)  # what was done "now" falls inside the seven days
    before = bot.count_bot(chat, "近七天")
    bot.say(chat, user, "/summary")
    await bot.api.wait_for(lambda: bot.count_bot(chat, "近七天") > before)
    return [m.text for m in bot.api.bot_messages(chat) if "近七天" in (m.text or "")][-1]


# --- ratings ------------------------------------------------------------------------------
async def test_a_resolution_after_an_unsatisfied_reopen_can_be_rated(make_bot: Any) -> None:
    async with make_bot(long_rating()) as bot:
        await report(bot, "楼上漏水")
        await do(bot, U1_CHAT, HEAD1, "/resolve 1 已修好", "👍")
        assert "不满意" in await rate(bot, 1, "unsatisfied")  # reopens
        bot.clock.advance(H)
        await do(bot, U1_CHAT, HEAD1, "/resolve 1 换了水管", "👍")
        second = await asked(bot, 1)
        assert "感谢您的评价：满意" in await rate(bot, 1, "satisfied", second)
        assert (await matter(bot, 1)).rating == "satisfied"  # the latest is the matter's rating
        # Each resolution is rated once: the same request again is refused (its buttons are gone
        # once answered, so a press on it is a stale one: tests/test_review.py).
        assert "按钮已失效" in await rate(bot, 1, "basic", second)
        assert (await matter(bot, 1)).rating == "satisfied"
        text = await summary(bot, U1_CHAT, RESIDENT)
        assert "群众满意度 50%（评价 2 件：满意 1 · 基本满意 0 · 不满意 1）" in text


async def test_reopening_by_hand_keeps_the_rating(make_bot: Any) -> None:
    async with make_bot(long_rating()) as bot:
        await report(bot, "路灯坏了")
        await do(bot, U1_CHAT, HEAD1, "/resolve 1 已报修", "👍")
        await rate(bot, 1, "satisfied")
        bot.clock.advance(H)
        await do(bot, U1_CHAT, HEAD1, "/reopen 1 又坏了", "#1")
        assert (await matter(bot, 1)).state == State.OPEN
        assert (await matter(bot, 1)).rating == "satisfied"
        text = await summary(bot, U1_CHAT, RESIDENT)
        assert "群众满意度 100%（评价 1 件：满意 1 · 基本满意 0 · 不满意 0）" in text


async def test_last_periods_satisfaction_counts_ratings_given_then(make_bot: Any) -> None:
    async with make_bot(long_rating()) as bot:
        await report(bot, "垃圾清运")
        await do(bot, U1_CHAT, HEAD1, "/resolve 1 已清运", "👍")
        bot.clock.advance(8 * DAY)  # rated in the week before the summary's, long after its resolve
        await rate(bot, 1, "satisfied")
        bot.clock.advance(7 * DAY)
        await report(bot, "井盖松动")
        await do(bot, U1_CHAT, HEAD1, "/resolve 2 已固定", "👍")
        await rate(bot, 2, "satisfied")
        bot.clock.advance(DAY)
        text = await summary(bot, U1_CHAT, RESIDENT)
        assert "群众满意度 100% →（评价 1 件" in text  # compared with the 100% shown the week before


# --- moves up, as the README defines them -------------------------------------------------
async def test_a_station_takeover_reaches_the_station(make_bot: Any) -> None:
    async with make_bot(long_rating()) as bot:
        await report(bot, "有人持刀威胁")
        await do(bot, STATION_CHAT, STAFF, "/takeover 1", "已接手事项 #1")
        bot.clock.advance(H)
        text = await summary(bot, STATION_CHAT, STAFF)
        assert "未结 1 ↑1 · 超期 0" in text  # a takeover is a move up, not a missed deadline
        assert "上报派出所 1 ↑1" in text
        assert "#1 蒋母塘村 · 第一村民小组 · 其他 · 在派出所 1小时" in text
        assert "1. ★★★☆☆ 蒋母塘村 · 第一村民小组" in text  # 大事不出镇: at most three stars


async def test_a_community_takeover_reaches_the_community(make_bot: Any) -> None:
    async with make_bot(long_rating()) as bot:
        await report(bot, "婆媳矛盾")
        await do(bot, C1_CHAT, POLICE, "/takeover 1", "已接手事项 #1")
        bot.clock.advance(H)
        text = await summary(bot, C1_CHAT, POLICE)
        assert "未结 1 ↑1 · 超期 0" in text and "上报社区 1 ↑1" in text


async def test_asking_for_help_is_a_move_up_not_overdue_nor_unclaimed(make_bot: Any) -> None:
    async with make_bot(long_rating()) as bot:
        await report(bot, "两户因宅基地争执")
        bot.clock.advance(600)
        await do(bot, U1_CHAT, HEAD1, "/escalate 1 涉及宅基地，需社区会商", "事项 #1 已提请")
        text = await summary(bot, STATION_CHAT, STAFF)
        assert "未结 1 ↑1 · 超期 0" in text
        assert "上报社区 1 ↑1" in text
        assert "没有单元让事项无人认领就被上报" in text
        assert "1. ★★★★★ 蒋母塘村 · 第一村民小组" in text


async def test_a_resolve_without_a_claim_is_not_a_claim(make_bot: Any) -> None:
    async with make_bot(long_rating()) as bot:
        await report(bot, "楼道灯不亮")
        bot.clock.advance(1800)
        await do(bot, U1_CHAT, HEAD1, "/resolve 1 换了灯泡", "👍")
        await report(bot, "下水道堵了")
        bot.clock.advance(600)
        await do(bot, U1_CHAT, HEAD1, "/claim 2", "👍")
        text = await summary(bot, U1_CHAT, RESIDENT)
        assert "认领用时中位数 10分钟" in text  # matter 2 only
        bot.say(C1_CHAT, POLICE, "/export week")
        await bot.api.wait_for(lambda: any(m.document_name for m in bot.api.bot_messages(C1_CHAT)))
        doc = next(m for m in bot.api.bot_messages(C1_CHAT) if m.document_name)
        rows = list(load_workbook(io.BytesIO(doc.document_bytes or b""))["全部事项"].iter_rows(values_only=True))
        claimed_at = rows[0].index("认领时间")
        assert rows[1][0] == 1 and rows[1][claimed_at] is None
        assert rows[2][0] == 2 and rows[2][claimed_at] is not None


async def test_the_station_lists_what_is_there_at_the_end_longest_since_it_last_arrived(make_bot: Any) -> None:
    async with make_bot(long_rating()) as bot:
        for text in ("纠纷一", "纠纷二", "纠纷三"):
            await report(bot, text)
        await do(bot, STATION_CHAT, STAFF, "/takeover 1", "已接手事项 #1")
        bot.clock.advance(H)
        await do(bot, STATION_CHAT, STAFF, "/takeover 2", "已接手事项 #2")
        await do(bot, STATION_CHAT, STAFF, "/takeover 3", "已接手事项 #3")
        bot.clock.advance(H / 2)
        await do(bot, STATION_CHAT, STAFF, "/return 1 请社区先处理", "事项 #1 已退回")
        await do(bot, STATION_CHAT, STAFF, "/return 3 请社区处理", "事项 #3 已退回")
        bot.clock.advance(H)
        await do(bot, STATION_CHAT, STAFF, "/takeover 1", "已接手事项 #1")
        bot.clock.advance(H)
        text = await summary(bot, STATION_CHAT, STAFF)
        assert "已上报派出所仍未解决的事项（2 件" in text
        second, first = text.index("#2 蒋母塘村"), text.index("#1 蒋母塘村")
        assert second < first  # #2 has been there 2½ hours; #1 came back an hour ago
        assert "#1 蒋母塘村 · 第一村民小组 · 其他 · 在派出所 1小时" in text
        assert "#3 蒋母塘村" not in text  # returned down: not at the station


# --- history does not change ----------------------------------------------------------------
async def weekly(bot: Running, monday_9: float, chat: int = U1_CHAT) -> str:
    """The weekly bulletin that goes out at ``monday_9``."""
    before = bot.count_bot(chat, "周报")
    bot.clock.set(monday_9 + 60)
    await bot.api.wait_for(lambda: bot.count_bot(chat, "周报") > before)
    return [m.text for m in bot.api.bot_messages(chat) if "周报" in (m.text or "")][-1]


async def test_a_reopen_does_not_rewrite_the_week_it_was_resolved_in(make_bot: Any) -> None:
    async with make_bot(long_rating()) as bot:
        await report(bot, "噪音扰民")
        bot.clock.advance(H)
        await do(bot, U1_CHAT, HEAD1, "/resolve 1 已劝导", "👍")
        first = await weekly(bot, MONDAY_9)
        assert "新增 1 ↑1 · 解决 1 ↑1 · 未结 0 · 超期 0" in first
        bot.clock.advance(DAY)
        await do(bot, U1_CHAT, HEAD1, "/reopen 1 又开始了", "事项 #1 已重新打开")
        second = await weekly(bot, MONDAY_9 + 7 * DAY)
        # The week before resolved one and left none open, as it said; a reopen does not undo that.
        assert "新增 0 ↓1 · 解决 0 ↓1 · 未结 1 ↑1 · 超期 0" in second
        # That week's ledger, exported now, agrees with its bulletin; the last column says where it stands now.
        bot.say(C1_CHAT, POLICE, "/export 2026-11-23 2026-11-29")
        await bot.api.wait_for(lambda: any(m.document_name for m in bot.api.bot_messages(C1_CHAT)))
        doc = next(m for m in bot.api.bot_messages(C1_CHAT) if m.document_name)
        book = load_workbook(io.BytesIO(doc.document_bytes or b""))
        rows = list(book["全部事项"].iter_rows(values_only=True))
        header = list(rows[0])
        assert header[-1] == "当前状态"
        assert rows[1][header.index("状态")] == "已解决" and rows[1][header.index("解决时间")] is not None
        assert rows[1][header.index("处理结果")] == "已劝导"
        assert rows[1][-1] == "待认领"
        summary_rows = list(book["汇总"].iter_rows(values_only=True))
        assert summary_rows[4][:6] == ("蒋母塘村", "第一村民小组", "★★★★★", 1, 1, 0)  # below the title and period


async def test_the_next_week_is_compared_with_what_was_published(make_bot: Any) -> None:
    async with make_bot(long_rating()) as bot:
        await report(bot, "有人在楼道吵架")  # open, 其他, when the week's bulletin goes out
        first = await weekly(bot, MONDAY_9)
        assert "分类：其他 1 ↑1" in first
        card = await bot.wait_bot(U1_CHAT, "事项 #1")
        bot.api.press_button(U1_CHAT, bot.user(HEAD1), card.message_id, "v1:cat:1:neighbour")  # later
        await bot.api.wait_for(lambda: (bot.api.callback_answers or [{}])[-1] != {})
        await bot.settle()
        await report(bot, "车辆乱停")
        second = await weekly(bot, MONDAY_9 + 7 * DAY)
        # The week before showed 其他 1: the arrow compares with that, not with a recount.
        assert "分类：其他 1 →" in second


# --- edge cases and display -------------------------------------------------------------------
async def test_a_unit_whose_matters_were_all_referred_shows_its_counts_and_why_no_stars(make_bot: Any) -> None:
    async with make_bot(long_rating()) as bot:
        await report(bot, "拖欠工资三个月")
        await do(bot, U1_CHAT, HEAD1, "/refer 1 已转交劳动监察大队", "#1")
        community = await summary(bot, C1_CHAT, POLICE)
        why = "（本期事项均已撤回、转交或无法解决，不评星）"
        assert f"— 第一村民小组：新增 1 / 解决 0 / 未结 0 / 超期 0{why}" in community
        assert "第二村民小组：本期无事项" in community
        unit = await summary(bot, U1_CHAT, RESIDENT)
        assert f"本期评星：—{why}" in unit
        # The ledger's 处理结果 of a 转交 is the reason given.
        bot.say(C1_CHAT, POLICE, "/export week")
        await bot.api.wait_for(lambda: any(m.document_name for m in bot.api.bot_messages(C1_CHAT)))
        doc = next(m for m in bot.api.bot_messages(C1_CHAT) if m.document_name)
        rows = list(load_workbook(io.BytesIO(doc.document_bytes or b""))["全部事项"].iter_rows(values_only=True))
        assert rows[1][rows[0].index("处理结果")] == "已转交劳动监察大队"


async def test_an_unknown_category_key_is_shown_as_it_is(make_bot: Any) -> None:
    async with make_bot(long_rating()) as bot:
        await report(bot, "狗在小区里咬人")
        async with bot.svc.store.transaction() as tx:  # its category was since removed from config.yaml
            await tx.update_matter(1, category="pets", category_set=1)
        text = await summary(bot, U1_CHAT, RESIDENT)
        assert "分类：pets 1 ↑1" in text


def test_one_rounding_rule_half_up_and_arrows_from_the_values_shown() -> None:
    t = Texts("zh", TZ)
    assert bulletin.rate_with_change(0.125, None, t) == "13%"  # 12.5% → 13%, not 12%
    assert bulletin.rate_with_change(0.125, 0.115, t) == "13% ↑1个百分点"  # 13% shown against 12% shown
    assert bulletin.rate_with_change(0.565, 0.5, t) == "57% ↑7个百分点"
    assert half_up(2.25, 1) == 2.3  # a community's average stars
    assert ledger.summary_row("c", "u", "", Figures(resolved=8, resolved_in_unit=1))[9] == 0.13  # the ledger too


async def test_weeks_are_calendar_weeks_in_the_configured_zone(make_bot: Any) -> None:
    berlin = ZoneInfo("Europe/Berlin")  # summer time ends on Sunday 25 October 2026
    raw = long_rating(timezone="Europe/Berlin")
    start = datetime(2026, 10, 19, 9, 30, tzinfo=berlin).timestamp()  # Monday, half an hour into the week
    async with make_bot(raw, clock=ManualClock(start)) as bot:
        await report(bot, "邻居装修噪音")
        text = await weekly(bot, datetime(2026, 10, 26, 9, 0, tzinfo=berlin).timestamp())
        assert "（10-19 09:00 至 10-26 09:00）" in text
        assert "新增 1 ↑1" in text
    period = bulletin.weekly_period(datetime(2026, 10, 26, 9, 0, tzinfo=berlin).timestamp(), tz=berlin)
    assert period.end - period.start == 7 * DAY + H  # the week with the extra hour


async def test_the_migration_takes_a_resolve_back_from_the_claim_time(tmp_path: Any) -> None:
    """A database from before: a matter resolved without a claim had its resolve time as
    its first claim. The migration re-reads the first claim from the timeline."""
    import sqlite3

    from bot.store import MIGRATIONS, Store

    mine = next(i for i, m in enumerate(MIGRATIONS) if "published_figures" in m)
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path)
    for script in MIGRATIONS[:mine]:
        conn.executescript(script)
    conn.execute(f"PRAGMA user_version = {mine}")
    for matter_id, claimed in ((1, None), (2, 150.0)):
        conn.execute(
            "INSERT INTO matters (id, unit_id, chat_id, reporter_id, reporter_name, text, state, tier, top_tier, "
            "tier_since, rules, created_at, first_claimed_at, resolved_at, closed_at) "
            "VALUES (?, 'u1', -201, 901, 'r', 't', 'resolved', 3, 3, 100, '{}', 100, ?, 200, 200)",
            (matter_id, claimed or 200.0),
        )
        if claimed is not None:
            conn.execute("INSERT INTO events (matter_id, at, kind, tier) VALUES (?, ?, 'claimed', 3)",
                         (matter_id, claimed))
        conn.execute("INSERT INTO events (matter_id, at, kind, tier) VALUES (?, 200, 'resolved', 3)", (matter_id,))
    conn.commit()
    conn.close()
    store = await Store.open(path)
    try:
        async with store.read() as tx:
            first, second = await tx.matter(1), await tx.matter(2)
    finally:
        await store.close()
    assert first is not None and first.first_claimed_at is None  # resolved without a claim
    assert second is not None and second.first_claimed_at == 150.0


# --- speed (issue 12) ---------------------------------------------------------------------------
async def test_a_week_after_a_published_one_reads_only_its_own_matters(make_bot: Any) -> None:
    """Where last week's bulletin was published, the week before is compared as published and
    not counted again (half the matters to read); a matter reopened that week, before this
    one began, still counts as the timeline says."""
    async with make_bot(long_rating()) as bot:
        await report(bot, "噪音扰民")
        bot.clock.advance(H)
        await do(bot, U1_CHAT, HEAD1, "/resolve 1 已劝导", "👍")
        await weekly(bot, MONDAY_9)
        bot.clock.advance(DAY)
        await do(bot, U1_CHAT, HEAD1, "/reopen 1 又开始了", "事项 #1 已重新打开")
        await weekly(bot, MONDAY_9 + 7 * DAY)  # published: one open
        bot.clock.advance(DAY)
        await do(bot, U1_CHAT, HEAD1, "/resolve 1 已调解", "👍")
        resolved_at = bot.clock.now()
        created_at = (await matter(bot, 1)).created_at
        period = bulletin.weekly_period(MONDAY_9 + 14 * DAY, tz=TZ)
        figures = await service.period_figures(bot.svc.store, bot.svc.tree, period, history=False)
        assert figures.published is not None and figures.previous == {}  # not counted again
        unit = figures.current["u1"]
        assert (unit.new, unit.resolved, unit.open, unit.resolved_in_unit) == (0, 1, 0, 1)
        assert unit.resolve_times == [resolved_at - created_at]
        previous = figures.total(bot.svc.tree, "u1", previous=True)
        assert (previous.resolved, previous.open) == (0, 1)  # as published
