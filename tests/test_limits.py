"""End to end: abuse limits (issue 10). Reports per person per hour (held over it, /held
turns one into a matter), urgent alerts per person per day (past it: one line in one
message per chat per sweep), private reports from someone Telegram does not show as a
member of the unit's group (非本群成员, limited; 未核实 when it cannot be checked). Leaders
have no limits; anonymous senders are counted by their sender_chat."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bot.dev.fakeapi import ApiError, buttons
from bot.limits import ANONYMOUS_ADMIN, HOUR
from bot.store import LAST_SWEEP, QueuedReport, Store
from escalation import sweep
from tests.conftest import (
    C1_CHAT,
    HEAD1,
    POLICE,
    RESIDENT,
    RESIDENT2,
    START,
    STATION_CHAT,
    U1_CHAT,
    U2_CHAT,
    Running,
    parse_town,
    town,
)
from tests.postgres import rows

pytestmark = pytest.mark.both_engines  # on SQLite and on PostgreSQL (issue 17)

URGENT = [
    {"key": "fraud", "zh": "诈骗", "en": "Fraud", "urgent": True},
    {"key": "other", "zh": "其他", "en": "Other"},
]


async def report(bot: Running, text: str, user: int = RESIDENT, chat: int = U1_CHAT) -> dict[str, Any]:
    """A report, and the bot's answer to it (its card, or the held answer)."""
    sent = bot.say(chat, user, f"/report {text}")
    await bot.api.wait_for(lambda: any(m.reply_to == sent["message_id"] for m in bot.api.bot_messages(chat)))
    return sent


async def matters(bot: Running) -> list[tuple[Any, ...]]:
    return await rows(bot.config.database, "SELECT id, reporter_id, text FROM matters ORDER BY id")


def open_private(bot: Running, user: int) -> None:
    bot.api.add_chat(user, None, "private")


async def private_report(bot: Running, user: int, text: str, unit: str = "u1") -> None:
    open_private(bot, user)
    asked = bot.count_bot(user, "私下反映。内容只有")
    bot.say(user, user, f"/start p_{unit}")
    await bot.api.wait_for(lambda: bot.count_bot(user, "私下反映。内容只有") > asked)
    answers = len(bot.api.bot_messages(user))
    bot.say(user, user, text)
    await bot.api.wait_for(lambda: len(bot.api.bot_messages(user)) > answers)


async def test_past_the_hourly_limit_a_report_is_held_and_a_head_makes_it_a_matter(make_bot: Any) -> None:
    async with make_bot(town(limits={"reports_per_hour": 3})) as bot:
        for i in range(3):
            await report(bot, f"第{i + 1}件")
        fourth = await report(bot, "第四件：楼道又堆满了")
        answer = next(m for m in bot.api.bot_messages(U1_CHAT) if m.reply_to == fourth["message_id"])
        assert "一小时内反映的事项已达 3 件上限" in answer.text and "11-24 11:00 后可以再反映" in answer.text
        assert "📋" not in answer.text
        assert [m[2] for m in await matters(bot)] == ["第1件", "第2件", "第3件"]  # held: not a matter
        bot.clock.advance(60)  # the summary's period ends now, and excludes it
        bot.say(U1_CHAT, RESIDENT, "/summary")  # …and in no figure
        summary = await bot.wait_bot(U1_CHAT, "新增")
        assert "新增 3" in summary.text

        bot.say(U1_CHAT, RESIDENT, "/held")  # residents do not see what is held
        await bot.wait_bot(U1_CHAT, "只有负责人和上级领导可以查看")
        bot.say(U1_CHAT, HEAD1, "/held")
        listing = await bot.wait_bot(U1_CHAT, "暂存的反映 1 条")
        assert "第四件：楼道又堆满了" in listing.text
        [(label, data)] = buttons(listing)
        assert label == "转为事项 H1"
        bot.api.press_button(U1_CHAT, bot.user(RESIDENT), listing.message_id, data)  # not theirs to decide
        await bot.api.wait_for(lambda: any("只有负责人" in (a["text"] or "") for a in bot.api.callback_answers))
        bot.api.press_button(U1_CHAT, bot.user(HEAD1, "蒋建国"), listing.message_id, data)
        card = await bot.api.wait_for(lambda: next(
            (m for m in bot.api.bot_messages(U1_CHAT) if m.reply_to == fourth["message_id"] and "📋" in m.text), None))
        assert "事项 #4" in card.text and f"tg://user?id={RESIDENT}" in card.source  # the original reporter
        assert (await matters(bot))[-1] == (4, RESIDENT, "第四件：楼道又堆满了")
        bot.api.press_button(U1_CHAT, bot.user(HEAD1, "蒋建国"), listing.message_id, data)  # twice: one matter
        await bot.api.wait_for(lambda: any("已经转为事项 #4" in (a["text"] or "") for a in bot.api.callback_answers))
        assert len(await matters(bot)) == 4
        # The matter behaves like any report: it climbs when nobody claims it.
        bot.clock.advance(HOUR)
        await bot.wait_bot(C1_CHAT, "事项 #4 上报至社区")
        # An hour after the first report, the resident may report again.
        await report(bot, "一小时后")
        assert (await matters(bot))[-1][2] == "一小时后"
        bot.say(U1_CHAT, HEAD1, "/held")
        await bot.wait_bot(U1_CHAT, "没有暂存的反映")


