"""Review of the merged issue-10/11/12 work, end to end through the fake Bot API: places
where privacy (bot/visibility.py), authority (bot/authority.py) and limits (bot/limits.py)
did not hold together. Each test failed before its fix."""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

import pytest

from bot.dev.fakeapi import buttons
from bot.store import Tx
from escalation.policy import State
from tests.conftest import (
    C1_CHAT,
    HEAD1,
    HEAD2,
    POLICE,
    RESIDENT,
    RESIDENT2,
    STAFF,
    STATION_CHAT,
    U1_CHAT,
    U2_CHAT,
    Running,
    town,
)
from tests.test_authority import matter, report, to_station
from tests.test_privacy import SECRET, everything_sent_to, report_privately, start_dm


async def rate_unsatisfied(bot: Running, chat: int, number: int) -> Any:
    asking = await bot.wait_bot(chat, "请评价处理结果")
    bot.api.press_button(chat, bot.user(RESIDENT), asking.message_id, f"v1:rate:{number}:unsatisfied")
    return await bot.wait_bot(chat, "请回复本条消息说明原因")


async def test_unsatisfied_reopens_at_the_tier_that_closed_it_and_tells_it(make_bot: Any) -> None:
    async with make_bot() as bot:
        await report(bot, "邻里多次冲突")
        await to_station(bot)
        await bot.done(STATION_CHAT, bot.say(STATION_CHAT, STAFF, "/resolve 1 已调解"))
        why = await rate_unsatisfied(bot, U1_CHAT, 1)
        told = await bot.wait_bot(STATION_CHAT, "报告人对事项 #1 的处理结果不满意")
        bot.say(U1_CHAT, RESIDENT, "对方还在闹", reply_to_message_id=why.message_id)
        await bot.wait_bot(STATION_CHAT, "对方还在闹")  # the tier that decides hears why
        assert "在派出所重新打开" in told.text and "邻里多次冲突" in told.text
        await bot.wait_bot(U1_CHAT, "事项已由派出所重新打开跟进")
        reopened = await matter(bot, 1)
        assert (reopened.state, reopened.tier) == (State.OPEN, 1)
        # …so a unit head still cannot bury what the station decided.
        bot.say(U1_CHAT, HEAD1, "/close 1 无需处理")
        await bot.wait_bot(U1_CHAT, "事项 #1 现由派出所负责")
        assert (await matter(bot, 1)).state == State.OPEN


async def test_a_private_matter_the_community_resolved_reopens_there_and_tells_it_once(make_bot: Any) -> None:
    async with make_bot() as bot:
        await start_dm(bot, HEAD1)
        await report_privately(bot, 1)
        # The community decided what the unit held.
        await bot.done(C1_CHAT, bot.say(C1_CHAT, POLICE, "/resolve 1 已训诫"))
        await rate_unsatisfied(bot, RESIDENT, 1)
        told = await bot.wait_bot(C1_CHAT, "不满意")
        assert SECRET in told.text
        await bot.wait_bot(HEAD1, "不满意")
        assert (await matter(bot, 1)).tier == 2
        bot.say(U1_CHAT, HEAD1, "/close 1 算了")
        await bot.wait_bot(U1_CHAT, "事项 #1 现由社区负责")
        await bot.settle()
        assert bot.count_bot(C1_CHAT, "不满意") == 1  # one message, not the ping and the copy
        group = everything_sent_to(bot, U1_CHAT)
        assert "不满意" not in group and SECRET not in group and "已训诫" not in group


async def held_private_report(bot: Running) -> None:
    """RESIDENT, not a member of the unit's group, reports privately twice: the second is held."""
    from tests.test_limits import private_report

    bot.api.set_member(U1_CHAT, RESIDENT, "left")
    await private_report(bot, RESIDENT, "第一件：邻居被骗")
    await private_report(bot, RESIDENT, SECRET)
    await bot.wait_bot(RESIDENT, "不在其群内的单元私下反映的事项已达 1 件上限")


