"""Private stays private and leaders' words stay at their tier (issue 10): the table in
bot/visibility.py directly, then end to end through the fake Bot API — every chat the bot
wrote to, edits included, is searched for what it must not have seen."""

from __future__ import annotations

from typing import Any

import pytest

from bot import visibility
from bot.dev.fakeapi import buttons
from bot.store import Event, Matter
from bot.tree import Tree
from bot.visibility import Audience, Piece
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
    Running,
    parse_town,
    town,
)

H = 3600.0
SECRET = "丈夫酒后动手，不敢在群里说"


# --- the table ------------------------------------------------------------------------
@pytest.mark.parametrize("piece", list(Piece))
@pytest.mark.parametrize("audience", list(Audience))
def test_every_piece_of_a_private_matter_is_kept_from_its_unit_group_alone(piece: Piece, audience: Audience) -> None:
    assert visibility.may_see(piece, audience, private=False)  # an ordinary matter: reported in the open
    assert visibility.may_see(piece, audience, private=True) == (audience != Audience.UNIT)
    assert visibility.redacted(audience, private=True) == (audience == Audience.UNIT)
    assert not visibility.redacted(audience, private=False)


TREE = Tree(parse_town())


def _matter(private: bool = False) -> Matter:
    return Matter(1, "u1", U1_CHAT, None, RESIDENT, "居民", "text", State.OPEN, 3, 3, 0.0, None, None, "{}", 0.0,
                  None, None, None, None, None, None, None, None, None, None, None, private=private)


def _event(kind: str, actor: int | None, tier: int | None, detail: str | None = "x") -> Event:
    return Event(1, 0.0, actor, None, kind, tier, detail)


# (entry, its level: the lowest tier whose group reads it, whether the reporter reads it in private)
ENTRIES = [
    (_event("reported", RESIDENT, 3), 3, True),
    (_event("claimed", POLICE, 3), 3, True),  # who works it is public
    (_event("resolved", POLICE, 2, "已协调维修"), 3, True),  # what was done is public
    (_event("unresolvable", POLICE, 2, "原因"), 3, True),  # the reporter is told why
    (_event("note", HEAD1, 3), 3, True),  # a head's note, written in the unit group
    (_event("note", POLICE, 2), 2, False),  # an officer's note: the community and above
    (_event("note", POLICE, 3), 2, False),  # an older row holds the matter's tier: the writer decides
    (_event("note", HEAD1, 2), 2, False),  # a head writing in the community group: that tier
    (_event("note", STAFF, 1), 1, False),
    (_event("suspended", POLICE, 2), 2, False),
    (_event("reopened", POLICE, 2), 2, False),
    (_event("reopened", RESIDENT, 3), 3, True),
    (_event("escalated", HEAD1, 2, "涉及多户"), 3, True),  # a head's reason, from the unit
    (_event("escalated", POLICE, 1, "涉及刑事"), 2, False),  # an officer's reason, from the community
    (_event("escalated", POLICE, 2, "我先上报"), 2, False),  # an officer escalating from the unit: theirs
    (_event("escalated", None, 2, "超时未认领"), 3, True),  # the sweep writes no one's words
    (_event("returned", POLICE, 3, "请先上门"), 3, False),  # addressed to the unit's heads
    (_event("returned", STAFF, 2, "请社区调解"), 2, False),  # addressed to the community
    (_event("taken_over", POLICE, 2, None), 2, False),
    (_event("taken_over", STAFF, 1, None), 1, False),
]


@pytest.mark.parametrize(("event", "level", "reporter_reads"), ENTRIES)
def test_each_timeline_entry_is_read_by_its_tier_and_above(event: Event, level: int, reporter_reads: bool) -> None:
    assert visibility.entry_level(event, TREE, "u1") == level
    ordinary, private = _matter(), _matter(private=True)
    for audience, tier in visibility.GROUP_TIER.items():
        assert visibility.entry_visible(event, ordinary, TREE, audience) == (tier <= level)
        # The unit group reads no entry of a private matter; the groups above as usual.
        assert visibility.entry_visible(event, private, TREE, audience) == (tier <= level and tier != 3)
    for matter in (ordinary, private):
        assert visibility.entry_visible(event, matter, TREE, Audience.LEADER_DM)  # the heads, by DM: all
        assert visibility.entry_visible(event, matter, TREE, Audience.REPORTER_DM) == reporter_reads