async def test_leaders_have_no_limit(make_bot: Any) -> None:
    async with make_bot(town(limits={"reports_per_hour": 2})) as bot:
        for i in range(4):
            await report(bot, f"负责人登记第{i + 1}件", user=HEAD1)
        for i in range(3):
            await report(bot, f"民警登记第{i + 1}件", user=POLICE)
        assert len(await matters(bot)) == 7


async def test_the_count_is_the_databases_a_restart_or_another_process_does_not_reset_it(
    make_bot: Any, tmp_path: Path
) -> None:
    raw = town(limits={"reports_per_hour": 4})
    async with make_bot(raw) as bot:
        await report(bot, "第1件")
        await report(bot, "第2件")
        database = bot.config.database
    # Another process logs two more for the same person meanwhile.
    other = await Store.open(database)
    try:
        rows = [dict(_row(text), limit_key=RESIDENT) for text in ("别处第3件", "别处第4件")]
        async with other.transaction() as tx:
            await tx.insert_reports([QueuedReport(None, row, None) for row in rows])
    finally:
        await other.close()
    async with make_bot(raw) as bot:
        held = await report(bot, "第5件")
        answer = next(m for m in bot.api.bot_messages(U1_CHAT) if m.reply_to == held["message_id"])
        assert "已达 4 件上限" in answer.text
        assert [m[2] for m in await matters(bot)] == ["第1件", "第2件", "别处第3件", "别处第4件"]


async def test_another_process_writing_while_the_bot_runs_is_counted_near_the_limit(make_bot: Any) -> None:
    async with make_bot(town(limits={"reports_per_hour": 3})) as bot:
        other = await Store.open(bot.config.database)
        try:
            async with other.transaction() as tx:
                await tx.insert_reports([QueuedReport(None, dict(_row("别处甲"), limit_key=RESIDENT), None)])
        finally:
            await other.close()
        await report(bot, "本处一")
        await report(bot, "本处二")  # the last one this process alone would allow: the database is asked
        held = await report(bot, "本处三")
        answer = next(m for m in bot.api.bot_messages(U1_CHAT) if m.reply_to == held["message_id"])
        assert "已达 3 件上限" in answer.text
        assert len(await matters(bot)) == 3


async def test_anonymous_senders_are_counted_by_their_sender_chat(make_bot: Any) -> None:
    async with make_bot(town(limits={"reports_per_hour": 2})) as bot:
        def anonymous(chat: int, text: str) -> dict[str, Any]:
            api = bot.api
            user = api.user(ANONYMOUS_ADMIN, "Group")
            msg = api._store(api._chats[chat], user, text=text, entities=api._command_entity(text))
            msg.raw["sender_chat"] = {k: v for k, v in api._chats[chat].items()}
            api.push_update({"message": msg.raw})
            return msg.raw

        for i in range(2):
            sent = anonymous(U1_CHAT, f"/report 匿名管理员第{i + 1}件")
            await bot.api.wait_for(
                lambda s=sent: any(m.reply_to == s["message_id"] for m in bot.api.bot_messages(U1_CHAT)))
        third = anonymous(U1_CHAT, "/report 匿名管理员第3件")
        answer = await bot.api.wait_for(lambda: next(
            (m for m in bot.api.bot_messages(U1_CHAT) if m.reply_to == third["message_id"]), None))
        assert "已达 2 件上限" in answer.text
        # Another group's anonymous admins share the user id, not the count.
        other = anonymous(U2_CHAT, "/report 另一个群的匿名管理员")
        card = await bot.api.wait_for(lambda: next(
            (m for m in bot.api.bot_messages(U2_CHAT) if m.reply_to == other["message_id"]), None))
        assert "📋" in card.text
        # …nor a resident's.
        await report(bot, "居民自己的")
        assert [m[2] for m in await matters(bot)][-1] == "居民自己的"
        keys = await rows(bot.config.database, "SELECT limit_key FROM matters ORDER BY id")
        assert keys == [(U1_CHAT,), (U1_CHAT,), (U2_CHAT,), (RESIDENT,)]


