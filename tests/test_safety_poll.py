"""群众安全感 (issue 16): the monthly anonymous poll in every unit group, its counts, its
closing, and the figure in the monthly bulletin; end to end through the fake Bot API with
the moving clock, and the config and the figure's arithmetic on their own."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from telegram import Bot, Update
from telegram.error import BadRequest

from bot.clock import ManualClock
from bot.config import ConfigError
from bot.dev.fakeapi import FakeBotApi, Msg
from bot.runner import ALLOWED_UPDATES
from bot.store import SafetyCount
from bot.text import render
from bot.text.i18n import Languages
from bot.tree import Tree
from escalation.reports import bulletin, service
from escalation.reports import stars as star_rating
from escalation.reports.safety import SafetyFigures
from tests.conftest import (
    C1_CHAT,
    C2_CHAT,
    HEAD3,
    POLICE,
    RESIDENT,
    STATION_CHAT,
    TZ,
    U1_CHAT,
    U2_CHAT,
    U3_CHAT,
    Running,
    parse_town,
)
from tests.postgres import rows as db_rows
from tests.test_data import watch_inbox

pytestmark = pytest.mark.both_engines  # on SQLite and on PostgreSQL (issue 17)

H = 3600.0
DAY = 86400.0
NOV_19 = datetime(2026, 11, 19, 12, 0, tzinfo=TZ).timestamp()
NOV_20_10 = datetime(2026, 11, 20, 10, 0, tzinfo=TZ).timestamp()
DEC_1_9 = datetime(2026, 12, 1, 9, 0, tzinfo=TZ).timestamp()
DEC_20_10 = datetime(2026, 12, 20, 10, 0, tzinfo=TZ).timestamp()
JAN_1_9 = datetime(2027, 1, 1, 9, 0, tzinfo=TZ).timestamp()
UNIT_CHATS = (U1_CHAT, U2_CHAT, U3_CHAT)  # u4 has no group: no poll
ZH_OPTIONS = ["很安全", "比较安全", "一般", "不太安全", "很不安全"]


def polls_in(bot: Running, chat: int) -> list[Msg]:
    return [m for m in bot.api.bot_messages(chat) if "poll" in m.raw]


def poll_calls(bot: Running, method: str = "sendPoll") -> list[Any]:
    return [c for c in bot.api.calls_to(method) if c.status == 200]


voter = iter(range(700_000, 800_000))  # residents answering, each a new person


def cast(bot: Running, chat: int, *choices: int) -> None:
    """One resident per choice answers the chat's latest poll (0 = 很安全 … 4 = 很不安全)."""
    message = polls_in(bot, chat)[-1]
    for option in choices:
        bot.api.vote(chat, message.message_id, bot.user(next(voter)), [option])


async def rows(bot: Running) -> dict[tuple[str, str], tuple[list[int] | None, int, bool]]:
    """(unit, month) → (counts, answers, closed) as the bot recorded them."""
    async with bot.svc.store.read() as tx:
        found = await tx._all("SELECT unit_id, month, counts, answers, closed_at FROM safety_polls")
    return {(unit, month): (None if counts is None else json.loads(counts), answers, closed is not None)
            for unit, month, counts, answers, closed in found}


async def until(bot: Running, check: Callable[[dict], bool], within: float = 5.0) -> dict:
    """The recorded polls, once ``check`` holds for them."""
    for _ in range(int(within / 0.05)):
        found = await rows(bot)
        if check(found):
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"polls as recorded: {await rows(bot)}")


def line(bot: Running, chat: int, title: str, contains: str) -> str:
    """The line of the bulletin titled ``title`` in the chat that contains ``contains``."""
    text = next((m.text for m in bot.api.bot_messages(chat) if title in (m.text or "")), None)
    assert text is not None, f"no {title} in chat {chat}"
    found = next((x for x in text.split("\n") if contains in x), None)
    assert found is not None, f"no {contains!r} in:\n{text}"
    return found


