"""The weekly safety notice to the village (治安通报, issue 16): drafted from the week's
figures on Friday 16:00, posted to each community's group for its officer, who publishes
it to every unit group, edits it by replying to a prompt, or skips it; a draft left for a
day is named in the station's weekly bulletin."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from bot.config import ConfigError, parse_config
from tests.conftest import (
    C1_CHAT,
    C2_CHAT,
    HEAD1,
    POLICE,
    RESIDENT,
    SECRETARY,
    STATION_CHAT,
    TZ,
    U1_CHAT,
    U2_CHAT,
    U3_CHAT,
    Running,
    town,
)

pytestmark = pytest.mark.both_engines  # on SQLite and on PostgreSQL (issue 17)

FRIDAY_16 = datetime(2026, 11, 27, 16, 0, tzinfo=TZ).timestamp()
MONDAY_9 = datetime(2026, 11, 30, 9, 0, tzinfo=TZ).timestamp()
DRAFT = "本周治安通报（草稿"

ON = town(notice={"enabled": True}, screening={"enabled": True})


async def _draft(bot: Running, chat: int) -> Any:
    bot.clock.set(FRIDAY_16 + 1)
    return await bot.wait_bot(chat, DRAFT)


def _buttons(msg: Any) -> list[str]:
    markup = msg.reply_markup or {}
    return [b["callback_data"] for row in markup.get("inline_keyboard", []) for b in row]


def _answers(bot: Running) -> list[str]:
    return [str(c.params.get("text") or "") for c in bot.api.calls_to("answerCallbackQuery")]


async def test_each_community_gets_one_draft_from_its_week_with_the_officers_buttons(make_bot: Any) -> None:
    async with make_bot(ON) as bot:
        bot.say(U1_CHAT, RESIDENT, "/report 楼道里堆满杂物，有火灾隐患")
        await bot.wait_bot(U1_CHAT, "#1")
        draft = await _draft(bot, C1_CHAT)
        assert "蒋母塘村 本周治安通报（草稿" in draft.text
        assert "共收到群众反映 1 件" in draft.text and "防诈骗提醒" in draft.text
        assert [d.split(":")[1] for d in _buttons(draft)] == ["pub", "edit", "skip"]
        other = await bot.wait_bot(C2_CHAT, DRAFT)
        assert "未收到新的群众反映" in other.text, "a community with no report this week is told it is calm"
        for _ in range(3):  # later sweeps, the same week: no second draft
            bot.clock.advance(60)
            await bot.settle()
        assert bot.count_bot(C1_CHAT, DRAFT) == 1 and bot.count_bot(C2_CHAT, DRAFT) == 1
        assert bot.count_bot(U1_CHAT, "治安通报") == 0, "nothing reaches the unit groups before it is published"


async def test_a_draft_is_drafted_once_across_a_restart(make_bot: Any, tmp_path: Any) -> None:
    async with make_bot(ON) as bot:
        await _draft(bot, C1_CHAT)
        clock = bot.clock
    async with make_bot(ON, clock=clock) as bot:
        bot.clock.advance(60)
        await bot.settle()
        assert bot.count_bot(C1_CHAT, DRAFT) == 1


async def test_the_officer_edits_by_replying_then_publishes_to_every_unit_group_once(make_bot: Any) -> None:
    async with make_bot(ON) as bot:
        draft = await _draft(bot, C1_CHAT)
        notice_id = _buttons(draft)[0].split(":")[2]
        bot.api.press_button(C1_CHAT, bot.user(SECRETARY, "李书记"), draft.message_id, f"vn:edit:{notice_id}")
        prompt = await bot.wait_bot(C1_CHAT, "请回复本消息")
        asked = [c for c in bot.api.calls_to("sendMessage") if "的新全文" in str(c.params.get("text"))]
        assert "force_reply" in str(asked[0].params.get("reply_markup")) and "selective" in str(asked[0].params)
        assert prompt.reply_to == draft.message_id
        new = "本周村里一切平安。<b>请注意</b>防范电信诈骗 & 陌生来电。"
        bot.say(C1_CHAT, SECRETARY, new, reply_to_message_id=prompt.message_id)
        await bot.wait_bot(C1_CHAT, f"已更新通报 #{notice_id} 的草稿")
        await bot.api.wait_for(lambda: "本周村里一切平安" in (bot.api.messages(C1_CHAT)[0].text or "") or None)
        shown = next(m for m in bot.api.bot_messages(C1_CHAT) if m.message_id == draft.message_id)
        assert new in shown.text and "&lt;b&gt;" in shown.source, "the officer's words are shown as written"
        assert _buttons(shown), "still a draft: its buttons stay"

        bot.api.press_button(C1_CHAT, bot.user(POLICE, "王警官"), draft.message_id, f"vn:pub:{notice_id}")
        for chat in (U1_CHAT, U2_CHAT):
            copy = await bot.wait_bot(chat, "本周村里一切平安")
            assert "蒋母塘村" in copy.text and "&lt;b&gt;请注意&lt;/b&gt;" in copy.source
        await bot.wait_bot(C1_CHAT, "已由 王警官")
        shown = next(m for m in bot.api.bot_messages(C1_CHAT) if m.message_id == draft.message_id)
        assert "✅ 已由 王警官" in shown.text and not _buttons(shown), "published: no buttons left"
        await bot.settle()
        assert bot.count_bot(U3_CHAT, "本周村里一切平安") == 0, "another community's groups hear nothing"

        bot.api.press_button(C1_CHAT, bot.user(POLICE, "王警官"), draft.message_id, f"vn:pub:{notice_id}")
        await bot.api.wait_for(lambda: any("已处理过了" in a for a in _answers(bot)) or None)
        await bot.settle()
        assert bot.count_bot(U1_CHAT, "本周村里一切平安") == 1, "a second tap sends nothing twice"


async def test_only_the_communitys_leaders_may_handle_it(make_bot: Any) -> None:
    async with make_bot(ON) as bot:
        draft = await _draft(bot, C1_CHAT)
        notice_id = _buttons(draft)[0].split(":")[2]
        for who in (HEAD1, RESIDENT):
            bot.api.press_button(C1_CHAT, bot.user(who), draft.message_id, f"vn:pub:{notice_id}")
        await bot.api.wait_for(lambda: sum("只有本社区的民警" in a for a in _answers(bot)) == 2 or None)
        await bot.settle()
        assert bot.count_bot(U1_CHAT, "治安通报") == 0 and bot.count_bot(U1_CHAT, "防诈骗提醒") == 0
        # A reply to the prompt by someone else changes nothing either.
        bot.api.press_button(C1_CHAT, bot.user(POLICE, "王警官"), draft.message_id, f"vn:edit:{notice_id}")
        prompt = await bot.wait_bot(C1_CHAT, "请回复本消息")
        bot.say(C1_CHAT, RESIDENT, "我来改一下", reply_to_message_id=prompt.message_id)
        await bot.wait_bot(C1_CHAT, "只有本社区的民警")
        shown = next(m for m in bot.api.bot_messages(C1_CHAT) if m.message_id == draft.message_id)
        assert "我来改一下" not in shown.text


async def test_a_skipped_or_forgotten_draft_is_named_in_the_stations_weekly_bulletin(make_bot: Any) -> None:
    async with make_bot(ON) as bot:
        draft = await _draft(bot, C1_CHAT)
        await bot.wait_bot(C2_CHAT, DRAFT)
        notice_id = _buttons(draft)[0].split(":")[2]
        bot.api.press_button(C1_CHAT, bot.user(POLICE, "王警官"), draft.message_id, f"vn:pub:{notice_id}")
        await bot.wait_bot(U1_CHAT, "防诈骗提醒")
        bot.clock.set(MONDAY_9 + 1)
        late = await bot.wait_bot(STATION_CHAT, "未按时发布治安通报", within=20)
        line = next(x for x in late.text.splitlines() if "治安通报" in x)
        assert "好派新城社区" in line and "蒋母塘村" not in line


async def test_a_skip_is_shown_on_the_draft_and_sends_nothing(make_bot: Any) -> None:
    async with make_bot(ON) as bot:
        draft = await _draft(bot, C1_CHAT)
        notice_id = _buttons(draft)[0].split(":")[2]
        bot.api.press_button(C1_CHAT, bot.user(POLICE, "王警官"), draft.message_id, f"vn:skip:{notice_id}")
        await bot.wait_bot(C1_CHAT, "本周不发")
        await bot.settle()
        shown = next(m for m in bot.api.bot_messages(C1_CHAT) if m.message_id == draft.message_id)
        assert "本周不发（王警官" in shown.text and not _buttons(shown)
        assert bot.count_bot(U1_CHAT, "防诈骗提醒") == 0


async def test_disabled_or_wrong_config() -> None:
    with pytest.raises(ConfigError, match=r"notice\.due"):
        parse_config(town(notice={"due": "friday"}))
    assert parse_config(town(notice={"enabled": False, "due": "thu 10:30"})).notice.due == "thu 10:30"


async def test_disabled_drafts_nothing(make_bot: Any) -> None:
    async with make_bot(town(notice={"enabled": False})) as bot:
        bot.clock.set(FRIDAY_16 + 1)
        await bot.settle()
        bot.clock.advance(60)
        await bot.settle()
        assert bot.count_bot(C1_CHAT, DRAFT) == 0