def test_each_chat_is_an_audience() -> None:
    ordinary, private = _matter(), _matter(private=True)
    assert visibility.of_chat(TREE, U1_CHAT, private) == Audience.UNIT
    assert visibility.of_chat(TREE, C1_CHAT, private) == Audience.COMMUNITY
    assert visibility.of_chat(TREE, STATION_CHAT, private) == Audience.STATION
    assert visibility.of_chat(TREE, -999, private) == Audience.UNIT  # a group outside the tree: the strictest
    for leader in (HEAD1, POLICE, STAFF):
        assert visibility.of_chat(TREE, leader, ordinary) == Audience.LEADER_DM
    assert visibility.of_chat(TREE, HEAD2, ordinary) is None  # another unit's head
    assert visibility.of_chat(TREE, RESIDENT, ordinary) == Audience.REPORTER_DM
    assert visibility.of_chat(TREE, RESIDENT2, ordinary) is None


# --- end to end -------------------------------------------------------------------------
def open_private(bot: Running, user: int) -> None:
    bot.api.add_chat(user, None, "private")


def everything_sent_to(bot: Running, chat: int) -> str:
    """Every text and caption the bot ever sent to or edited in ``chat``."""
    return "\n".join(
        str(c.params.get("text") or c.params.get("caption") or "")
        for c in bot.api.calls
        if str(c.params.get("chat_id")) == str(chat)
    )


async def start_dm(bot: Running, user: int, name: str | None = None) -> None:
    """The person opened a private chat with the bot once (so DMs can reach them)."""
    open_private(bot, user)
    bot.say(user, user, "/start")
    await bot.wait_bot(user, "三级联动治理机器人")


async def report_privately(bot: Running, number: int, text: str = SECRET, user: int = RESIDENT) -> None:
    open_private(bot, user)
    bot.say(user, user, "/start p_u1")
    await bot.api.wait_for(lambda: bot.count_bot(user, "您正在向 第一村民小组 私下反映") == number)
    bot.say(user, user, text)
    await bot.wait_bot(user, f"私下反映的事项 #{number}")


async def ask(bot: Running, chat: int, user: int, command: str) -> str:
    """Send a command; every answer to it, joined."""
    sent = bot.say(chat, user, command)

    def answers() -> list[Any]:
        return [m for m in bot.api.bot_messages(chat) if m.reply_to == sent["message_id"]]

    await bot.api.wait_for(answers)
    await bot.settle()
    return "\n".join(m.text or "" for m in answers())


async def test_a_private_matters_outcome_never_reaches_its_unit_group(make_bot: Any) -> None:
    async with make_bot() as bot:
        await start_dm(bot, HEAD1)
        await report_privately(bot, 1)
        card = await bot.wait_bot(U1_CHAT, "事项 #1")
        bot.say(C1_CHAT, POLICE, "/claim 1")
        await bot.api.wait_for(lambda: "处理中" in card.text)
        assert "用户21" not in card.text  # the claimer is a name too
        assert "已有人认领" in await ask(bot, U1_CHAT, HEAD1, "/claim 1")  # so is it in a refusal
        bot.say(C1_CHAT, POLICE, "/resolve 1 已训诫张某家暴")
        await bot.wait_bot(RESIDENT, "已训诫张某家暴")  # the reporter, in private
        dm = await bot.wait_bot(HEAD1, "已训诫张某家暴")  # the heads, by DM
        assert "#1" in dm.text
        await bot.api.wait_for(lambda: "已解决" in card.text)
        shown = await ask(bot, U1_CHAT, HEAD1, "/show 1")
        assert "已解决" in shown and "私下反映的事项，内容仅" in shown

        await report_privately(bot, 2, "邻居借钱不还还威胁")
        bot.say(C1_CHAT, POLICE, "/close 2 当事人拒绝配合调解")
        await bot.wait_bot(RESIDENT, "当事人拒绝配合调解")
        await report_privately(bot, 3, "网上刷单被骗三万")
        bot.say(C1_CHAT, POLICE, "/refer 3 移交反诈中心")
        await bot.wait_bot(RESIDENT, "移交反诈中心")
        await bot.wait_bot(HEAD1, "移交反诈中心")

        # The head closes one from the DM card: the community group hears it in full.
        await report_privately(bot, 4, "楼下赌博")
        dm_card = await bot.wait_bot(HEAD1, "楼下赌博")
        bot.api.press_button(HEAD1, bot.user(HEAD1, "蒋建国"), dm_card.message_id, "v1:resolve:4")
        told = await bot.wait_bot(C1_CHAT, "私下反映的事项 #4（第一村民小组）")
        assert "已解决 · 蒋建国" in told.text
        for number in (2, 3):
            assert "私下反映的事项，内容仅" in await ask(bot, U1_CHAT, HEAD1, f"/show {number}")

        await bot.settle()
        group = everything_sent_to(bot, U1_CHAT)
        for secret in (SECRET, "已训诫张某家暴", "当事人拒绝配合调解", "移交反诈中心", "网上刷单", "楼下赌博",
                       "用户21", f"id={RESIDENT}", "用户901"):
            assert secret not in group, secret
        for number in (1, 2, 3, 4):
            assert f"事项 #{number}" in group  # it exists, and where it stands


