"""Review of the visit log, the officers' section and the cheaper card send (issue 16):
each defect found, with the test that fails without its fix."""

from __future__ import annotations

from typing import Any

from bot import visits
from tests.conftest import C1_CHAT, POLICE, STAFF, STATION_CHAT

H = 3600.0


async def test_visits_list_of_a_busy_week_fits_one_message(make_bot: Any) -> None:
    """/visits listed every person's line and 40 entries of up to 40 characters each with
    all their units: a busy week's answer passed Telegram's 4,096 characters and was refused
    (400 "message is too long"), so the officer got no answer at all."""
    async with make_bot() as bot:
        now = bot.clock.now()
        async with bot.svc.store.transaction() as tx:
            for i in range(60):  # 60 entries, by 60 people (grid workers, staff …)
                vid = await tx.start_visit(1000 + i, f"走访人{i:02d}号走访人走访人", 1000 + i, now - H,
                                           community_id="c1", units=["u1", "u2"], households=5,
                                           deed="帮" * 40, findings="邻里纠纷", step=visits.MEDIA)
                await tx.update_visit(vid, now - H, step=visits.DONE, finished_at=now - H)
        for chat, who in ((C1_CHAT, POLICE), (STATION_CHAT, STAFF)):
            bot.say(chat, who, "/visits")
            listed = await bot.wait_bot(chat, "走访日志")
            assert "60 次，300 户" in listed.text
            assert len(listed.text) <= 4096


async def test_one_no_longer_listed_can_neither_finish_an_entry_nor_make_a_matter_of_it(make_bot: Any) -> None:
    """A grid worker taken off config.yaml kept their buttons: the unfinished entry could still
    be finished (and posted to the community's group) and a finding of an old entry turned
    into a matter in a unit's group, though /visit refuses them."""
    from bot.clock import ManualClock
    from tests.conftest import START, town
    from tests.test_visits import GRID, grid_town, latest, log_visit, press

    clock = ManualClock(START)
    async with make_bot(grid_town(), clock=clock) as bot:
        await log_visit(bot, GRID, findings="张家老人独居")
        await latest(bot, GRID, "已记录")
        bot.say(GRID, GRID, "/visit 5户 帮李大妈修水管")
        await latest(bot, GRID, "走访了哪些单元")
        await bot.settle()
    async with make_bot(town(), clock=clock) as bot:  # no grid worker any more
        posts = bot.count_bot(C1_CHAT, "走访日志")
        await press(bot, GRID, GRID, "转为事项")
        await press(bot, GRID, GRID, "第一村民小组")
        await press(bot, GRID, GRID, "下一步")
        await bot.settle()
        async with bot.svc.store.read() as tx:
            assert await tx.matter(1) is None
            assert (await tx.visit(2)).units == []  # type: ignore[union-attr]
        assert bot.count_bot(C1_CHAT, "走访日志") == posts
        await latest(bot, GRID, "走访日志由社区民警、书记、网格员和派出所民警记录")


async def test_an_entrys_button_data_on_a_group_message_edits_nothing_there(make_bot: Any) -> None:
    """An entry's buttons edit the message pressed: with its data sent on another message (a
    forged press, by the entry's own writer, on the entry's post in the community's group) the
    post became the private answer with its 转为事项 buttons, in the group."""
    from tests.test_visits import latest, log_visit

    async with make_bot() as bot:
        await log_visit(bot, POLICE, findings="张家老人独居")
        await latest(bot, POLICE, "已记录")
        post = await bot.wait_bot(C1_CHAT, "走访日志 #1")
        text = post.text
        bot.api.press_button(C1_CHAT, bot.user(POLICE), post.message_id, visits.callback(1, "t", "g"))
        await bot.settle()
        after = next(m for m in bot.api.bot_messages(C1_CHAT) if m.message_id == post.message_id)
        assert after.text == text and not bot.api.buttons(after)


async def test_a_date_after_visit_is_not_read_as_households(make_bot: Any) -> None:
    """``/visit 2026年3月帮王大爷…`` was read as 2026 households (any digits at the start, the
    rest the deed), which went into the officer's figures and the ranking. A number is the
    households only when 户 or a space follows it."""
    from tests.test_visits import latest

    assert visits.parse_one_line("2026年3月帮王大爷代缴水费") is None
    assert visits.parse_one_line("3月5日 入户") is None
    assert visits.parse_one_line("5户帮王大爷") == (5, "帮王大爷")
    assert visits.parse_one_line("5 户 帮王大爷") == (5, "帮王大爷")
    assert visits.parse_one_line("5 帮王大爷") == (5, "帮王大爷")
    async with make_bot() as bot:
        bot.say(POLICE, POLICE, "/visit 2026年3月帮王大爷代缴水费")
        await latest(bot, POLICE, "用法：/visit")
        await bot.settle()
        async with bot.svc.store.read() as tx:
            assert await tx.open_visit(POLICE) is None