# --- the poll: sent once a month to every unit group ---------------------------------------
async def test_the_poll_goes_to_every_unit_group_on_the_20th_once_even_across_a_restart(make_bot: Any) -> None:
    async with make_bot() as bot:  # from 24 November: the 20th's was before the bot
        bot.say(U3_CHAT, HEAD3, "/lang en")  # this group reads English
        await bot.wait_bot(U3_CHAT, "English")
        await bot.settle()
        bot.clock.set(DEC_1_9 + 60)  # November's bulletin: no poll that month, so no line for it
        november = await bot.wait_bot(STATION_CHAT, "全镇月通报（2026年11月）")
        assert "安全感" not in november.text
        bot.clock.set(DEC_20_10 - 60)
        await bot.settle()
        assert poll_calls(bot) == []
        bot.clock.set(DEC_20_10 + 1)
        await bot.api.wait_for(lambda: all(polls_in(bot, chat) for chat in UNIT_CHATS))
        await bot.settle()
        calls = poll_calls(bot)
        assert sorted(c.params["chat_id"] for c in calls) == sorted(UNIT_CHATS)
        assert all(c.params["is_anonymous"] is True for c in calls)
        u1 = polls_in(bot, U1_CHAT)[0].raw["poll"]
        assert u1["question"] == "您觉得本村/小区治安状况如何？" and u1["is_anonymous"]
        assert [o["text"] for o in u1["options"]] == ZH_OPTIONS
        u3 = polls_in(bot, U3_CHAT)[0].raw["poll"]
        assert u3["question"] == "How safe do you feel in your village or estate?"
        assert [o["text"] for o in u3["options"]][:2] == ["Very safe", "Fairly safe"]
        found = await until(bot, lambda r: len(r) == 3)
        assert set(found) == {("u1", "2026-12"), ("u2", "2026-12"), ("u3", "2026-12")}
        bot.clock.advance(1 * H)
        await bot.settle()
        clock = bot.clock
    clock.advance(1 * H)
    async with make_bot(clock=clock) as bot:  # restarted the same day (the same database)
        await bot.settle()
        bot.clock.advance(1 * DAY)
        await bot.settle()
        assert len(poll_calls(bot)) == 3, "a restart sends no poll again"
        assert all(len(polls_in(bot, chat)) == 1 for chat in UNIT_CHATS)


async def test_a_poll_due_while_down_goes_out_once_within_its_window_and_not_after(make_bot: Any) -> None:
    async with make_bot() as bot:
        await bot.settle()
        clock = bot.clock
    clock.set(DEC_20_10 + 2 * DAY)  # down over the 20th, back on the 22nd
    async with make_bot(clock=clock) as bot:
        await bot.api.wait_for(lambda: len(poll_calls(bot)) == 3)
        found = await until(bot, lambda r: len(r) == 3)
        assert not any(closed for _, _, closed in found.values())
        # It closes when the month's poll was meant to: the 27th, not seven days from now.
        bot.clock.set(DEC_20_10 + 7 * DAY + 1)
        await bot.api.wait_for(lambda: len(poll_calls(bot, "stopPoll")) == 3)
    clock.set(datetime(2027, 1, 28, 10, 0, tzinfo=TZ).timestamp())  # down over all of January's window
    async with make_bot(clock=clock) as bot:
        await bot.settle()
        assert len(poll_calls(bot)) == 3, "a poll whose window is over is not sent late"


async def test_polls_can_be_turned_off(make_bot: Any) -> None:
    from tests.conftest import town

    async with make_bot(town(safety_poll={"enabled": False})) as bot:
        bot.clock.set(DEC_20_10 + 1)
        await bot.settle()
        bot.clock.advance(1 * H)
        await bot.settle()
        assert poll_calls(bot) == []