async def test_leaders_notes_and_reasons_are_read_at_their_tier_and_above(make_bot: Any) -> None:
    async with make_bot() as bot:
        bot.say(U1_CHAT, RESIDENT, "/report 楼上天天吵架摔东西")
        await bot.wait_bot(U1_CHAT, "事项 #1")
        await bot.done(U1_CHAT, bot.say(U1_CHAT, HEAD1, "/note 1 已上门了解"))
        await bot.done(C1_CHAT, bot.say(C1_CHAT, POLICE, "/note 1 当事人有前科"))
        bot.say(C1_CHAT, POLICE, "/takeover 1")
        await bot.wait_bot(C1_CHAT, "已接手事项 #1")
        bot.say(C1_CHAT, POLICE, "/escalate 1 涉及刑事，请所里研判")
        await bot.wait_bot(STATION_CHAT, "涉及刑事")
        bot.say(STATION_CHAT, STAFF, "/return 1 请社区先行调解")
        await bot.wait_bot(C1_CHAT, "请社区先行调解")
        bot.say(C1_CHAT, POLICE, "/return 1 请楼长明天再上门")
        back = await bot.wait_bot(U1_CHAT, "退回单元处理")  # addressed to the unit's heads
        assert "请楼长明天再上门" in back.text

        unit = await ask(bot, U1_CHAT, RESIDENT2, "/show 1")
        assert "已上门了解" in unit and "请楼长明天再上门" in unit
        for internal in ("当事人有前科", "涉及刑事", "请社区先行调解"):
            assert internal not in unit, internal
        community = await ask(bot, C1_CHAT, POLICE, "/show 1")
        assert "当事人有前科" in community and "涉及刑事" in community and "请社区先行调解" in community
        station = await ask(bot, STATION_CHAT, STAFF, "/show 1")
        assert "当事人有前科" in station

        open_private(bot, HEAD1)  # the unit's head, by DM: everything
        head = await ask(bot, HEAD1, HEAD1, "/show 1")
        for entry in ("已上门了解", "当事人有前科", "涉及刑事", "请社区先行调解", "请楼长明天再上门"):
            assert entry in head, entry
        open_private(bot, RESIDENT)  # the reporter, in private: the public entries
        mine = await ask(bot, RESIDENT, RESIDENT, "/show 1")
        assert "楼上天天吵架摔东西" in mine and "已上门了解" in mine
        for internal in ("当事人有前科", "涉及刑事", "请社区先行调解", "请楼长明天再上门"):
            assert internal not in mine, internal
        open_private(bot, RESIDENT2)  # anyone else: not theirs to read
        other = await ask(bot, RESIDENT2, RESIDENT2, "/show 1")
        assert "只有报告人本人" in other and "楼上" not in other
        open_private(bot, HEAD2)  # another unit's head neither
        assert "只有报告人本人" in await ask(bot, HEAD2, HEAD2, "/show 1")
        assert "当事人有前科" not in everything_sent_to(bot, U1_CHAT)


async def test_show_in_private_gives_a_private_matter_to_its_leaders_and_reporter(make_bot: Any) -> None:
    async with make_bot() as bot:
        await report_privately(bot, 1)
        await bot.done(C1_CHAT, bot.say(C1_CHAT, POLICE, "/note 1 已联系妇联"))
        open_private(bot, HEAD1)
        head = await ask(bot, HEAD1, HEAD1, "/show 1")
        assert SECRET in head and "已联系妇联" in head and f"报告人：用户{RESIDENT}" in head
        open_private(bot, POLICE)
        assert "已联系妇联" in await ask(bot, POLICE, POLICE, "/show 1")
        mine = await ask(bot, RESIDENT, RESIDENT, "/show 1")
        assert SECRET in mine and "已联系妇联" not in mine
        open_private(bot, RESIDENT2)
        assert SECRET not in await ask(bot, RESIDENT2, RESIDENT2, "/show 1")
        assert "没有找到" not in await ask(bot, RESIDENT2, RESIDENT2, "/show 99")  # nor whether it exists
        shown = await ask(bot, U1_CHAT, HEAD1, "/show 1")
        assert SECRET not in shown and "已联系妇联" not in shown

        # A return to the unit: its heads read the instruction by DM, the group only that it came back.
        await start_dm(bot, HEAD1)
        bot.say(C1_CHAT, POLICE, "/takeover 1")
        await bot.wait_bot(C1_CHAT, "已接手事项 #1")
        bot.say(C1_CHAT, POLICE, "/return 1 请楼长上门核实")
        await bot.wait_bot(U1_CHAT, "事项 #1 退回单元处理")
        instructed = await bot.wait_bot(HEAD1, "请楼长上门核实")
        assert SECRET in instructed.text
        await bot.settle()
        assert "请楼长上门核实" not in everything_sent_to(bot, U1_CHAT)