async def test_a_held_private_report_shows_nothing_of_itself_in_the_unit_group(make_bot: Any) -> None:
    async with make_bot(town(limits={"private_nonmember_per_day": 1})) as bot:
        await start_dm(bot, HEAD1)
        await held_private_report(bot)
        bot.say(U1_CHAT, HEAD1, "/held")
        listing = await bot.wait_bot(U1_CHAT, "暂存的反映 1 条")
        assert SECRET not in listing.text and "🔒 私下反映" in listing.text
        assert "非本群成员" not in listing.text and "用户901" not in listing.text  # the flag is the reporter's
        bot.say(C1_CHAT, POLICE, "/held")  # the community reads it in full, flag and all
        full = await bot.wait_bot(C1_CHAT, "暂存的反映 1 条")
        assert SECRET in full.text and "非本群成员" in full.text
        # Released from the unit group: a private matter, as if reported privately.
        [(_, data)] = buttons(listing)
        bot.api.press_button(U1_CHAT, bot.user(HEAD1, "蒋建国"), listing.message_id, data)
        await bot.api.wait_for(lambda: any("已转为事项 #2" in (a["text"] or "") for a in bot.api.callback_answers))
        await bot.wait_bot(RESIDENT, "私下反映的事项 #2")
        await bot.wait_bot(HEAD1, SECRET)
        community = await bot.wait_bot(C1_CHAT, "私下反映的事项 #2")
        assert SECRET in community.text
        second = await matter(bot, 2)
        assert second.private and second.chat_id == U1_CHAT and second.membership == "nonmember"
        await bot.wait_bot(U1_CHAT, "事项 #2")
        await bot.settle()
        group = everything_sent_to(bot, U1_CHAT) + "\n".join(str(a["text"]) for a in bot.api.callback_answers)
        assert SECRET not in group and "非本群成员" not in group and "用户901" not in group


async def test_forged_release_buttons_change_nothing(make_bot: Any) -> None:
    async with make_bot(town(limits={"private_nonmember_per_day": 1})) as bot:
        await held_private_report(bot)
        bot.say(U1_CHAT, HEAD1, "/held")
        listing = await bot.wait_bot(U1_CHAT, "暂存的反映 1 条")
        bot.say(U2_CHAT, HEAD2, "/held")
        other = await bot.wait_bot(U2_CHAT, "没有暂存的反映")
        presses = [
            (U2_CHAT, HEAD2, other.message_id, "v1:hr:1"),  # another unit's head, in their own group
            (U1_CHAT, HEAD2, listing.message_id, "v1:hr:1"),  # …or in this one
            (U1_CHAT, RESIDENT, listing.message_id, "v1:hr:1"),  # the reporter themself
            (U1_CHAT, HEAD1, listing.message_id, "v1:hr:²"),
            (U1_CHAT, HEAD1, listing.message_id, "v1:hr:99999999999999999999999"),
            (U1_CHAT, HEAD1, listing.message_id, "v1:hr:7"),
        ]
        for chat, user, message, data in presses:
            bot.api.press_button(chat, bot.user(user), message, data)
        await bot.api.wait_for(lambda: len(bot.api.callback_answers) == len(presses))
        await bot.settle()
        assert all(a.get("show_alert") for a in bot.api.callback_answers)
        async with bot.svc.store.read() as tx:
            assert await tx.matter(2) is None
            assert (await tx.held_report(1)).matter_id is None  # type: ignore[union-attr]
        assert bot.count_bot(U1_CHAT, "抱歉") == 0 and bot.count_bot(U2_CHAT, "抱歉") == 0


async def test_a_report_the_database_refuses_is_logged_without_its_text_or_reporter(
    make_bot: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO)  # (at DEBUG, the libraries print whole updates: bot/logs.py keeps them at INFO)
    async with make_bot() as bot:

        async def disk_full(self: Tx, reports: Any) -> Any:
            raise sqlite3.OperationalError("database or disk is full")

        monkeypatch.setattr(Tx, "insert_reports", disk_full)
        bot.api.send_text(U1_CHAT, bot.api.user(RESIDENT, "张秘密"), f"/report {SECRET}")
        await bot.wait_bot(U1_CHAT, "抱歉")
        await bot.settle()
    logged = "\n".join(r.getMessage() + (logging.Formatter().formatException(r.exc_info) if r.exc_info else "")
                       for r in caplog.records)
    assert "could not commit" in logged
    assert SECRET not in logged and "张秘密" not in logged


