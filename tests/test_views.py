"""Every view of a matter follows it (issue 14): the pings about a matter in the community's
and the station's groups (and in its unit's, when it is returned), the leaders' DM copies
and a private matter's card in its heads' DMs are edited as the matter changes — end to
end through the fake Bot API, with the clock moved by the test."""

from __future__ import annotations

import ast
import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from bot import views
from bot.dev.fakeapi import Msg, buttons
from tests.conftest import (
    C1_CHAT,
    HEAD1,
    POLICE,
    RESIDENT,
    ROOT,
    STAFF,
    STATION_CHAT,
    U1_CHAT,
    Running,
    town,
)
from tests.postgres import rows

pytestmark = pytest.mark.both_engines  # on SQLite and on PostgreSQL (issue 17)

H = 3600.0
CATEGORIES = [
    {"key": "safety", "zh": "安全隐患", "en": "Safety hazard", "urgent": True},
    {"key": "other", "zh": "其他", "en": "Other"},
]
HEAD = (HEAD1, "蒋建国")
OFFICER = (POLICE, "王警官")
CHIEF = (STAFF, "陈所长")


def dm_town(**overrides: Any) -> dict[str, Any]:
    """The test town, with the community's officer and the station's head asking for DM copies."""
    raw = town(categories=CATEGORIES, **overrides)
    raw["station"]["staff"] = [{"id": STAFF, "name": "陈所长", "dm": True}]
    raw["station"]["communities"][0]["police"] = [{"id": POLICE, "name": "王警官", "dm": True}]
    return raw


async def start_dm(bot: Running, user: int) -> None:
    bot.api.add_chat(user, None, "private")
    bot.say(user, user, "/start")
    await bot.wait_bot(user, "三级联动治理机器人")


async def matter_is(bot: Running, number: int, check: Callable[[Any], bool]) -> Any:
    """Wait until the matter, as stored, passes ``check`` (commands may be answered by a
    message or a reaction: the change is what counts)."""
    for _ in range(200):
        async with bot.svc.store.read() as tx:
            matter = await tx.matter(number)
        if matter is not None and check(matter):
            return matter
        await asyncio.sleep(0.02)
    raise AssertionError(f"matter {number} never reached the state expected: {matter}")


async def views_become(bot: Running, wanted: Callable[[list[tuple[Any, ...]]], bool],
                       within: float = 5.0) -> None:
    """Wait for the views as stored to be as wanted (recorded after Telegram answered, in a
    transaction of their own)."""
    for _ in range(int(within / 0.02)):
        if wanted(await view_rows(bot)):
            return
        await asyncio.sleep(0.02)
    assert wanted(await view_rows(bot)), await view_rows(bot)


