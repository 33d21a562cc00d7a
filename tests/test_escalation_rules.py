"""End to end: categories and urgency, reminders, quiet hours and grouping, the duty
roster, honest closes, suspension, idle claims, snapshots, manual moves and DMs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from bot.dev.fakeapi import buttons
from escalation.policy import State
from tests.conftest import (
    C1_CHAT,
    HEAD1,
    POLICE,
    RESIDENT,
    RESIDENT2,
    STAFF,
    STATION_CHAT,
    TZ,
    U1_CHAT,
    U2_CHAT,
    Running,
    town,
)

pytestmark = pytest.mark.both_engines  # on SQLite and on PostgreSQL (issue 17)

H = 3600.0
STAFF2 = 12

CATEGORIES = [
    {"key": "neighbour", "zh": "邻里纠纷", "en": "Neighbours", "deadlines": {"unit": {"claim": "3h", "resolve": "2d"}}},
    {"key": "safety", "zh": "安全隐患", "en": "Safety hazard", "urgent": True,
     "deadlines": {"unit": {"claim": "10m", "resolve": "2h"}}},
    {"key": "other", "zh": "其他", "en": "Other"},
]


async def report(bot: Running, chat: int = U1_CHAT, text: str = "楼道堆放杂物", user: int = RESIDENT) -> Any:
    sent = bot.say(chat, user, f"/report {text}")
    return await bot.api.wait_for(
        lambda: next((m for m in bot.api.bot_messages(chat) if m.reply_to == sent["message_id"] and "📋" in m.text),
                     None)
    )


async def matter(bot: Running, number: int) -> Any:
    async with bot.svc.store.read() as tx:
        return await tx.matter(number)


async def test_the_reporter_picks_a_category_and_its_deadlines_apply(make_bot: Any) -> None:
    async with make_bot(town(categories=CATEGORIES)) as bot:
        card = await report(bot)
        bot.api.press_button(U1_CHAT, bot.user(RESIDENT), card.message_id, "v1:cats:1")  # 🏷 分类
        await bot.api.wait_for(lambda: ("邻里纠纷", "v1:cat:1:neighbour") in buttons(card))
        bot.api.press_button(U1_CHAT, bot.user(RESIDENT2), card.message_id, "v1:cat:1:neighbour")
        await bot.api.wait_for(lambda: len(bot.api.callback_answers) == 2)
        assert bot.api.callback_answers[-1]["show_alert"]  # a neighbour may not categorise it
        bot.api.press_button(U1_CHAT, bot.user(RESIDENT), card.message_id, "v1:cat:1:neighbour")
        await bot.api.wait_for(lambda: "类别：邻里纠纷" in card.text)
        assert "认领期限：11-24 13:00" in card.text  # the category's 3 h, from the report
        assert not any(data.startswith("v1:cat") for _, data in buttons(card))
        bot.clock.advance(1.5 * H)
        await bot.settle()
        assert bot.api.bot_messages(C1_CHAT) == []  # the default 1 h no longer applies
        bot.clock.advance(1.5 * H)
        await bot.wait_bot(C1_CHAT, "事项 #1 上报至社区")


async def test_an_urgent_category_alerts_both_tiers_at_once_and_tells_the_reporter_to_call_110(make_bot: Any) -> None:
    async with make_bot(town(categories=CATEGORIES, quiet_hours="00:00-23:59")) as bot:
        card = await report(bot, text="配电箱冒烟")
        bot.api.press_button(U1_CHAT, bot.user(HEAD1), card.message_id, "v1:cat:1:safety")
        community = await bot.wait_bot(C1_CHAT, "紧急事项 #1")
        station = await bot.wait_bot(STATION_CHAT, "紧急事项 #1")
        assert "安全隐患" in community.text and "配电箱冒烟" in station.text
        assert buttons(community)[0] == ("接手", "v1:claim:1")
        await bot.wait_bot(U1_CHAT, "请立即拨打 110")
        await bot.api.wait_for(lambda: "认领期限：11-24 10:10" in card.text and "🚨" in card.text)
        # Urgent matters ignore quiet hours (here: all day) when they climb, too.
        bot.clock.advance(10 * 60)
        await bot.wait_bot(C1_CHAT, "事项 #1 上报至社区")


async def test_a_reminder_comes_once_before_the_deadline(make_bot: Any) -> None:
    async with make_bot(town(reminders={"before": "20m"})) as bot:
        await report(bot)
        bot.clock.advance(30 * 60)
        await bot.settle()
        assert bot.count_bot(U1_CHAT, "即将到期") == 0
        bot.clock.advance(10 * 60)  # 40 min: 20 min before the 1 h claim deadline
        reminder = await bot.wait_bot(U1_CHAT, "事项 #1 即将到期")
        assert "11-24 11:00" in reminder.text and f"tg://user?id={HEAD1}" in reminder.source
        bot.clock.advance(10 * 60)
        await bot.settle()
        assert bot.count_bot(U1_CHAT, "即将到期") == 1
        bot.clock.advance(10 * 60)
        await bot.wait_bot(C1_CHAT, "事项 #1 上报至社区")
        assert bot.count_bot(U1_CHAT, "即将到期") == 1


async def test_quiet_hours_hold_pings_and_release_one_message_per_chat(make_bot: Any) -> None:
    from bot.clock import ManualClock

    evening = datetime(2026, 11, 24, 21, 30, tzinfo=TZ).timestamp()
    async with make_bot(town(quiet_hours="22:00-07:00"), clock=ManualClock(evening)) as bot:
        await report(bot, U1_CHAT, "第一件")
        await report(bot, U1_CHAT, "第二件")
        await report(bot, U2_CHAT, "第三件")
        bot.clock.advance(1 * H)  # 22:30: all three are overdue at their units
        await bot.api.wait_for(lambda: "已上报社区" in bot.api.bot_messages(U2_CHAT)[0].text)
        await bot.settle()
        assert (await matter(bot, 1)).tier == 2  # deadlines keep running in wall-clock time…
        assert bot.api.bot_messages(C1_CHAT) == []  # …but nobody is woken
        bot.clock.set(datetime(2026, 11, 25, 7, 1, tzinfo=TZ).timestamp())
        morning = await bot.wait_bot(C1_CHAT, "3 件事项需要处理")
        for number in (1, 2, 3):
            assert f"事项 #{number} 上报至社区" in morning.text
        assert ("接手 #2", "v1:claim:2") in buttons(morning)
        await bot.settle()
        assert len(bot.api.bot_messages(C1_CHAT)) == 1
        # They went on to the station at 00:30, also held: one message there too.
        assert len(bot.api.bot_messages(STATION_CHAT)) == 1


async def test_matters_due_in_one_sweep_share_one_message(make_bot: Any) -> None:
    async with make_bot() as bot:
        await report(bot, U1_CHAT, "甲")
        await report(bot, U2_CHAT, "乙")
        bot.clock.advance(1 * H)
        together = await bot.wait_bot(C1_CHAT, "2 件事项需要处理")
        assert "事项 #1 上报至社区" in together.text and "事项 #2 上报至社区" in together.text
        await bot.settle()
        assert len(bot.api.bot_messages(C1_CHAT)) == 1


def duty_town() -> dict[str, Any]:
    raw = town(duty=[
        {"user": STAFF, "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "from": "08:00", "to": "20:00"},
        {"user": STAFF2, "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "from": "20:00", "to": "08:00"},
    ])
    raw["station"]["staff"].append({"id": STAFF2, "name": "刘警官"})
    return raw


async def test_station_pings_name_the_officer_on_duty_and_duty_can_be_taken(make_bot: Any) -> None:
    async with make_bot(duty_town()) as bot:
        bot.say(STATION_CHAT, STAFF, "/duty")
        roster = await bot.wait_bot(STATION_CHAT, "当前值班")
        assert "当前值班：陈所长" in roster.text and "下一班：刘警官（11-24 20:00 起）" in roster.text
        await report(bot)
        bot.clock.advance(1 * H)  # the unit's hour
        await bot.wait_bot(C1_CHAT, "上报至社区")
        bot.clock.advance(2 * H)  # the community's two
        up = await bot.wait_bot(STATION_CHAT, "上报至派出所")
        assert "值班：陈所长" in up.text and f"tg://user?id={STAFF}" in up.source
        bot.api.press_button(STATION_CHAT, bot.user(STAFF2, "刘警官"), roster.message_id, "v1:duty")
        await bot.api.wait_for(lambda: any("刘警官 已接班" in (a.get("text") or "") for a in bot.api.callback_answers))
        bot.api.press_button(STATION_CHAT, bot.user(RESIDENT), roster.message_id, "v1:duty")
        await bot.api.wait_for(lambda: any(a.get("show_alert") for a in bot.api.callback_answers))
        bot.clock.advance(3 * H)  # the station's own claim window passes: a re-ping
        again = await bot.wait_bot(STATION_CHAT, "仍未处理")
        assert "值班：刘警官" in again.text


async def test_unresolvable_and_referred_close_the_matter_but_never_count_as_resolved(make_bot: Any) -> None:
    async with make_bot() as bot:
        card1 = await report(bot, text="邻居占道")
        await report(bot, text="拖欠工资")
        bot.say(U1_CHAT, HEAD1, "/close 1")
        await bot.wait_bot(U1_CHAT, "用法：/close")
        bot.say(U1_CHAT, HEAD1, "/close 1 双方拒绝调解")
        await bot.wait_bot(U1_CHAT, "认定本级无法解决：双方拒绝调解")
        await bot.api.wait_for(lambda: "无法解决" in card1.text and not buttons(card1))
        bot.say(U1_CHAT, HEAD1, "/refer 2 已引导至劳动监察大队")
        await bot.wait_bot(U1_CHAT, "已由 用户31 转交：已引导至劳动监察大队")
        assert (await matter(bot, 1)).state == State.UNRESOLVABLE
        assert (await matter(bot, 2)).state == State.REFERRED
        bot.clock.advance(5 * H)
        await bot.settle()
        assert bot.api.bot_messages(C1_CHAT) == []  # closed: nothing escalates
        bot.say(U1_CHAT, HEAD1, "/summary")
        figures = await bot.wait_bot(U1_CHAT, "近七天")
        assert "新增 2 ↑2 · 解决 0 · 未结 0" in figures.text  # closed, but neither resolved nor open


async def test_suspension_stops_the_clocks_until_the_date(make_bot: Any) -> None:
    async with make_bot() as bot:
        card = await report(bot)
        bot.clock.advance(20 * 60)
        bot.say(U1_CHAT, HEAD1, "/suspend 1 明天 等待")
        await bot.wait_bot(U1_CHAT, "用法：/suspend")
        bot.say(U1_CHAT, HEAD1, "/suspend 1 11-27 等待法院开庭")
        await bot.wait_bot(U1_CHAT, "事项 #1 已挂起，2026-11-27 恢复计时")
        await bot.api.wait_for(lambda: "已挂起" in card.text)
        bot.clock.advance(48 * H)
        await bot.settle()
        assert bot.api.bot_messages(C1_CHAT) == []
        bot.clock.set(datetime(2026, 11, 27, 8, 0, tzinfo=TZ).timestamp())
        await bot.wait_bot(U1_CHAT, "挂起期满")
        await bot.api.wait_for(lambda: "认领期限：11-27 08:40" in card.text)  # 40 min of the hour were left
        bot.clock.advance(40 * 60)
        await bot.wait_bot(C1_CHAT, "事项 #1 上报至社区")


async def test_an_idle_claim_is_nudged_then_released(make_bot: Any) -> None:
    async with make_bot(town(idle={"remind_after": "4h", "release_after": "2h"})) as bot:
        card = await report(bot)
        await bot.done(U1_CHAT, bot.say(U1_CHAT, HEAD1, "/claim 1"))
        bot.clock.advance(4 * H)
        nudge = await bot.wait_bot(U1_CHAT, "认领后无进展")
        assert f"tg://user?id={HEAD1}" in nudge.source
        bot.clock.advance(2 * H)
        await bot.wait_bot(U1_CHAT, "认领已释放")
        await bot.api.wait_for(lambda: "待认领" in card.text)
        assert (await matter(bot, 1)).state == State.OPEN


async def test_a_matter_keeps_the_rules_it_started_with(make_bot: Any, bot_database: str) -> None:
    database = bot_database
    async with make_bot(database=database) as bot:
        await report(bot, text="旧规则下的事项")
        clock = bot.clock
    slower = town()
    slower["deadlines"]["unit"] = {"claim": "5h", "resolve": "2d"}
    async with make_bot(slower, clock=clock, database=database) as bot:
        await report(bot, text="新规则下的事项")
        bot.say(U1_CHAT, HEAD1, "/show 1")
        first = await bot.wait_bot(U1_CHAT, "旧规则下的事项\n")
        assert "单元 认领1小时/解决1天" in (await bot.wait_bot(U1_CHAT, "适用期限")).text
        bot.say(U1_CHAT, HEAD1, "/show 2")
        await bot.api.wait_for(lambda: bot.count_bot(U1_CHAT, "单元 认领5小时/解决2天") == 1)
        assert first is not None
        bot.clock.advance(1 * H)
        up = await bot.wait_bot(C1_CHAT, "上报至社区")
        assert "事项 #1" in up.text and "事项 #2" not in up.text


async def test_escalate_return_takeover_and_reopen_with_every_move_in_the_timeline(make_bot: Any) -> None:
    async with make_bot() as bot:
        card = await report(bot, text="多户漏水")
        bot.say(U1_CHAT, HEAD1, "/escalate 1 涉及多户，需社区会商")
        up = await bot.wait_bot(C1_CHAT, "事项 #1 上报至社区")
        assert "说明：涉及多户，需社区会商" in up.text
        bot.say(U1_CHAT, HEAD1, "/return 1 我想退回")  # a unit head cannot hand down
        await bot.wait_bot(U1_CHAT, "只有本单元的负责人和上级领导")
        bot.say(C1_CHAT, POLICE, "/return 1 请先上门了解情况")
        back = await bot.wait_bot(U1_CHAT, "事项 #1 退回单元处理")
        assert "说明：请先上门了解情况" in back.text
        assert (await matter(bot, 1)).tier == 3
        bot.say(C1_CHAT, POLICE, "/takeover 1")
        await bot.wait_bot(C1_CHAT, "已接手事项 #1")
        taken = await matter(bot, 1)
        assert (taken.tier, taken.state, taken.claimed_by) == (2, State.CLAIMED, POLICE)
        bot.say(C1_CHAT, POLICE, "/resolve 1 已协调维修")
        await bot.api.wait_for(lambda: not buttons(card))
        bot.say(U1_CHAT, RESIDENT2, "/reopen 1 我觉得没修好")  # not the reporter
        await bot.wait_bot(U1_CHAT, "只有本单元的负责人和上级领导")
        bot.say(U1_CHAT, RESIDENT, "/reopen 1 又漏了")  # the community closed it: the community reopens it
        await bot.wait_bot(U1_CHAT, "事项 #1 由社区办结")
        bot.say(C1_CHAT, POLICE, "/reopen 1 又漏了")
        await bot.wait_bot(C1_CHAT, "事项 #1 已重新打开")
        reopened = await matter(bot, 1)
        assert (reopened.state, reopened.tier, reopened.resolved_at) == (State.OPEN, 2, None)
        bot.say(U1_CHAT, HEAD1, "/show 1")
        timeline = (await bot.wait_bot(U1_CHAT, "时间线")).text
        for line in ("上报至社区 · 用户31：涉及多户", "退回单元 · 用户21：请先上门", "解决 · 用户21：已协调维修"):
            assert line in timeline, line
        # A takeover and a reason the community wrote are internal to it and above (bot/visibility.py).
        assert "社区接手 · 用户21" not in timeline and "又漏了" not in timeline
        bot.say(C1_CHAT, POLICE, "/show 1")
        community = (await bot.wait_bot(C1_CHAT, "时间线")).text
        assert "社区接手 · 用户21" in community and "重新打开 · 用户21：又漏了" in community


async def test_leaders_who_asked_get_escalations_by_dm_too(make_bot: Any) -> None:
    raw = town()
    raw["station"]["communities"][0]["police"] = [{"id": POLICE, "name": "王警官", "dm": True}]
    raw["station"]["communities"][0]["secretaries"] = [{"id": 22, "name": "李书记", "dm": True}]
    async with make_bot(raw) as bot:
        bot.api.add_chat(POLICE, None, "private")
        bot.say(POLICE, POLICE, "/start")  # 王警官 opened a private chat; 李书记 never did
        await bot.wait_bot(POLICE, "三级联动治理机器人")
        await report(bot)
        bot.clock.advance(1 * H)
        await bot.wait_bot(C1_CHAT, "事项 #1 上报至社区")
        dm = await bot.wait_bot(POLICE, "事项 #1 上报至社区")
        assert buttons(dm)[0] == ("接手", "v1:claim:1")
        await bot.settle()
        assert 22 not in bot.api._chats or bot.api.bot_messages(22) == []
        # A leader may act from the DM: the same permission check, the group card updated.
        bot.api.press_button(POLICE, bot.user(POLICE, "王警官"), dm.message_id, "v1:claim:1")
        await bot.wait_bot(U1_CHAT, "认领人：王警官")  # the unit's card
        assert (await matter(bot, 1)).claimed_by == POLICE


async def test_duty_can_be_handed_to_a_staff_member_by_username(make_bot: Any) -> None:
    async with make_bot(duty_town()) as bot:
        liu = bot.api.user(STAFF2, "刘警官", username="liu_jingguan")
        bot.api.send_text(STATION_CHAT, liu, "收到")  # the bot hears from 刘警官 once
        bot.say(STATION_CHAT, STAFF, "/duty @nobody_here")
        await bot.wait_bot(STATION_CHAT, "没有找到这位值班人员")
        bot.say(STATION_CHAT, STAFF, "/duty @liu_jingguan")
        roster = await bot.wait_bot(STATION_CHAT, "当前值班：刘警官")
        assert f"tg://user?id={STAFF2}" in roster.source


async def test_many_matters_due_at_once_are_told_in_digests_within_telegrams_length(make_bot: Any) -> None:
    """A sweep batch takes 200 due matters: one message listing them all was longer than
    Telegram's 4,096 characters, refused ("message is too long"), and nobody was told."""
    from bot.text.render import TELEGRAM_TEXT

    count = 45
    async with make_bot(town(limits={"reports_per_hour": 100})) as bot:
        for i in range(count):
            words = "楼道里堆放的杂物堵住了消防通道" * 3
            bot.say((U1_CHAT, U2_CHAT)[i % 2], RESIDENT + 100 + i, f"/report 第{i}件：{words}")
        await bot.api.wait_for(lambda: sum(m.text.startswith("📋") for chat in (U1_CHAT, U2_CHAT)
                                           for m in bot.api.bot_messages(chat)) == count, 30)
        bot.clock.advance(1 * H)
        told = lambda: {n for m in bot.api.bot_messages(C1_CHAT) for n in range(1, count + 1)  # noqa: E731
                        if f"事项 #{n} 上报至社区" in m.text}
        await bot.api.wait_for(lambda: len(told()) == count, 30)
        await bot.settle()
        digests = bot.api.bot_messages(C1_CHAT)
        assert len(digests) == 3 and all(len(m.text) <= TELEGRAM_TEXT for m in digests)  # 20 matters each
        async with bot.svc.store.read() as tx:
            assert await tx.outbox_due(bot.clock.now() + 1e9, limit=1) == []
