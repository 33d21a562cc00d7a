"""Visit logs (走访日志, issue 16), end to end through the fake Bot API with the moving
clock: the guided /visit entry in private, the one-line start, resuming after a restart,
dropping after 24 h, 转为事项, the community's post and its place, /visits and its spot
check, who is refused, and the 走访日志 sheet of /export."""

from __future__ import annotations

import io
from typing import Any

import pytest
from openpyxl import load_workbook

from bot.clock import ManualClock
from bot.roles import Act, Role, may, role
from bot.tree import Tree
from tests.conftest import (
    C1_CHAT,
    HEAD1,
    POLICE,
    RESIDENT,
    STAFF,
    START,
    STATION_CHAT,
    U1_CHAT,
    U2_CHAT,
    parse_town,
    town,
)

pytestmark = pytest.mark.both_engines  # on SQLite and on PostgreSQL (issue 17)

GRID = 41  # c1's grid worker (网格员)
H = 3600.0


def grid_town() -> dict[str, Any]:
    raw = town()
    raw["station"]["communities"][0]["grid_workers"] = [{"id": GRID, "name": "孙网格员"}]
    return raw


def _with_button(bot: Any, chat: int, label: str) -> tuple[Any, str] | None:
    for message in reversed(bot.api.bot_messages(chat)):
        for text, data in bot.api.buttons(message):
            if label in text:
                return message, data
    return None


async def press(bot: Any, chat: int, user: int, label: str) -> None:
    """Press the latest button whose label holds ``label`` (waiting for it to appear)."""
    message, data = await bot.api.wait_for(lambda: _with_button(bot, chat, label))
    bot.api.press_button(chat, bot.user(user), message.message_id, data)


async def latest(bot: Any, chat: int, contains: str, after: int = 0) -> Any:
    """The latest bot message of the chat (from index ``after``) holding ``contains``."""
    return await bot.api.wait_for(lambda: next(
        (m for m in reversed(bot.api.bot_messages(chat)[after:]) if contains in (m.text or "")), None))


async def log_visit(bot: Any, user: int, units: tuple[str, ...] = ("第一村民小组",), households: str = "5",
                    deed: str = "帮王大爷代缴水费", findings: str | None = None, photos: int = 0) -> None:
    """A whole entry by ``user`` (of one community), step by step, finished with 完成."""
    chat = user
    before = len(bot.api.bot_messages(chat))
    bot.say(chat, user, "/visit")
    await latest(bot, chat, "走访了哪些单元", before)
    for unit in units:
        await press(bot, chat, user, unit)
        await latest(bot, chat, unit, before)
    await press(bot, chat, user, "下一步")
    await latest(bot, chat, "走访了多少户", before)
    bot.say(chat, user, households)
    await latest(bot, chat, "办了什么实事", before)
    bot.say(chat, user, deed)
    await latest(bot, chat, "发现了什么问题", before)
    if findings is None:
        await press(bot, chat, user, "无")
    else:
        bot.say(chat, user, findings)
    await latest(bot, chat, "可以发送现场照片", before)
    for i in range(photos):
        bot.api.send_photo(chat, bot.user(user), file_id=f"visit{user}p{i}")
        await latest(bot, chat, f"已收到 {i + 1} 张", before)
    await press(bot, chat, user, "完成")
    await latest(bot, chat, "已记录", before)


async def visits_of(bot: Any) -> list[Any]:
    async with bot.svc.store.read() as tx:
        return await tx.visits_between(0, 1e12)


# --- the role model -------------------------------------------------------------------------
def test_a_grid_worker_logs_visits_and_leads_nothing() -> None:
    raw = grid_town()
    raw["station"]["communities"][0]["grid_workers"].append({"id": HEAD1, "name": "蒋建国"})  # a head, too
    tree = Tree(parse_town(station=raw["station"]))
    assert role(tree, GRID, "c1") == Role.GRID_WORKER and role(tree, GRID, "u1") == Role.GRID_WORKER
    assert not Role.GRID_WORKER.leads and Role.GRID_WORKER.tier is None
    assert may(tree, GRID, Act.VISIT, "c1") and not may(tree, GRID, Act.VISIT, "c2")
    assert not any(may(tree, GRID, act, node) for act in (Act.WORK, Act.EXPORT, Act.BROADCAST, Act.HELD)
                   for node in ("c1", "u1"))
    assert role(tree, HEAD1, "u1") == Role.HEAD and may(tree, HEAD1, Act.WORK, "u1")  # still heads their unit
    assert may(tree, HEAD1, Act.VISIT, "c1")
    assert may(tree, POLICE, Act.VISIT, "c1") and may(tree, STAFF, Act.VISIT, "c2")
    assert may(tree, STAFF, Act.VISIT, "st")
    assert not may(tree, POLICE, Act.VISIT, "st") and not may(tree, RESIDENT, Act.VISIT, "c1")
    assert not may(tree, HEAD1, Act.VISIT, "u1"), "a unit is no place for visits"
    assert tree.person_name(GRID) == "孙网格员"