async def wait_for_first_sweep(bot: Any) -> None:
    async def swept() -> bool:
        async with bot.svc.store.read() as tx:
            return await tx.meta_value(LAST_SWEEP) is not None

    for _ in range(500):
        if await swept():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the sweep did not run at start")


async def test_past_the_daily_urgent_limit_alerts_come_as_one_message_per_chat_per_sweep(make_bot: Any) -> None:
    # sweep_interval 1h: the sweep runs once at start, then when the test says.
    async with make_bot(town(categories=URGENT, sweep_interval="1h",
                             limits={"urgent_per_day": 2, "reports_per_hour": 20})) as bot:
        await wait_for_first_sweep(bot)  # else, late on a busy machine, it takes #3 alone
        cards = []
        for i in range(6):
            sent = await report(bot, f"冒充客服诈骗第{i + 1}件")
            cards.append(next(m for m in bot.api.bot_messages(U1_CHAT) if m.reply_to == sent["message_id"]))
        for number in (1, 2, 3, 4, 5):
            answered = len(bot.api.callback_answers)
            bot.api.press_button(U1_CHAT, bot.user(RESIDENT), cards[number - 1].message_id, f"v1:cat:{number}:fraud")
            await bot.api.wait_for(lambda a=answered: len(bot.api.callback_answers) > a)
        await bot.wait_bot(C1_CHAT, "紧急事项 #2")
        await bot.settle()
        for chat in (C1_CHAT, STATION_CHAT):  # two alerts each; #3-#5 wait for the sweep
            assert bot.count_bot(chat, "紧急事项 #") == 2
        assert bot.count_bot(U1_CHAT, "请立即拨打 110") == 2
        await sweep.sweep(bot.svc.store, bot.svc.notifier, bot.clock.now())
        for chat in (C1_CHAT, STATION_CHAT):
            digest = await bot.wait_bot(chat, "超出每日紧急提醒上限")
            assert all(f"#{n} 诈骗 · 第一村民小组" in digest.text for n in (3, 4, 5)), digest.text
            assert "tg://user" not in (digest.source or "")  # mentions nobody
            assert ("接手 #3", "v1:claim:3") in buttons(digest)
        await bot.settle()
        assert len(bot.api.bot_messages(C1_CHAT)) == 3  # thirty tags would be one message, not thirty
        await sweep.sweep(bot.svc.store, bot.svc.notifier, bot.clock.now())  # nothing twice
        await bot.settle()
        assert len(bot.api.bot_messages(C1_CHAT)) == 3
        # A head tagging is no resident's abuse: a full alert at once.
        bot.api.press_button(U1_CHAT, bot.user(HEAD1), cards[5].message_id, "v1:cat:6:fraud")
        await bot.wait_bot(C1_CHAT, "紧急事项 #6")
        async with bot.svc.store.read() as tx:
            assert [(await tx.matter(n)).urgent for n in range(1, 7)] == [True] * 6  # type: ignore[union-attr]
        # A day later the resident's alerts are full again.
        bot.clock.advance(25 * HOUR)
        sent = await report(bot, "又一件诈骗")
        card = next(m for m in bot.api.bot_messages(U1_CHAT) if m.reply_to == sent["message_id"])
        bot.api.press_button(U1_CHAT, bot.user(RESIDENT), card.message_id, "v1:cat:7:fraud")
        await bot.wait_bot(C1_CHAT, "紧急事项 #7")