# --- answers, closing, and the monthly bulletin ---------------------------------------------
async def test_answers_are_counted_the_poll_is_stopped_after_a_week_and_the_bulletin_shows_the_figure(
    make_bot: Any,
) -> None:
    async with make_bot(clock=ManualClock(NOV_19)) as bot:
        bot.clock.set(NOV_20_10 + 1)
        await bot.api.wait_for(lambda: all(polls_in(bot, chat) for chat in UNIT_CHATS))
        await until(bot, lambda r: len(r) == 3)
        await bot.settle()  # the polls' ids are recorded with their messages
        # Residents answer: the bot hears of each answer as a ``poll`` update with the counts.
        cast(bot, U1_CHAT, 0, 0, 0, 1, 1, 2)  # 5 of 6 feel safe
        cast(bot, U2_CHAT, 0, 4, 4)  # 3 answers: under min_answers
        cast(bot, U3_CHAT, 1, 1, 1, 1, 1)  # 5 of 5
        found = await until(bot, lambda r: r[("u1", "2026-11")][1] == 6 and r[("u3", "2026-11")][1] == 5
                            and r[("u2", "2026-11")][1] == 3)
        assert found[("u1", "2026-11")] == ([3, 2, 1, 0, 0], 6, False)
        # A resident changes their answer: one answer each, as Telegram counts.
        message = polls_in(bot, U2_CHAT)[-1]
        changed = bot.user(700_999)
        bot.api.vote(U2_CHAT, message.message_id, changed, [3])
        bot.api.vote(U2_CHAT, message.message_id, changed, [0])
        await until(bot, lambda r: r[("u2", "2026-11")][:2] == ([2, 0, 0, 0, 2], 4))

        bot.clock.set(NOV_20_10 + 7 * DAY - 60)  # not yet
        await bot.settle()
        assert poll_calls(bot, "stopPoll") == []
        bot.clock.set(NOV_20_10 + 7 * DAY + 1)
        await bot.api.wait_for(lambda: len(poll_calls(bot, "stopPoll")) == 3)
        found = await until(bot, lambda r: all(closed for _, _, closed in r.values()))
        assert found[("u1", "2026-11")] == ([3, 2, 1, 0, 0], 6, True)
        assert all(m.raw["poll"]["is_closed"] for chat in UNIT_CHATS for m in polls_in(bot, chat))
        with pytest.raises(ValueError, match="closed"):  # Telegram takes no answer once it is stopped
            cast(bot, U1_CHAT, 4)
        bot.clock.advance(1 * DAY)
        await bot.settle()
        assert len(poll_calls(bot, "stopPoll")) == 3, "each poll is stopped once"

        # A matter in u3, resolved at once: five stars, whatever its residents answer.
        bot.say(U3_CHAT, RESIDENT, "/report 楼道灯坏了")
        await bot.wait_bot(U3_CHAT, "事项 #1")
        await bot.done(U3_CHAT, bot.say(U3_CHAT, HEAD3, "/resolve 1 已更换灯泡"))

        bot.clock.set(DEC_1_9 - 24 * H + 60)  # Monday's weekly bulletin carries no poll figure
        await bot.wait_bot(STATION_CHAT, "全镇周报")
        bot.clock.set(DEC_1_9 + 60)  # November's bulletin
        nov = "月通报（2026年11月）"
        for chat in (STATION_CHAT, C1_CHAT, C2_CHAT, *UNIT_CHATS):
            await bot.wait_bot(chat, nov)
        assert line(bot, U1_CHAT, nov, "群众安全感") == "🛡 群众安全感 83%（本月问卷 6 人作答；不计入评星）"
        assert line(bot, U2_CHAT, nov, "群众安全感") == "🛡 群众安全感 —（本月问卷 4 人作答，不足 5 人）"
        assert line(bot, U3_CHAT, nov, "群众安全感") == "🛡 群众安全感 100%（本月问卷 5 人作答；不计入评星）"
        assert line(bot, U3_CHAT, nov, "本期评星") == "本期评星：★★★★★"
        # The community and the town pool their units' answers: (5 + 2) / (6 + 4), (5 + 2 + 5) / 15.
        assert line(bot, C1_CHAT, nov, "群众安全感") == "🛡 群众安全感 70%（本月问卷 10 人作答；不计入评星）"
        assert line(bot, STATION_CHAT, nov, "群众安全感") == "🛡 群众安全感 80%（本月问卷 15 人作答；不计入评星）"
        assert line(bot, C1_CHAT, nov, "第一村民小组").endswith(" · 安全感 83%")
        assert line(bot, C1_CHAT, nov, "第二村民小组").endswith(" · 安全感 —")
        assert line(bot, STATION_CHAT, nov, "好派新城社区：").endswith(" · 安全感 100%")
        assert line(bot, STATION_CHAT, nov, "3幢：").startswith("1. ★★★★★ 好派新城社区 · 3幢：")
        weekly = [m.text or "" for m in bot.api.bot_messages(STATION_CHAT) if "周报" in (m.text or "")]
        assert weekly and all("安全感" not in text for text in weekly)

        bot.clock.set(DEC_20_10 + 1)  # December's poll
        await bot.api.wait_for(lambda: all(len(polls_in(bot, chat)) == 2 for chat in UNIT_CHATS))
        await until(bot, lambda r: len(r) == 6)
        await bot.settle()
        cast(bot, U1_CHAT, 0, 0, 0, 0, 0, 0)  # 6 of 6
        cast(bot, U3_CHAT, 0, 1, 3, 3, 4)  # 2 of 5
        await until(bot, lambda r: r[("u1", "2026-12")][1] == 6 and r[("u3", "2026-12")][1] == 5)
        bot.clock.set(DEC_20_10 + 7 * DAY + 1)
        await bot.api.wait_for(lambda: len(poll_calls(bot, "stopPoll")) == 6)
        bot.clock.set(JAN_1_9 + 60)
        dec = "月通报（2026年12月）"
        for chat in (STATION_CHAT, C1_CHAT, C2_CHAT, *UNIT_CHATS):
            await bot.wait_bot(chat, dec)
        assert line(bot, U1_CHAT, dec, "群众安全感") == "🛡 群众安全感 100% ↑17个百分点（本月问卷 6 人作答；不计入评星）"
        assert line(bot, U2_CHAT, dec, "群众安全感") == "🛡 群众安全感 —（本月问卷 0 人作答，不足 5 人）"
        assert line(bot, U3_CHAT, dec, "群众安全感") == "🛡 群众安全感 40% ↓60个百分点（本月问卷 5 人作答；不计入评星）"
        # c1: 6 / 6 against 70%; the town: 8 / 11 = 73% against 80%.
        assert line(bot, C1_CHAT, dec, "群众安全感") == "🛡 群众安全感 100% ↑30个百分点（本月问卷 6 人作答；不计入评星）"
        assert line(bot, STATION_CHAT, dec, "群众安全感") == (
            "🛡 群众安全感 73% ↓7个百分点（本月问卷 11 人作答；不计入评星）")
        assert line(bot, C2_CHAT, dec, "3幢").endswith(" · 安全感 40% ↓60个百分点")