def test_grid_workers_are_checked_like_every_list_of_people() -> None:
    from bot.config import ConfigError, parse_config

    raw = grid_town()
    raw["station"]["communities"][0]["grid_workers"] = ["x"]
    try:
        parse_config(raw)
    except ConfigError as exc:
        assert "station.communities[0].grid_workers[0]" in str(exc)
    else:
        raise AssertionError("a grid worker must be a user id")
    assert parse_town().stations[0].communities[0].grid_workers == []  # optional


# --- writing an entry ------------------------------------------------------------------------
async def test_a_guided_entry_is_posted_to_the_community_with_its_place(make_bot: Any) -> None:
    async with make_bot(grid_town()) as bot:
        bot.say(POLICE, POLICE, "/visit")
        await latest(bot, POLICE, "走访了哪些单元")  # one community: not asked
        await press(bot, POLICE, POLICE, "第一村民小组")
        await latest(bot, POLICE, "已选单元：第一村民小组")
        await press(bot, POLICE, POLICE, "第二村民小组")
        await latest(bot, POLICE, "已选单元：第一村民小组、第二村民小组")
        await press(bot, POLICE, POLICE, "下一步")
        await latest(bot, POLICE, "走访了多少户")
        bot.say(POLICE, POLICE, "很多")
        await latest(bot, POLICE, "请回复户数")
        bot.say(POLICE, POLICE, "6户")
        await latest(bot, POLICE, "办了什么实事")
        bot.say(POLICE, POLICE, "帮王大爷代缴水费 <b>")
        await latest(bot, POLICE, "发现了什么问题")
        bot.say(POLICE, POLICE, "李家与张家因宅基地边界争执")
        await latest(bot, POLICE, "可以发送现场照片（已收到 0 张）")
        bot.api.send_photo(POLICE, bot.user(POLICE), file_id="ph1")
        await latest(bot, POLICE, "已收到 1 张")
        bot.api.send_photo(POLICE, bot.user(POLICE), file_id="ph2")
        await latest(bot, POLICE, "已收到 2 张")
        bot.api.send_venue(POLICE, bot.user(POLICE), 29.3201, 120.1402, "蒋母塘村村委会", "苏溪镇蒋母塘村")
        await latest(bot, POLICE, "位置（已收到")
        assert bot.count_bot(C1_CHAT, "走访日志") == 0, "nothing is posted before 完成"
        await press(bot, POLICE, POLICE, "完成")
        post = await bot.wait_bot(C1_CHAT, "走访日志 #1")
        for part in ("王警官", "第一村民小组、第二村民小组", "6 户", "帮王大爷代缴水费 <b>", "宅基地", "照片：2 张",
                     "位置：见下条"):
            assert part in post.text, part
        assert "http" not in (post.source or ""), "no outside map link"
        place = await bot.api.wait_for(lambda: next(
            (m for m in bot.api.bot_messages(C1_CHAT) if "location" in m.raw), None))
        assert place.message_id == post.message_id + 1, "the place right after the post"
        assert place.raw["location"] == {"latitude": 29.3201, "longitude": 120.1402}
        assert "已记录" in (await latest(bot, POLICE, "走访日志 #1")).text
        [visit] = await visits_of(bot)
        assert (visit.user_id, visit.community_id, visit.units, visit.households) == (POLICE, "c1", ["u1", "u2"], 6)
        assert (visit.photos, visit.latitude, visit.longitude) == (2, 29.3201, 120.1402)
        assert visit.place == "蒋母塘村村委会 苏溪镇蒋母塘村" and visit.finished_at == bot.clock.now()
        async with bot.svc.store.read() as tx:
            assert await tx.visit_photos(visit.id) == ["ph1", "ph2"] and await tx.open_visit(POLICE) is None