async def test_a_private_reporters_unsatisfied_goes_to_the_heads_and_community_not_the_group(make_bot: Any) -> None:
    async with make_bot() as bot:
        await start_dm(bot, HEAD1)
        await report_privately(bot, 1)
        dm_card = await bot.wait_bot(HEAD1, SECRET)
        bot.api.press_button(HEAD1, bot.user(HEAD1, "蒋建国"), dm_card.message_id, "v1:resolve:1")
        rating = await bot.wait_bot(RESIDENT, "请评价处理结果")
        bot.api.press_button(RESIDENT, bot.user(RESIDENT), rating.message_id, "v1:rate:1:unsatisfied")
        why = await bot.wait_bot(RESIDENT, "请回复本条消息说明原因")
        head = await bot.wait_bot(HEAD1, "不满意")
        assert "#1" in head.text
        community = await bot.wait_bot(C1_CHAT, "不满意")
        assert SECRET in community.text and "#1" in community.text  # in full
        bot.say(RESIDENT, RESIDENT, "他昨天又动手了", reply_to_message_id=why.message_id)
        await bot.wait_bot(HEAD1, "他昨天又动手了")
        await bot.wait_bot(C1_CHAT, "他昨天又动手了")
        card = await bot.wait_bot(U1_CHAT, "事项 #1")
        await bot.api.wait_for(lambda: "待认领" in card.text)  # the group sees it open again, no more
        await bot.settle()
        group = everything_sent_to(bot, U1_CHAT)
        assert "不满意" not in group and "他昨天又动手了" not in group and SECRET not in group


async def test_pings_in_the_unit_group_name_no_one_on_a_private_matter(make_bot: Any) -> None:
    raw = town(idle={"remind_after": "4h", "release_after": "2h"})
    raw["station"]["communities"][0]["units"][0]["heads"] = [{"id": HEAD1, "name": "蒋建国", "dm": True}]
    async with make_bot(raw) as bot:
        await start_dm(bot, HEAD1)
        await report_privately(bot, 1)
        bot.say(C1_CHAT, POLICE, "/claim 1")  # the officer works it
        await bot.wait_bot(RESIDENT, "认领")
        bot.clock.advance(4 * H)
        await bot.wait_bot(U1_CHAT, "认领后无进展")
        copy = await bot.wait_bot(HEAD1, "认领后无进展")  # the head's DM copy reads it in full
        assert SECRET in copy.text and "用户21" in copy.text
        bot.clock.advance(2 * H)
        released = await bot.wait_bot(U1_CHAT, "认领已释放")
        assert buttons(released)  # the heads can still claim it from there
        await bot.settle()
        group = everything_sent_to(bot, U1_CHAT)
        assert "用户21" not in group and f"id={POLICE}" not in group and SECRET not in group


async def test_a_unit_groups_summary_counts_no_private_reports_category(make_bot: Any) -> None:
    async with make_bot() as bot:
        await start_dm(bot, HEAD1)
        await report_privately(bot, 1)
        dm_card = await bot.wait_bot(HEAD1, SECRET)
        bot.api.press_button(HEAD1, bot.user(HEAD1, "蒋建国"), dm_card.message_id, "v1:cat:1:family")
        await bot.api.wait_for(lambda: any("家庭纠纷" in (a.get("text") or "") for a in bot.api.callback_answers))
        bot.say(U1_CHAT, RESIDENT2, "/report 路灯坏了")
        await bot.wait_bot(U1_CHAT, "事项 #2")
        bot.clock.advance(60)  # the last seven days end now: both matters are in them
        unit = await ask(bot, U1_CHAT, RESIDENT2, "/summary")
        assert "分类：其他 1" in unit and "家庭纠纷" not in unit
        community = await ask(bot, C1_CHAT, POLICE, "/summary")
        assert "家庭纠纷 1" in community  # the community reads private reports in full