async def test_the_notices_authority_added_keep_a_private_matter_out_of_its_unit_group(make_bot: Any) -> None:
    async with make_bot() as bot:
        await start_dm(bot, HEAD1)
        await report_privately(bot, 1)
        bot.say(U1_CHAT, HEAD1, "/suspend 1 12-10 等待伤情鉴定")  # long: the community is told
        told = await bot.wait_bot(C1_CHAT, "事项 #1 已由单元挂起")
        assert "等待伤情鉴定" in told.text and SECRET in told.text
        bot.say(U1_CHAT, HEAD1, "/resume 1")
        await bot.wait_bot(U1_CHAT, "事项 #1 已恢复计时")
        bot.say(U1_CHAT, HEAD1, "/escalate 1 需要民警出面")
        await bot.wait_bot(C1_CHAT, "事项 #1 上报至社区")
        bot.say(RESIDENT, RESIDENT, "/cancel 1")  # the wish to withdraw goes to the community
        wish = await bot.wait_bot(C1_CHAT, "报告人希望撤回事项 #1")
        assert SECRET in wish.text
        bot.say(U1_CHAT, HEAD1, "/resolve 1 已训诫其丈夫")  # resolved from below: the community hears it
        below = await bot.wait_bot(C1_CHAT, "事项 #1 已由 用户31 解决")
        assert "已训诫其丈夫" in below.text
        await bot.wait_bot(RESIDENT, "已训诫其丈夫")
        await bot.settle()
        group = everything_sent_to(bot, U1_CHAT)
        for secret in (SECRET, "等待伤情鉴定", "需要民警出面", "已训诫其丈夫", "撤回", "用户901"):
            assert secret not in group, secret


async def test_anonymous_admins_and_channels_cannot_reopen_or_see_held_reports(make_bot: Any) -> None:
    async with make_bot(town(limits={"reports_per_hour": 1})) as bot:
        bot.api.anonymous_admin(U1_CHAT, "/report 小区门口路灯坏了")
        await bot.wait_bot(U1_CHAT, "路灯坏了")
        bot.api.anonymous_admin(U1_CHAT, "/report 第二件：路灯还是坏的")  # over the group's anonymous limit
        await bot.wait_bot(U1_CHAT, "已达 1 件上限")
        bot.say(U1_CHAT, HEAD1, "/resolve 1 已报修")
        await bot.wait_bot(U1_CHAT, "已由")
        bot.api.anonymous_admin(U1_CHAT, "/reopen 1 还是不亮")
        bot.api.channel_post(U1_CHAT, -1009, "苏溪发布", "/reopen 1 还是不亮")
        bot.api.anonymous_admin(U1_CHAT, "/held")
        await bot.api.wait_for(lambda: bot.count_bot(U1_CHAT, "请以个人身份发言后再操作") == 3)
        assert bot.count_bot(U1_CHAT, "暂存的反映") == 0 and bot.count_bot(U1_CHAT, "只有负责人") == 0
        assert (await matter(bot, 1)).state == State.RESOLVED
        async with bot.svc.store.read() as tx:
            held = await tx.held_report(1)
        assert held is not None and held.limit_key == U1_CHAT == held.reporter_id  # one identity for both
        bot.say(U1_CHAT, HEAD1, "/held")  # the head, as themself, sees it and may release it
        listing = await bot.wait_bot(U1_CHAT, "暂存的反映 1 条")
        assert "路灯还是坏的" in listing.text


SUPERGROUP = -1000000000201


async def test_a_private_matter_stays_private_when_its_unit_group_becomes_a_supergroup(make_bot: Any) -> None:
    async with make_bot() as bot:
        await report_privately(bot, 1)
        await bot.wait_bot(U1_CHAT, "事项 #1")
        bot.api.migrate_chat(U1_CHAT, SUPERGROUP, bot.user(HEAD1))
        await bot.api.wait_for(lambda: not bot.api.pending_updates())
        await bot.settle()
        await bot.done(C1_CHAT, bot.say(C1_CHAT, POLICE, "/resolve 1 已训诫张某"))
        card = await bot.wait_bot(SUPERGROUP, "事项 #1")  # its card follows the group…
        bot.say(SUPERGROUP, HEAD1, "/show 1")
        shown = await bot.wait_bot(SUPERGROUP, "#1")
        await bot.settle()
        assert (await matter(bot, 1)).private
        moved = everything_sent_to(bot, SUPERGROUP)
        for secret in (SECRET, "已训诫张某", "用户901", "用户21"):  # …and shows no more there than before
            assert secret not in moved, secret
        assert card.text and shown.text