async def test_the_one_line_start_fills_households_and_the_deed_and_photos_may_follow(make_bot: Any) -> None:
    async with make_bot(grid_town()) as bot:
        bot.say(GRID, GRID, "/visit 5户 帮王大爷代缴水费")
        question = await latest(bot, GRID, "走访了哪些单元")
        assert "已记下：走访 5 户" in question.text
        bot.api.send_photo(GRID, bot.user(GRID), file_id="early")  # before the units: kept all the same
        await latest(bot, GRID, "已收到照片（共 1 张）")
        await press(bot, GRID, GRID, "第二村民小组")
        await latest(bot, GRID, "已选单元：第二村民小组")
        await press(bot, GRID, GRID, "下一步")
        await latest(bot, GRID, "发现了什么问题")  # households and deed are not asked again
        await press(bot, GRID, GRID, "无")
        await latest(bot, GRID, "已收到 1 张")
        await press(bot, GRID, GRID, "完成")
        post = await bot.wait_bot(C1_CHAT, "走访日志 #1")
        assert "孙网格员" in post.text and "5 户" in post.text and "发现问题：无" in post.text
        assert "照片：1 张 · 位置：未提供" in post.text
        await bot.settle()
        assert not any("location" in m.raw for m in bot.api.bot_messages(C1_CHAT)), "no place, no location"
        [visit] = await visits_of(bot)
        assert (visit.households, visit.deed, visit.findings, visit.units) == (5, "帮王大爷代缴水费", None, ["u2"])


async def test_station_staff_choose_the_community(make_bot: Any) -> None:
    async with make_bot(grid_town()) as bot:
        bot.say(STAFF, STAFF, "/visit")
        await latest(bot, STAFF, "走访的是哪个村")
        await press(bot, STAFF, STAFF, "好派新城社区")
        question = await latest(bot, STAFF, "走访了哪些单元")
        assert "好派新城社区" in question.text
        assert [label for label, _ in bot.api.buttons(question)][:2] == ["3幢", "商铺街"]


async def test_an_unfinished_entry_is_resumed_after_a_restart(make_bot: Any) -> None:
    clock = ManualClock(START)
    async with make_bot(grid_town(), clock=clock) as bot:
        bot.say(POLICE, POLICE, "/visit")
        await press(bot, POLICE, POLICE, "第一村民小组")
        await latest(bot, POLICE, "已选单元：第一村民小组")
        await press(bot, POLICE, POLICE, "下一步")
        await latest(bot, POLICE, "走访了多少户")
        bot.say(POLICE, POLICE, "7")
        await latest(bot, POLICE, "办了什么实事")
        await bot.settle()
    clock.advance(3 * H)
    async with make_bot(grid_town(), clock=clock) as bot:
        before = len(bot.api.bot_messages(POLICE))
        bot.say(POLICE, POLICE, "/visit")
        resumed = await latest(bot, POLICE, "尚未完成", before)
        assert "11-24 10:00" in resumed.text and "办了什么实事" in resumed.text
        bot.say(POLICE, POLICE, "修好了村口路灯")  # a plain message carries on too
        await latest(bot, POLICE, "发现了什么问题", before)
        await press(bot, POLICE, POLICE, "无")
        await press(bot, POLICE, POLICE, "完成")
        post = await bot.wait_bot(C1_CHAT, "走访日志 #1")
        assert "7 户" in post.text and "修好了村口路灯" in post.text


async def test_an_entry_left_unfinished_is_dropped_after_24_hours_with_a_note(make_bot: Any) -> None:
    async with make_bot(grid_town()) as bot:
        bot.say(POLICE, POLICE, "/visit")
        await press(bot, POLICE, POLICE, "第一村民小组")
        await latest(bot, POLICE, "已选单元")
        bot.api.send_photo(POLICE, bot.user(POLICE), file_id="p1")
        await latest(bot, POLICE, "已收到照片")
        bot.clock.advance(23 * H)
        await bot.settle()
        async with bot.svc.store.read() as tx:
            assert await tx.open_visit(POLICE) is not None, "kept for 24 h after its last step"
        bot.clock.advance(H + 60)
        note = await latest(bot, POLICE, "24 小时未完成")
        assert "11-24 10:00" in note.text and "1 张照片" in note.text
        async with bot.svc.store.read() as tx:
            assert await tx.open_visit(POLICE) is None and await tx.visit_photos(1) == []
        bot.say(POLICE, POLICE, "刚才的走访")  # the next message is no step of anything
        await latest(bot, POLICE, "私下反映")
        assert bot.count_bot(C1_CHAT, "走访日志") == 0