async def test_the_safety_figure_is_no_part_of_the_stars(make_bot: Any) -> None:
    """The same month's matters give the same stars whether the residents feel safe or not."""
    async with make_bot(clock=ManualClock(NOV_19)) as bot:
        bot.say(U1_CHAT, RESIDENT, "/report 邻居噪音扰民")
        await bot.wait_bot(U1_CHAT, "事项 #1")
        bot.clock.advance(2 * H)  # unclaimed past the hour: it climbs, the unit loses stars
        await bot.wait_bot(C1_CHAT, "事项 #1 上报至社区")
        await bot.done(C1_CHAT, bot.say(C1_CHAT, POLICE, "/resolve 1 已调解"))
        bot.clock.set(NOV_20_10 + 1)
        await bot.api.wait_for(lambda: polls_in(bot, U1_CHAT))
        await until(bot, lambda r: len(r) == 3)
        await bot.settle()
        cast(bot, U1_CHAT, 0, 0, 0, 0, 0, 0, 0)  # everyone feels very safe
        await until(bot, lambda r: r[("u1", "2026-11")][1] == 7)
        bot.clock.set(DEC_1_9 + 60)
        unit = await bot.wait_bot(U1_CHAT, "月通报（2026年11月）")
        # The stars as the rating gives them from the month's matters alone.
        period = bulletin.monthly_period(DEC_1_9 + 60, TZ)
        month = await service.period_figures(bot.svc.store, bot.svc.tree, period, history=False)
        expected = star_rating.show(star_rating.stars(month.current["u1"]))
        assert expected != "★★★★★"
        assert f"本期评星：{expected}" in unit.text
        assert "🛡 群众安全感 100%" in unit.text