async def test_private_reports_from_non_members_are_marked_and_limited(make_bot: Any) -> None:
    async with make_bot(town(limits={"private_nonmember_per_day": 1})) as bot:
        open_private(bot, HEAD1)
        bot.say(HEAD1, HEAD1, "/start")  # the head gets private cards by DM
        await bot.wait_bot(HEAD1, "三级联动治理机器人")
        bot.api.set_member(U1_CHAT, RESIDENT, "left")
        await private_report(bot, RESIDENT, "我不住这里，但看到有人被骗")
        await bot.wait_bot(RESIDENT, "私下反映的事项 #1")
        dm = await bot.wait_bot(HEAD1, "我不住这里")
        assert "非本群成员" in dm.text
        community = await bot.wait_bot(C1_CHAT, "私下反映的事项 #1")
        assert "非本群成员" in community.text
        await bot.settle()
        assert bot.count_bot(U1_CHAT, "非本群成员") == 0  # the unit group learns nothing
        await private_report(bot, RESIDENT, "第二件：还是别人的事")
        held = await bot.wait_bot(RESIDENT, "不在其群内的单元私下反映的事项已达 1 件上限")
        assert "11-25 10:00 后可以再反映" in held.text
        assert len(await matters(bot)) == 1
        # The community sees the held one in full; the unit group only that it exists.
        bot.say(U1_CHAT, HEAD1, "/held")
        in_unit = await bot.wait_bot(U1_CHAT, "暂存的反映 1 条")
        assert "还是别人的事" not in in_unit.text and "🔒 私下反映" in in_unit.text
        bot.say(C1_CHAT, POLICE, "/held")
        in_community = await bot.wait_bot(C1_CHAT, "暂存的反映 1 条")
        assert "还是别人的事" in in_community.text and "非本群成员" in in_community.text
        bot.api.press_button(C1_CHAT, bot.user(POLICE, "王警官"), in_community.message_id, "v1:hr:1")
        await bot.wait_bot(RESIDENT, "私下反映的事项 #2")  # the reporter's receipt
        async with bot.svc.store.read() as tx:
            second = await tx.matter(2)
        assert second is not None and second.private and second.reporter_id == RESIDENT
        assert second.membership == "nonmember"
        await bot.settle()
        assert "还是别人的事" not in "\n".join(m.text or "" for m in bot.api.messages(U1_CHAT))

        # "user not found" is not a member either; a member is not marked.
        bot.api.set_member(U2_CHAT, RESIDENT2, ApiError(400, "Bad Request: user not found"))
        await private_report(bot, RESIDENT2, "陌生人反映", unit="u2")
        await bot.wait_bot(C1_CHAT, "陌生人反映")
        await private_report(bot, 903, "本群居民反映")
        member = await bot.wait_bot(C1_CHAT, "本群居民反映")
        assert "非本群成员" not in member.text and "未核实" not in member.text
        async with bot.svc.store.read() as tx:
            assert [(await tx.matter(n)).membership for n in (3, 4)] == ["nonmember", "member"]  # type: ignore[union-attr]


async def test_membership_that_cannot_be_checked_is_unverified_never_non_member(make_bot: Any) -> None:
    async with make_bot(town(limits={"private_nonmember_per_day": 1})) as bot:
        bot.api.set_member(U1_CHAT, RESIDENT, ApiError(400, "Bad Request: member list is inaccessible"))
        for text in ("群成员不公开一", "群成员不公开二"):
            await private_report(bot, RESIDENT, text)
            shown = await bot.wait_bot(C1_CHAT, text)
            assert "未核实" in shown.text and "非本群成员" not in shown.text
        bot.api.set_member(U1_CHAT, RESIDENT, ApiError(403, "Forbidden: bot was kicked from the supergroup chat"))
        await private_report(bot, RESIDENT, "查询出错")
        shown = await bot.wait_bot(C1_CHAT, "查询出错")
        assert "未核实" in shown.text
        async with bot.svc.store.read() as tx:
            assert [(await tx.matter(n)).membership for n in (1, 2, 3)] == ["unverified"] * 3  # type: ignore[union-attr]
        # Leaders are not asked at all.
        calls = len(bot.api.calls_to("getChatMember"))
        await private_report(bot, HEAD1, "负责人私下记一件")
        await bot.wait_bot(C1_CHAT, "负责人私下记一件")
        assert len(bot.api.calls_to("getChatMember")) == calls


def _row(text: str) -> dict[str, Any]:
    """A report as another process logs it, at the tests' start time."""
    at = START
    return {
        "unit_id": "u1", "chat_id": U1_CHAT, "report_message_id": None, "reporter_id": RESIDENT,
        "reporter_name": "居民", "text": text, "state": "open", "tier": 3, "top_tier": 3,
        "tier_since": at, "rules": parse_town().rules_for("other").to_json(), "created_at": at,
    }


def test_limits_have_defaults_and_bad_values_name_their_key() -> None:
    import pytest

    from bot.config import ConfigError, load_config, parse_config

    limits = parse_town().limits
    assert (limits.reports_per_hour, limits.urgent_per_day, limits.private_nonmember_per_day) == (10, 3, 2)
    sample = load_config(Path(__file__).resolve().parent.parent / "config.yaml").limits
    assert (sample.reports_per_hour, sample.urgent_per_day, sample.private_nonmember_per_day) == (10, 3, 2)
    with pytest.raises(ConfigError, match=r"limits\.reports_per_hour: .*1 or more"):
        parse_config(town(limits={"reports_per_hour": 0}))
    with pytest.raises(ConfigError, match=r"limits\.urgent_per_day"):
        parse_config(town(limits={"urgent_per_day": "many"}))
    with pytest.raises(ConfigError, match=r"limits\.per_minute"):
        parse_config(town(limits={"per_minute": 3}))