async def test_a_private_report_asked_for_meanwhile_takes_the_next_message(make_bot: Any) -> None:
    """The bot's other questions in private keep working while an entry is open."""
    async with make_bot(grid_town()) as bot:
        bot.say(POLICE, POLICE, "/visit")
        await press(bot, POLICE, POLICE, "第一村民小组")
        await press(bot, POLICE, POLICE, "下一步")
        await latest(bot, POLICE, "走访了多少户")
        bot.say(POLICE, POLICE, "/report")
        await press(bot, POLICE, POLICE, "第二村民小组")
        await latest(bot, POLICE, "第二村民小组")
        bot.say(POLICE, POLICE, "村口井盖丢了")
        await bot.wait_bot(U2_CHAT, "私下反映")
        bot.say(POLICE, POLICE, "8")  # then the entry again
        await latest(bot, POLICE, "办了什么实事")
        async with bot.svc.store.read() as tx:
            visit = await tx.open_visit(POLICE)
        assert visit is not None and visit.households == 8


# --- 转为事项 ---------------------------------------------------------------------------------
async def test_a_finding_becomes_a_private_matter_of_the_unit_chosen(make_bot: Any) -> None:
    async with make_bot(grid_town()) as bot:
        await log_visit(bot, POLICE, units=("第一村民小组", "第二村民小组"), findings="张家老人独居，儿子打骂")
        answer = await latest(bot, POLICE, "已记录")
        assert "私下" in answer.text
        await press(bot, POLICE, POLICE, "转为事项")
        await latest(bot, POLICE, "转为哪个单元的事项")
        chosen, unit_button = await bot.api.wait_for(lambda: _with_button(bot, POLICE, "第二村民小组"))
        bot.api.press_button(POLICE, bot.user(POLICE), chosen.message_id, unit_button)
        await latest(bot, POLICE, "已转为 第二村民小组 的事项 #1（私下")
        card = await bot.wait_bot(U2_CHAT, "#1")
        assert "儿子打骂" not in card.text, "private: the unit group sees only that it exists"
        await latest(bot, POLICE, "私下反映的事项 #1")  # the reporter's receipt, as for any private report
        await bot.wait_bot(C1_CHAT, "儿子打骂")  # the community reads it in full
        async with bot.svc.store.read() as tx:
            matter = await tx.matter(1)
            assert await tx.visit_matters(1) == [1]
        assert matter is not None and matter.private and matter.unit_id == "u2" and matter.reporter_id == POLICE
        assert matter.text == "张家老人独居，儿子打骂" and matter.limit_key is None
        before = len(bot.api.bot_messages(POLICE))
        bot.api.press_button(POLICE, bot.user(POLICE), chosen.message_id, unit_button)  # again: one matter only
        await latest(bot, POLICE, "已失效", before)
        async with bot.svc.store.read() as tx:
            assert await tx.visit_matters(1) == [1]


async def test_the_toggle_makes_the_matter_public(make_bot: Any) -> None:
    async with make_bot(grid_town()) as bot:
        await log_visit(bot, GRID, units=("第一村民小组",), findings="路灯坏了三盏")
        await press(bot, GRID, GRID, "点此改为公开")
        await latest(bot, GRID, "公开，在单元群发布事项卡片")
        await press(bot, GRID, GRID, "转为事项")  # one unit visited: no question which
        await latest(bot, GRID, "已转为 第一村民小组 的事项 #1（公开")
        card = await bot.wait_bot(U1_CHAT, "路灯坏了三盏")
        assert "孙网格员" in card.text
        async with bot.svc.store.read() as tx:
            matter = await tx.matter(1)
            assert await tx.visit_matters(1) == [1]
        assert matter is not None and not matter.private and matter.reporter_id == GRID
        bot.say(U1_CHAT, HEAD1, "/show 1")
        shown = await bot.wait_bot(U1_CHAT, "时间线")
        assert "走访中发现，见走访日志 · 孙网格员：#1" in shown.text