async def test_a_poll_that_cannot_be_sent_is_closed_and_never_stopped(make_bot: Any) -> None:
    async with make_bot() as bot:
        bot.api.remove_bot_from(U2_CHAT)  # the bot was removed from u2's group
        bot.clock.set(DEC_20_10 + 1)
        await bot.api.wait_for(lambda: polls_in(bot, U1_CHAT) and polls_in(bot, U3_CHAT))
        found = await until(bot, lambda r: r.get(("u2", "2026-12"), (None, 0, False))[2])
        assert found[("u2", "2026-12")] == (None, 0, True)
        bot.clock.set(DEC_20_10 + 7 * DAY + 1)
        await bot.api.wait_for(lambda: len(poll_calls(bot, "stopPoll")) == 2)
        await bot.settle()
        assert sorted(c.params["chat_id"] for c in poll_calls(bot, "stopPoll")) == sorted([U1_CHAT, U3_CHAT])


async def test_a_poll_deleted_in_its_group_closes_with_the_counts_last_reported(make_bot: Any) -> None:
    async with make_bot() as bot:
        bot.clock.set(DEC_20_10 + 1)
        await bot.api.wait_for(lambda: all(polls_in(bot, chat) for chat in UNIT_CHATS))
        await until(bot, lambda r: len(r) == 3)
        await bot.settle()
        cast(bot, U1_CHAT, 0, 1, 2, 2, 2)
        await until(bot, lambda r: r[("u1", "2026-12")][1] == 5)
        polls_in(bot, U1_CHAT)[0].deleted = True  # an admin deleted the poll in the group
        bot.clock.set(DEC_20_10 + 7 * DAY + 1)
        found = await until(bot, lambda r: all(closed for _, _, closed in r.values()))
        assert found[("u1", "2026-12")] == ([1, 1, 3, 0, 0], 5, True)


# --- the parts on their own ------------------------------------------------------------------
def test_the_bot_asks_telegram_for_poll_updates() -> None:
    assert "poll" in ALLOWED_UPDATES


def test_safety_poll_config_defaults_and_errors_name_the_key() -> None:
    settings = parse_town().safety_poll
    assert (settings.enabled, settings.day, settings.time, settings.open_for, settings.min_answers) == (
        True, 20, "10:00", 7 * DAY, 5)
    trigger = parse_town(safety_poll={"day": 5, "time": "08:30"}).safety_poll_trigger()
    fire = trigger.get_next_fire_time(None, datetime(2026, 12, 6, tzinfo=TZ))
    assert fire.astimezone(TZ).replace(tzinfo=None) == datetime(2027, 1, 5, 8, 30)
    for bad, says in (
        ({"day": 31}, "safety_poll.day: expected a day of the month from 1 to 28"),
        ({"time": "25:00"}, 'safety_poll.time: expected a time of day such as "10:00"'),
        ({"open_for": "30d"}, 'safety_poll.open_for: expected a duration such as "7d", at most "27d"'),
        ({"open_for": "soon"}, "safety_poll.open_for: expected a duration"),
        ({"min_answers": 0}, "safety_poll.min_answers: expected a whole number of answers (1 or more)"),
        ({"options": ["安全", "不安全"]}, "safety_poll.options: expected a list of 3 to 10 answers"),
        ({"question": "x" * 301}, "safety_poll.question: expected the question (1 to 300 characters)"),
        ({"enabled": "maybe"}, "safety_poll.enabled: expected true or false"),
        ({"dya": 3}, "safety_poll.dya: unknown key"),
    ):
        with pytest.raises(ConfigError, match=r"\n" + says.replace("(", r"\(").replace(")", r"\)")):
            parse_town(safety_poll=bad)


def test_the_poll_speaks_the_chat_s_language_unless_config_yaml_words_it() -> None:
    english = Languages("en", TZ)
    question, options = render.safety_poll(None, None, english.get(None))
    assert question == "How safe do you feel in your village or estate?"
    assert options == ("Very safe", "Fairly safe", "So-so", "Not very safe", "Not safe at all")
    assert render.safety_poll(None, None, Languages("zh", TZ).get(None))[1] == tuple(ZH_OPTIONS)
    configured = render.safety_poll("本楼治安如何？", ["好", "较好", "差"], english.get(None))
    assert configured == ("本楼治安如何？", ("好", "较好", "差"))