async def test_a_matter_reopened_onto_a_lower_tier_tells_that_tier(make_bot: Any) -> None:
    async with make_bot() as bot:
        await report(bot)
        await bot.done(C1_CHAT, bot.say(C1_CHAT, POLICE, "/close 1 不属于本辖区"))
        bot.say(STATION_CHAT, STAFF, "/reopen 1 重新核实")  # the station reopens what the community closed
        await bot.wait_bot(STATION_CHAT, "事项 #1 已重新打开")
        told = await bot.wait_bot(C1_CHAT, "交社区处理")
        assert "楼道堆放杂物" in told.text
        assert (await matter(bot, 1)).tier == 2
        # The community reopens its own: no ping to itself.
        await bot.done(C1_CHAT, bot.say(C1_CHAT, POLICE, "/close 1 还是不属于"))
        bot.say(C1_CHAT, POLICE, "/reopen 1 再看看")
        await bot.api.wait_for(lambda: bot.count_bot(C1_CHAT, "事项 #1 已重新打开") >= 1)
        await bot.settle()
        assert bot.count_bot(C1_CHAT, "交社区处理") == 1


async def test_a_forged_rating_or_category_button_on_another_message_changes_nothing(make_bot: Any) -> None:
    async with make_bot() as bot:
        await report(bot, "第一件")
        other = await report(bot, "第二件：别人的事", user=RESIDENT2)
        keyboard = buttons(other)
        bot.say(U1_CHAT, HEAD1, "/resolve 1 已清理")
        asking = await bot.wait_bot(U1_CHAT, "请评价处理结果")
        # The reporter of #1 presses buttons of their own on the card of #2 (a client may send any data).
        bot.api.press_button(U1_CHAT, bot.user(RESIDENT), other.message_id, "v1:rate:1:unsatisfied")
        bot.api.press_button(U1_CHAT, bot.user(RESIDENT), other.message_id, "v1:cats:1")
        await bot.api.wait_for(lambda: len(bot.api.callback_answers) == 2)
        await bot.settle()
        assert all(a.get("show_alert") for a in bot.api.callback_answers)
        assert "第二件：别人的事" in other.text and buttons(other) == keyboard and not other.edits
        assert (await matter(bot, 1)).state == State.RESOLVED and (await matter(bot, 1)).rating is None
        assert bot.count_bot(U1_CHAT, "请回复本条消息说明原因") == 0
        # The real buttons still work.
        bot.api.press_button(U1_CHAT, bot.user(RESIDENT), asking.message_id, "v1:rate:1:satisfied")
        await bot.api.wait_for(lambda: "满意" in asking.text and "请评价" not in asking.text)
        assert (await matter(bot, 1)).rating == "satisfied"


async def test_a_held_report_follows_its_group_to_a_supergroup(make_bot: Any) -> None:
    async with make_bot(town(limits={"reports_per_hour": 1})) as bot:
        await report(bot, "第一件")
        bot.say(U1_CHAT, RESIDENT, "/report 第二件：被暂存")
        await bot.wait_bot(U1_CHAT, "已达 1 件上限")
        bot.api.migrate_chat(U1_CHAT, SUPERGROUP, bot.user(HEAD1))
        await bot.api.wait_for(lambda: not bot.api.pending_updates())
        await bot.settle()
        bot.say(SUPERGROUP, HEAD1, "/held")
        listing = await bot.wait_bot(SUPERGROUP, "暂存的反映 1 条")
        [(_, data)] = buttons(listing)
        bot.api.press_button(SUPERGROUP, bot.user(HEAD1, "蒋建国"), listing.message_id, data)
        card = await bot.wait_bot(SUPERGROUP, "事项 #2")
        assert "第二件：被暂存" in card.text
        assert (await matter(bot, 2)).chat_id == SUPERGROUP
        sent_to_old = [c for c in bot.api.calls_to("sendMessage") if c.params.get("chat_id") == U1_CHAT]
        assert not any("被暂存" in str(c.params.get("text")) and "事项 #2" in str(c.params.get("text"))
                       for c in sent_to_old)