# --- /visits and the spot check ------------------------------------------------------------
async def test_visits_lists_the_week_by_officer_and_one_officers_month(make_bot: Any) -> None:
    async with make_bot(grid_town()) as bot:
        await log_visit(bot, POLICE, households="5", photos=2)
        bot.clock.advance(H)
        await log_visit(bot, POLICE, units=("第二村民小组",), households="6", findings="噪音扰民")
        await log_visit(bot, GRID, households="3")
        bot.say(C1_CHAT, POLICE, "/visits")
        listed = await bot.wait_bot(C1_CHAT, "蒋母塘村 走访日志")
        assert "本周" in listed.text and "3 次，14 户" in listed.text
        assert "王警官：走访 2 次，11 户，发现问题 1 条" in listed.text
        assert "孙网格员：走访 1 次，3 户" in listed.text
        assert listed.text.index("王警官") < listed.text.index("孙网格员")
        assert [label for label, _ in bot.api.buttons(listed)] == ["📷 #1"]
        bot.say(STATION_CHAT, STAFF, "/visits")
        await bot.wait_bot(STATION_CHAT, "苏溪派出所 走访日志")
        bot.clock.advance(6 * 24 * H)  # Monday 30 November: a new week, the same month
        bot.say(C1_CHAT, POLICE, "/visits")
        await bot.wait_bot(C1_CHAT, "本周（11-30 00:00 起）没有走访日志")
        bot.say(C1_CHAT, POLICE, "/visits 王警官 month")
        month = await bot.wait_bot(C1_CHAT, "· 王警官 · 本月")
        assert "2 次，11 户" in month.text and "孙网格员" not in month.text


async def test_the_spot_check_sends_an_entrys_photos_again(make_bot: Any) -> None:
    async with make_bot(grid_town()) as bot:
        await log_visit(bot, POLICE, photos=2)
        bot.say(STATION_CHAT, STAFF, "/visits")
        await bot.wait_bot(STATION_CHAT, "走访日志")
        await press(bot, STATION_CHAT, STAFF, "📷 #1")
        caption = await bot.wait_bot(STATION_CHAT, "抽查：走访日志 #1 · 王警官")
        assert "照片 1/2" in caption.text
        await bot.wait_bot(STATION_CHAT, "照片 2/2")
        sent = [c.params.get("photo") for c in bot.api.calls_to("sendPhoto") if c.params.get("chat_id") == STATION_CHAT]
        assert sent == [f"visit{POLICE}p0", f"visit{POLICE}p1"]
        bot.say(C1_CHAT, POLICE, "/visits")
        await bot.wait_bot(C1_CHAT, "走访日志")
        await press(bot, C1_CHAT, RESIDENT, "📷 #1")  # a resident in the group: refused
        await bot.wait_bot(C1_CHAT, "只有民警、书记、网格员")
        await bot.settle()
        assert bot.count_bot(C1_CHAT, "抽查") == 0


async def test_residents_and_heads_are_refused_politely(make_bot: Any) -> None:
    async with make_bot(grid_town()) as bot:
        for who in (RESIDENT, HEAD1):
            bot.say(who, who, "/visit 5户 帮忙")
            await latest(bot, who, "走访日志由社区民警、书记、网格员和派出所民警记录")
        bot.say(C1_CHAT, POLICE, "/visit")
        await bot.wait_bot(C1_CHAT, "请在与机器人的私聊中发送 /visit")
        bot.say(C1_CHAT, RESIDENT, "/visits")
        await bot.wait_bot(C1_CHAT, "只有民警、书记、网格员和派出所民警可以查看")
        bot.say(U1_CHAT, HEAD1, "/visits")
        await bot.wait_bot(U1_CHAT, "请在村（社区）群或派出所群")
        await bot.settle()
        assert await visits_of(bot) == []
        async with bot.svc.store.read() as tx:
            assert await tx.open_visit(RESIDENT) is None and await tx.open_visit(HEAD1) is None