def test_the_figure_pools_units_and_needs_enough_answers() -> None:
    tree = Tree(parse_town())
    counts = [SafetyCount("u1", "2026-12", [3, 2, 1, 0, 0], 6), SafetyCount("u2", "2026-12", [1, 0, 0, 0, 2], 3),
              SafetyCount("u1", "2026-11", [1, 1, 1, 1, 1], 5)]
    figures = SafetyFigures.of_months(counts, "2026-12", "2026-11", min_answers=5)
    assert figures.rate(tree, "u1") == pytest.approx(5 / 6)
    assert figures.rate(tree, "u2") is None  # 3 answers
    assert figures.rate(tree, "c1") == pytest.approx(6 / 9)  # pooled: u2's answers count here
    assert figures.rate(tree, "c2") is None  # no poll answered
    assert figures.rate(tree, "st") == pytest.approx(6 / 9)
    assert figures.rate(tree, "u1", previous=True) == pytest.approx(2 / 5)
    assert figures.pooled(tree, "st") == (6, 9)


async def test_a_poll_update_is_kept_in_the_inbox_until_handled_so_a_crash_replays_it(make_bot: Any) -> None:
    async with make_bot() as bot:
        bot.clock.set(DEC_20_10 + 1)
        await bot.api.wait_for(lambda: polls_in(bot, U1_CHAT))
        await until(bot, lambda r: len(r) == 3)
        await bot.settle()
        await watch_inbox(bot.config.database)
        cast(bot, U1_CHAT, 0)
        await until(bot, lambda r: r[("u1", "2026-12")][1] == 1)
        await bot.settle()
        kept = await db_rows(bot.config.database, "SELECT kept FROM stored")
        done = await db_rows(bot.config.database, "SELECT payload IS NULL AND done_at IS NOT NULL FROM inbox "
                                                  "WHERE update_id IN (SELECT update_id FROM stored)")
    assert kept == [(1,)], "a poll update has no chat, but it is ours: replay needs it"
    assert done == [(1,)], "handled: done, and its payload dropped"


async def test_the_fake_bot_api_sends_counts_and_stops_polls_as_telegram_does() -> None:
    group = -1001
    async with FakeBotApi() as api, Bot("123:TEST", base_url=api.base_url) as bot:
        api.add_chat(group, "张家村第一组")
        sent = await bot.send_poll(group, "治安如何？", ["好", "一般", "差"], is_anonymous=True)
        assert sent.poll is not None and sent.poll.is_anonymous and not sent.poll.is_closed
        with pytest.raises(BadRequest, match=r"(?i)at least 2 option"):
            await bot.send_poll(group, "治安如何？", ["好"])
        with pytest.raises(BadRequest, match=r"(?i)question"):
            await bot.send_poll(group, "问" * 301, ["好", "差"])
        alice, bob = api.user(1, "Alice"), api.user(2, "Bob")
        api.vote(group, sent.message_id, alice, [0])
        api.vote(group, sent.message_id, bob, [2])
        api.vote(group, sent.message_id, bob, [0])  # Bob changes his answer
        updates = [Update.de_json(u, bot) for u in api.pending_updates()]
        assert [u.poll.total_voter_count for u in updates if u and u.poll] == [1, 2, 2]
        last = updates[-1].poll
        assert last is not None and last.id == sent.poll.id
        assert [o.voter_count for o in last.options] == [2, 0, 0]
        assert all(u is not None and u.poll_answer is None for u in updates), "anonymous: nobody named"
        stopped = await bot.stop_poll(group, sent.message_id)
        assert stopped.is_closed and [o.voter_count for o in stopped.options] == [2, 0, 0]
        assert api.pending_updates()[-1]["poll"]["is_closed"]  # the bot hears that it closed
        with pytest.raises(BadRequest, match=r"(?i)poll has already been closed"):
            await bot.stop_poll(group, sent.message_id)
        with pytest.raises(ValueError, match="closed"):
            api.vote(group, sent.message_id, alice, [1])
        text = await bot.send_message(group, "不是投票")
        with pytest.raises(BadRequest, match=r"(?i)message with poll to stop not found"):
            await bot.stop_poll(group, text.message_id)
        assert "📊 治安如何？ [好 2 / 一般 0 / 差 0] (closed)" in api.transcript([group])