async def test_the_figures_read_a_reopened_matters_tier_as_where_it_went(make_bot: Any) -> None:
    async with make_bot() as bot:
        await report(bot)
        await bot.done(C1_CHAT, bot.say(C1_CHAT, POLICE, "/close 1 不属于本辖区"))
        bot.say(STATION_CHAT, STAFF, "/reopen 1 重新核实")  # back at the community, written by the station
        await bot.wait_bot(STATION_CHAT, "事项 #1 已重新打开")
        assert (await matter(bot, 1)).tier == 2
        bot.clock.advance(60)
        bot.say(STATION_CHAT, STAFF, "/summary")
        summary = await bot.wait_bot(STATION_CHAT, "近七天")
        assert "派出所层级没有未解决的事项" in summary.text  # not "at the station"
        # The station's reason stays with the station: the community's group does not read it.
        bot.say(C1_CHAT, POLICE, "/show 1")
        shown = await bot.wait_bot(C1_CHAT, "时间线")
        assert "重新打开" not in shown.text.split("时间线", 1)[1] and "重新核实" not in shown.text
        bot.say(STATION_CHAT, STAFF, "/show 1")
        assert "重新核实" in (await bot.wait_bot(STATION_CHAT, "时间线")).text


async def test_a_released_held_report_is_logged_as_reported_by_ids_only(
    make_bot: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.test_observe import event_fields, events_of

    caplog.set_level(logging.INFO)
    async with make_bot(town(limits={"reports_per_hour": 1})) as bot:
        await report(bot, "第一件")
        bot.api.send_text(U1_CHAT, bot.api.user(RESIDENT, "张秘密"), f"/report {SECRET}")
        await bot.wait_bot(U1_CHAT, "已达 1 件上限")
        bot.say(U1_CHAT, HEAD1, "/held")
        listing = await bot.wait_bot(U1_CHAT, "暂存的反映 1 条")
        bot.api.press_button(U1_CHAT, bot.user(HEAD1, "蒋建国"), listing.message_id, buttons(listing)[0][1])
        await bot.wait_bot(U1_CHAT, "事项 #2")
        await bot.settle()
    assert [event_fields(r) for r in events_of(caplog)] == [
        {"event": "reported", "matter": 1, "node": "u1"}, {"event": "reported", "matter": 2, "node": "u1"},
    ]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert SECRET not in logged and "张秘密" not in logged


async def test_a_private_matters_outcome_stays_out_of_the_ledger_like_its_words(make_bot: Any) -> None:
    import io

    from openpyxl import load_workbook

    async with make_bot() as bot:
        await report_privately(bot, 1)
        await bot.done(C1_CHAT, bot.say(C1_CHAT, POLICE, "/resolve 1 已训诫张某家暴"))
        bot.clock.advance(60)
        bot.say(C1_CHAT, POLICE, "/export week")
        await bot.api.wait_for(lambda: any(m.document_name for m in bot.api.bot_messages(C1_CHAT)))
        doc = next(m for m in bot.api.bot_messages(C1_CHAT) if m.document_name)
        book = load_workbook(io.BytesIO(doc.document_bytes or b""))
        cells = [str(v) for ws in book.worksheets for row in ws.iter_rows(values_only=True) for v in row if v]
        assert not any(secret in cell for cell in cells for secret in (SECRET, "已训诫张某家暴", "用户901"))
        header, row = list(book["全部事项"].iter_rows(values_only=True))[:2]
        assert row[header.index("处理结果")] == "（保密）" and row[header.index("状态")] == "已解决"


async def test_a_long_suspension_tells_the_tier_above_the_one_that_took_it(make_bot: Any) -> None:
    async with make_bot() as bot:
        await report(bot)
        bot.say(C1_CHAT, POLICE, "/suspend 1 12-10 等待法院开庭")  # the community pauses a unit's matter
        await bot.wait_bot(C1_CHAT, "事项 #1 已挂起")
        told = await bot.wait_bot(STATION_CHAT, "事项 #1 已由社区挂起")
        assert "等待法院开庭" in told.text
        await bot.settle()
        assert bot.count_bot(C1_CHAT, "已由单元挂起") == 0  # not told of its own decision, in the unit's name


async def test_a_private_matter_withdrawn_by_its_reporter_is_told_to_those_who_had_it(make_bot: Any) -> None:
    async with make_bot() as bot:
        await start_dm(bot, HEAD1)
        await report_privately(bot, 1)
        await bot.wait_bot(C1_CHAT, SECRET)
        bot.say(RESIDENT, RESIDENT, "/cancel 1")
        await bot.wait_bot(RESIDENT, "事项 #1 已撤回")
        told = await bot.wait_bot(C1_CHAT, "私下反映的事项 #1（第一村民小组）：↩️ 已撤回")
        await bot.wait_bot(HEAD1, "私下反映的事项 #1（第一村民小组）：↩️ 已撤回")
        assert told.text
        await bot.settle()
        assert "私下反映的事项 #1（第一村民小组）" not in everything_sent_to(bot, U1_CHAT)