# --- /export ----------------------------------------------------------------------------------
async def test_export_has_a_visit_log_sheet(make_bot: Any) -> None:
    async with make_bot(grid_town()) as bot:
        await log_visit(bot, POLICE, photos=2, findings="=cmd|' /C calc'!A0")
        bot.api.send_location(POLICE, bot.user(POLICE), 29.5, 120.25)  # too late: that one is finished
        before = len(bot.api.bot_messages(POLICE))
        bot.say(POLICE, POLICE, "/visit")
        await latest(bot, POLICE, "走访了哪些单元", before)
        await press(bot, POLICE, POLICE, "第二村民小组")
        await latest(bot, POLICE, "已选单元", before)
        await press(bot, POLICE, POLICE, "下一步")
        await latest(bot, POLICE, "走访了多少户", before)
        bot.api.send_location(POLICE, bot.user(POLICE), 29.5, 120.25)
        await latest(bot, POLICE, "已收到位置", before)
        bot.say(POLICE, POLICE, "4")
        bot.say(POLICE, POLICE, "调解邻里纠纷")
        await latest(bot, POLICE, "发现了什么问题", before)
        await press(bot, POLICE, POLICE, "无")
        await latest(bot, POLICE, "位置（已收到")
        await press(bot, POLICE, POLICE, "完成")
        await bot.wait_bot(C1_CHAT, "走访日志 #2")
        bot.clock.advance(60)
        bot.say(C1_CHAT, POLICE, "/export week")
        doc = await bot.api.wait_for(lambda: next((m for m in bot.api.bot_messages(C1_CHAT) if m.document_name), None))
        book = load_workbook(io.BytesIO(doc.document_bytes or b""))
        rows = list(book["走访日志"].iter_rows(values_only=True))
        assert rows[0][:8] == ("编号", "社区", "走访人", "走访单元", "户数", "所办实事", "发现问题", "照片数")
        assert [r[0] for r in rows[1:]] == [1, 2]
        first, second = rows[1], rows[2]
        assert first[1:8] == ("蒋母塘村", "王警官", "第一村民小组", 5, "帮王大爷代缴水费", "=cmd|' /C calc'!A0", 2)
        assert first[8] is None and first[9] is None
        assert second[8:11] == (29.5, 120.25, None) and second[7] == 0
        assert book["走访日志"]["G2"].data_type == "s", "a finding is text, never a formula"


async def test_an_entry_is_asked_in_the_language_its_chat_reads(make_bot: Any) -> None:
    async with make_bot(grid_town()) as bot:
        bot.say(POLICE, POLICE, "/lang en")
        await bot.api.wait_for(lambda: len(bot.api.bot_messages(POLICE)) == 1)
        bot.say(POLICE, POLICE, "/visit")
        question = await latest(bot, POLICE, "Which units did you visit?")
        assert [label for label, _ in bot.api.buttons(question)][-2:] == ["Next", "Discard"]


async def test_an_entry_answered_meanwhile_is_not_dropped(make_bot: Any) -> None:
    """The sweep reads the stale entries, then drops each in a transaction: one whose writer
    answered a step in between stays."""
    async with make_bot(grid_town()) as bot:
        async with bot.svc.store.transaction() as tx:
            visit_id = await tx.start_visit(POLICE, "王警官", POLICE, START, step="units", community_id="c1")
            await tx.update_visit(visit_id, START + 10 * H, units=["u1"])
            assert not await tx.drop_visit(visit_id, before=START + 10 * H), "its last step is not before"
            assert await tx.drop_visit(visit_id, before=START + 10 * H + 1)
            assert await tx.visit(visit_id) is None


async def test_a_visits_words_place_and_photos_go_with_the_personal_data(make_bot: Any) -> None:
    """retention.personal_data clears what a visit says of a household (the deed, the
    findings, the place and its photos) and keeps the counts the figures need."""
    from bot import retention
    from bot.store.schema import PURGED

    async with make_bot(grid_town()) as bot:
        await log_visit(bot, POLICE, findings="王家漏水", photos=2)
        [visit] = await visits_of(bot)
        assert visit.deed and visit.photos == 2
        bot.clock.advance(3600)
        await retention.purge(bot.svc.store, bot.clock.now(), bot.clock.now())
        [cleared] = await visits_of(bot)
        async with bot.svc.store.read() as tx:
            photos = await tx.visit_photos(cleared.id)
        assert cleared.deed == PURGED and cleared.findings == PURGED and photos == []
        assert cleared.latitude is None and cleared.place is None
        assert cleared.households == visit.households and cleared.photos == 2 and cleared.user_name == visit.user_name