async def eventually(check: Callable[[], bool], within: float = 5.0) -> None:
    """Wait for what the bot records after Telegram answered (in its own transaction)."""
    for _ in range(int(within / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    assert check()


async def drained(bot: Running) -> None:
    """Wait until nothing is left to send, due or not."""
    for _ in range(250):
        async with bot.svc.store.read() as tx:
            if not await tx.outbox_due(bot.clock.now() + 1e9, limit=1):
                return
        await asyncio.sleep(0.02)
    raise AssertionError("the outbox never emptied")


def act(bot: Running, chat: int, who: tuple[int, str], text: str) -> None:
    bot.api.send_text(chat, bot.user(*who), text)


async def followed(bot: Running, *checks: Callable[[], bool]) -> None:
    """Let a second pass (a view's refresh waits one), then wait for the views' edits."""
    bot.clock.advance(1.5)
    for check in checks:
        await bot.api.wait_for(check)
    await bot.settle()


def now_line(post: Msg) -> str:
    """A view's line saying where its matter stands now."""
    return next((line for line in (post.text or "").splitlines() if line.startswith("📍")), "")


def edits_of(bot: Running, message: Msg) -> int:
    """Calls to edit this message, whatever Telegram answered (each counts against its limits)."""
    return sum(1 for c in bot.api.calls_to("editMessageText")
               if c.params.get("chat_id") == message.chat_id and c.params.get("message_id") == message.message_id)


async def report_urgent(bot: Running, text: str) -> Msg:
    sent = bot.api.send_text(U1_CHAT, bot.user(RESIDENT, "王芳"), f"/report {text}")
    card = await bot.api.wait_for(lambda: next(
        (m for m in bot.api.bot_messages(U1_CHAT) if m.reply_to == sent["message_id"] and "📋" in (m.text or "")),
        None))
    bot.api.press_button(U1_CHAT, bot.user(*HEAD), card.message_id, "v1:cat:1:safety")
    return card


async def test_an_urgent_matters_posts_above_and_the_dm_copies_follow_it_through_claim_resolve_and_reopen(
    make_bot: Any,
) -> None:
    async with make_bot(dm_town()) as bot:
        await start_dm(bot, POLICE)
        await start_dm(bot, STAFF)
        card = await report_urgent(bot, "配电箱冒烟")
        community = await bot.wait_bot(C1_CHAT, "紧急事项 #1")
        station = await bot.wait_bot(STATION_CHAT, "紧急事项 #1")
        officer_dm = await bot.wait_bot(POLICE, "紧急事项 #1")
        chief_dm = await bot.wait_bot(STAFF, "紧急事项 #1")
        posts = [community, station, officer_dm, chief_dm]
        for post in posts:
            assert "📍 当前：⏳ 待认领 · 单元负责" in post.text
            assert buttons(post) == [("接手", "v1:claim:1"), ("解决", "v1:resolve:1")]

        # The officer takes it from the community's post: every post says who has it.
        bot.api.press_button(C1_CHAT, bot.user(*OFFICER), community.message_id, "v1:claim:1")
        await matter_is(bot, 1, lambda m: m.claimed_by == POLICE)
        await followed(bot, *[(lambda p=p: "🛠 处理中 · 单元负责 · 王警官" in p.text) for p in posts])
        for post in posts:
            assert buttons(post) == [("解决", "v1:resolve:1")]

        act(bot, U1_CHAT, HEAD, "/resolve 1 已断电，电工检修完毕")
        await matter_is(bot, 1, lambda m: m.state == "resolved")
        await followed(bot, *[(lambda p=p: "📍 当前：✅ 已解决 · 蒋建国" in p.text) for p in posts])
        for post in posts:
            assert buttons(post) == [], "nothing to press once it is settled"
            assert "配电箱冒烟" in post.text and "紧急事项 #1" in post.text  # what it was about stays
            assert "处理。" not in post.text and "值班" not in post.text, "nobody is asked to act any more"
        assert "已由 蒋建国" in card.text

        act(bot, U1_CHAT, HEAD, "/reopen 1 又冒烟了")
        await matter_is(bot, 1, lambda m: m.state == "open")
        await followed(bot, *[(lambda p=p: "📍 当前：⏳ 待认领 · 单元负责" in p.text) for p in posts])
        for post in posts:
            assert buttons(post) == [("接手", "v1:claim:1"), ("解决", "v1:resolve:1")]
            assert now_line(post) == "📍 当前：⏳ 待认领 · 单元负责", post.text
        assert [bot.count_bot(chat, "紧急事项 #1") for chat in (C1_CHAT, STATION_CHAT, POLICE, STAFF)] == [1, 1, 1, 1]


async def test_an_escalated_matters_pings_follow_it_in_every_tier(make_bot: Any) -> None:
    async with make_bot(dm_town()) as bot:
        await start_dm(bot, POLICE)
        await start_dm(bot, STAFF)
        act(bot, U1_CHAT, (RESIDENT, "王芳"), "/report 楼道堆放杂物")
        card = await bot.wait_bot(U1_CHAT, "📋")
        bot.clock.advance(1 * H)
        community = await bot.wait_bot(C1_CHAT, "事项 #1 上报至社区")
        officer_dm = await bot.wait_bot(POLICE, "事项 #1 上报至社区")
        assert "📍 当前：⏳ 待认领 · 社区负责" in community.text
        bot.clock.advance(2 * H)
        station = await bot.wait_bot(STATION_CHAT, "事项 #1 上报至派出所")
        chief_dm = await bot.wait_bot(STAFF, "事项 #1 上报至派出所")
        # The community's post no longer asks the community: the station holds it now.
        await followed(bot, lambda: "⏳ 待认领 · 派出所负责" in community.text,
                       lambda: "⏳ 待认领 · 派出所负责" in officer_dm.text)
        posts = [community, officer_dm, station, chief_dm]

        bot.api.press_button(STATION_CHAT, bot.user(*CHIEF), station.message_id, "v1:claim:1")
        await matter_is(bot, 1, lambda m: m.claimed_by == STAFF)
        await followed(bot, *[(lambda p=p: "🛠 处理中 · 派出所负责 · 陈所长" in p.text) for p in posts])

        act(bot, STATION_CHAT, CHIEF, "/resolve 1 已联系物业清理")
        await matter_is(bot, 1, lambda m: m.state == "resolved")
        await followed(bot, *[(lambda p=p: "📍 当前：✅ 已解决 · 陈所长" in p.text) for p in posts],
                       lambda: "已由 陈所长" in card.text)
        assert all(buttons(post) == [] for post in posts)

        act(bot, STATION_CHAT, CHIEF, "/reopen 1 物业没有清理")
        await matter_is(bot, 1, lambda m: m.state == "open")
        await followed(bot, *[(lambda p=p: "📍 当前：⏳ 待认领 · 派出所负责" in p.text) for p in posts])
        for post in posts:
            assert buttons(post) == [("接手", "v1:claim:1"), ("解决", "v1:resolve:1")]
        assert "待认领" in card.text and not card.text.count("已由")


async def test_a_private_matters_views_show_the_unit_group_only_its_number_state_and_tier(make_bot: Any) -> None:
    secret = "丈夫酒后打人，请不要在群里说"
    async with make_bot(dm_town()) as bot:
        await start_dm(bot, POLICE)
        await start_dm(bot, HEAD1)
        bot.api.add_chat(RESIDENT, None, "private")
        bot.api.send_text(RESIDENT, bot.user(RESIDENT, "王芳"), "/start p_u1")
        await bot.wait_bot(RESIDENT, "私下反映")
        bot.api.send_text(RESIDENT, bot.user(RESIDENT, "王芳"), secret)
        community = await bot.wait_bot(C1_CHAT, "私下反映的事项 #1")
        head_card = await bot.wait_bot(HEAD1, secret)  # the head's full card, by DM
        bot.clock.advance(1 * H)
        escalation = await bot.wait_bot(C1_CHAT, "事项 #1 上报至社区")
        officer_dm = await bot.wait_bot(POLICE, "事项 #1 上报至社区")
        act(bot, C1_CHAT, OFFICER, "/return 1 请上门核实")
        returned = await bot.wait_bot(U1_CHAT, "退回单元处理")  # the unit group's view of it
        full = [community, escalation, officer_dm]

        bot.api.press_button(HEAD1, bot.user(*HEAD), head_card.message_id, "v1:claim:1")
        await matter_is(bot, 1, lambda m: m.claimed_by == HEAD1)
        await followed(bot, lambda: now_line(returned) == "📍 当前：🛠 处理中 · 单元负责",  # no name
                       *[(lambda p=p: "🛠 处理中 · 单元负责 · 蒋建国" in p.text) for p in full])
        bot.api.press_button(HEAD1, bot.user(*HEAD), head_card.message_id, "v1:resolve:1")
        await matter_is(bot, 1, lambda m: m.state == "resolved")
        await followed(bot, lambda: now_line(returned) == "📍 当前：✅ 已解决" and not buttons(returned),
                       lambda: "已由 蒋建国" in head_card.text and not buttons(head_card),
                       *[(lambda p=p: "📍 当前：✅ 已解决 · 蒋建国" in p.text) for p in full])

        act(bot, C1_CHAT, OFFICER, "/reopen 1 当事人说仍在发生")
        await matter_is(bot, 1, lambda m: m.state == "open")
        await followed(bot, lambda: now_line(returned) == "📍 当前：⏳ 待认领 · 单元负责",
                       lambda: "待认领" in head_card.text,
                       *[(lambda p=p: "📍 当前：⏳ 待认领 · 单元负责" in p.text) for p in full])
        for post in [*full, returned]:
            assert buttons(post) == [("接手", "v1:claim:1"), ("解决", "v1:resolve:1")]
        assert ("认领", "v1:claim:1") in buttons(head_card)
        for post in full:
            assert secret in post.text
        # Never in the unit group: the text, the reporter, who worked it, the instruction.
        seen_in_unit = "\n".join(str(c.params.get("text") or "") for c in bot.api.calls
                                 if c.params.get("chat_id") == U1_CHAT)
        for word in (secret, "王芳", "· 蒋建国", "请上门核实", "已断电"):
            assert word not in seen_in_unit
        assert "#1" in returned.text and "🔒" in returned.text


async def test_a_ping_naming_several_matters_stays_one_message_showing_each_ones_state(make_bot: Any) -> None:
    async with make_bot(dm_town()) as bot:
        for text in ("路灯坏了", "井盖丢失"):
            act(bot, U1_CHAT, (RESIDENT, "王芳"), f"/report {text}")
        await bot.api.wait_for(lambda: bot.count_bot(U1_CHAT, "📋") == 2)
        bot.clock.advance(1 * H)
        digest = await bot.wait_bot(C1_CHAT, "2 件事项需要处理")
        assert [data for _, data in buttons(digest)] == ["v1:claim:1", "v1:resolve:1", "v1:claim:2", "v1:resolve:2"]
        act(bot, C1_CHAT, OFFICER, "/resolve 1 已更换灯泡")
        await matter_is(bot, 1, lambda m: m.state == "resolved")
        await followed(bot, lambda: "#1 ✅ 已解决 · 王警官" in digest.text)
        assert "#2 ⏳ 待认领 · 社区负责" in digest.text
        assert [data for _, data in buttons(digest)] == ["v1:claim:2", "v1:resolve:2"]
        assert bot.count_bot(C1_CHAT, "需要处理") == 1


async def test_a_view_follows_in_its_chats_language(make_bot: Any) -> None:
    async with make_bot(dm_town()) as bot:
        act(bot, C1_CHAT, OFFICER, "/lang en")
        await eventually(lambda: bot.svc.langs.chat_language(C1_CHAT) == "en")
        act(bot, U1_CHAT, (RESIDENT, "王芳"), "/report 楼道堆放杂物")
        await bot.wait_bot(U1_CHAT, "📋")
        bot.clock.advance(1 * H)
        community = await bot.wait_bot(C1_CHAT, "Matter #1 escalated to the community")
        assert now_line(community) == "📍 Now: ⏳ waiting to be claimed · held by the community"
        act(bot, U1_CHAT, OFFICER, "/resolve 1 已清理")
        await matter_is(bot, 1, lambda m: m.state == "resolved")
        await followed(bot, lambda: now_line(community) == "📍 Now: ✅ resolved · 王警官")
        assert buttons(community) == [] and "事项" not in community.text


async def test_many_changes_within_a_second_make_one_edit_per_view(make_bot: Any) -> None:
    async with make_bot(dm_town()) as bot:
        await start_dm(bot, POLICE)
        act(bot, U1_CHAT, (RESIDENT, "王芳"), "/report 楼道堆放杂物")
        await bot.wait_bot(U1_CHAT, "📋")
        bot.clock.advance(1 * H)
        community = await bot.wait_bot(C1_CHAT, "事项 #1 上报至社区")
        officer_dm = await bot.wait_bot(POLICE, "事项 #1 上报至社区")
        await bot.settle()
        act(bot, C1_CHAT, OFFICER, "/claim 1")
        await matter_is(bot, 1, lambda m: m.claimed_by == POLICE)
        bot.clock.advance(0.5)
        act(bot, C1_CHAT, OFFICER, "/resolve 1 已清理")
        await matter_is(bot, 1, lambda m: m.state == "resolved")
        act(bot, C1_CHAT, OFFICER, "/reopen 1 又堆上了")
        await matter_is(bot, 1, lambda m: m.state == "open")
        act(bot, C1_CHAT, OFFICER, "/claim 1")
        await matter_is(bot, 1, lambda m: m.claimed_by == POLICE)
        await bot.settle()
        assert (edits_of(bot, community), edits_of(bot, officer_dm)) == (0, 0), "a refresh waits its second"
        bot.clock.advance(0.6)  # a second after the first change, half a second after the others
        await bot.api.wait_for(lambda: "🛠 处理中 · 社区负责 · 王警官" in community.text
                               and "🛠 处理中 · 社区负责 · 王警官" in officer_dm.text)
        bot.clock.advance(5)
        await drained(bot)
        await bot.settle()
        assert (edits_of(bot, community), edits_of(bot, officer_dm)) == (1, 1)

        # Years later its personal data is cleared, and what its views were composed from with it.
        act(bot, C1_CHAT, OFFICER, "/resolve 1 已清理")
        await matter_is(bot, 1, lambda m: m.state == "resolved")
        await followed(bot, lambda: "✅ 已解决" in community.text)
        await views_become(bot, lambda found: len(found) == 2)
        async with bot.svc.store.transaction() as tx:
            await tx.purge_matters(bot.clock.now() + 1, bot.clock.now())
        assert await view_rows(bot) == []


async def test_a_view_whose_message_is_gone_is_dead_and_not_modified_counts_as_done(make_bot: Any) -> None:
    async with make_bot(dm_town()) as bot:
        await start_dm(bot, POLICE)
        act(bot, U1_CHAT, (RESIDENT, "王芳"), "/report 楼道堆放杂物")
        await bot.wait_bot(U1_CHAT, "📋")
        bot.clock.advance(1 * H)
        community = await bot.wait_bot(C1_CHAT, "事项 #1 上报至社区")
        officer_dm = await bot.wait_bot(POLICE, "事项 #1 上报至社区")
        await bot.settle()

        # A refresh with nothing new to show: Telegram says "not modified"; that is done.
        async with bot.svc.store.transaction() as tx:
            await views.follow(tx, [1], bot.clock.now(), "nothing-new")
        bot.clock.advance(1.5)
        await bot.api.wait_for(lambda: len(bot.api.calls_to("editMessageText")) >= 2)
        await bot.settle()
        await drained(bot)  # not retried
        refused = [c for c in bot.api.calls_to("editMessageText") if c.status == 400]
        assert len(refused) == 2  # the community's post and the officer's copy, both as they were
        assert await view_rows(bot) == [(C1_CHAT, None), (POLICE, None)]
        assert await refreshes(bot) == [("sent", None), ("sent", None)]

        community.deleted = True  # someone deleted the community's post
        act(bot, C1_CHAT, OFFICER, "/claim 1")
        await matter_is(bot, 1, lambda m: m.claimed_by == POLICE)
        await followed(bot, lambda: "王警官" in officer_dm.text.split("📍")[1])
        await views_become(bot, lambda found: found == [(C1_CHAT, "gone"), (POLICE, None)])
        calls = len(bot.api.calls_to("editMessageText"))
        act(bot, C1_CHAT, OFFICER, "/resolve 1 已清理")
        await matter_is(bot, 1, lambda m: m.state == "resolved")
        await followed(bot, lambda: "✅ 已解决" in officer_dm.text)
        edited = [c.params.get("chat_id") for c in bot.api.calls_to("editMessageText")[calls:]]
        assert C1_CHAT not in edited, "a dead view is never tried again"


async def test_a_view_in_a_chat_the_bot_was_removed_from_is_dead(make_bot: Any) -> None:
    async with make_bot(dm_town()) as bot:
        act(bot, U1_CHAT, (RESIDENT, "王芳"), "/report 楼道堆放杂物")
        await bot.wait_bot(U1_CHAT, "📋")
        bot.clock.advance(1 * H)
        await bot.wait_bot(C1_CHAT, "事项 #1 上报至社区")
        await bot.settle()
        bot.api.remove_bot_from(C1_CHAT)
        act(bot, STATION_CHAT, CHIEF, "/claim 1")
        await matter_is(bot, 1, lambda m: m.claimed_by == STAFF)
        bot.clock.advance(1.5)
        await bot.api.wait_for(lambda: any(c.status == 403 for c in bot.api.calls_to("editMessageText")))
        await views_become(bot, lambda found: found == [(C1_CHAT, "unreachable")])
        async with bot.svc.store.read() as tx:
            assert await tx.live_views([1]) == []  # the next change asks nothing of that chat


async def test_a_groups_views_die_when_it_becomes_a_supergroup(make_bot: Any) -> None:
    """A group upgraded to a supergroup has a new id; its old messages cannot be edited."""
    async with make_bot(dm_town()) as bot:
        act(bot, U1_CHAT, (RESIDENT, "王芳"), "/report 楼道堆放杂物")
        await bot.wait_bot(U1_CHAT, "📋")
        bot.clock.advance(1 * H)
        await bot.wait_bot(C1_CHAT, "事项 #1 上报至社区")
        await drained(bot)
        bot.api.migrate_chat(C1_CHAT, -1000000000200, bot.user(*OFFICER))
        await views_become(bot, lambda found: found == [(C1_CHAT, "migrated")])
        act(bot, STATION_CHAT, CHIEF, "/claim 1")
        await matter_is(bot, 1, lambda m: m.claimed_by == STAFF)
        bot.clock.advance(1.5)
        await drained(bot)
        edited = {c.params.get("chat_id") for c in bot.api.calls_to("editMessageText")}
        assert edited == {U1_CHAT}, "the unit's card, nothing in the old group or the new"


async def test_a_change_while_a_ping_waits_to_be_sent_is_followed_too(make_bot: Any) -> None:
    """A ping not yet sent (here: Telegram failed it once) is composed when it goes, and a
    change meanwhile queues its refresh all the same: the ping may be on its way already."""
    async with make_bot(dm_town()) as bot:
        act(bot, U1_CHAT, (RESIDENT, "王芳"), "/report 楼道堆放杂物")
        await bot.wait_bot(U1_CHAT, "📋")
        bot.api.fail("sendMessage", chat_id=C1_CHAT, status=500)
        bot.clock.advance(1 * H)
        await bot.api.wait_for(lambda: any(c.status == 500 for c in bot.api.calls_to("sendMessage")))
        await bot.settle()
        async with bot.svc.store.read() as tx:
            waiting = await tx.live_views([1])
        assert [chat for _, chat in waiting] == [C1_CHAT]
        act(bot, STATION_CHAT, CHIEF, "/claim 1")
        await matter_is(bot, 1, lambda m: m.claimed_by == STAFF)
        bot.clock.advance(5)  # the retry: composed now, with the claim
        community = await bot.wait_bot(C1_CHAT, "事项 #1 上报至社区")
        assert "🛠 处理中 · 社区负责 · 陈所长" in community.text
        await drained(bot)


async def view_rows(bot: Running) -> list[tuple[Any, ...]]:
    """(chat, why dead) of every view, as stored."""
    return await rows(bot.config.database, "SELECT chat_id, dead FROM views ORDER BY chat_id")


async def refreshes(bot: Running) -> list[tuple[Any, ...]]:
    return await rows(bot.config.database, "SELECT state, error FROM outbox WHERE kind = 'view' ORDER BY id")


def test_the_notifier_composes_no_words() -> None:
    """escalation/notify.py decides who hears of which matters; the words are the renderer's."""
    tree = ast.parse((ROOT / "escalation" / "notify.py").read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)} | {
        f"{node.module}.{alias.name}" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
        for alias in node.names}
    assert not {"bot.text", "bot.text.i18n", "bot.text.render", "bot.text.locale"} & imported
