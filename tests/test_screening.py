"""The weekly screening for disputes (矛盾纠纷排查与零报告, issue 16): asked a day before its
deadline in each community's group; a zero-report with a tap, or findings (a unit, then a
description as a reply), each made a private matter or put on record; one reminder; a
community with no answer by the deadline named in the station's weekly bulletin."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from bot.config import ConfigError, parse_config
from tests.conftest import (
    C1_CHAT,
    C2_CHAT,
    HEAD1,
    HEAD2,
    POLICE,
    STATION_CHAT,
    TZ,
    U2_CHAT,
    Running,
    town,
)

pytestmark = pytest.mark.both_engines  # on SQLite and on PostgreSQL (issue 17)

THURSDAY_18 = datetime(2026, 11, 26, 18, 0, tzinfo=TZ).timestamp()
FRIDAY_16 = datetime(2026, 11, 27, 16, 0, tzinfo=TZ).timestamp()
MONDAY_9 = datetime(2026, 11, 30, 9, 0, tzinfo=TZ).timestamp()
ASK = "本周矛盾纠纷排查"

ON = town(screening={"enabled": True}, notice={"enabled": True})


async def _asked(bot: Running, chat: int = C1_CHAT) -> Any:
    bot.clock.set(THURSDAY_18 + 1)
    return await bot.wait_bot(chat, ASK)


def _buttons(msg: Any) -> list[str]:
    return [b["callback_data"] for row in (msg.reply_markup or {}).get("inline_keyboard", []) for b in row]


def _answers(bot: Running) -> list[str]:
    return [str(c.params.get("text") or "") for c in bot.api.calls_to("answerCallbackQuery")]


def _current(bot: Running, chat: int, message_id: int) -> Any:
    return next(m for m in bot.api.bot_messages(chat) if m.message_id == message_id)


async def test_asked_once_a_day_before_the_deadline_and_a_zero_report_is_one_tap(make_bot: Any) -> None:
    async with make_bot(ON) as bot:
        bot.clock.set(THURSDAY_18 - 60)
        await bot.settle()
        assert bot.count_bot(C1_CHAT, ASK) == 0, "not before ask_ahead"
        ask = await _asked(bot)
        await bot.wait_bot(C2_CHAT, ASK)
        zero, find = _buttons(ask)
        assert zero.startswith("sc:zero:") and find.startswith("sc:find:")
        for _ in range(3):
            bot.clock.advance(60)
            await bot.settle()
        assert bot.count_bot(C1_CHAT, ASK) == 1
        bot.api.press_button(C1_CHAT, bot.user(POLICE, "王警官"), ask.message_id, zero)
        await bot.api.wait_for(lambda: "零报告）" in (_current(bot, C1_CHAT, ask.message_id).text or "") or None)
        shown = _current(bot, C1_CHAT, ask.message_id)
        assert "本周无新增矛盾纠纷（零报告），王警官" in shown.text and not _buttons(shown)
        assert any("已记录零报告" in a for a in _answers(bot))
        bot.api.press_button(C1_CHAT, bot.user(POLICE, "王警官"), ask.message_id, zero)
        await bot.api.wait_for(lambda: any("已经上报零报告" in a for a in _answers(bot)) or None)


async def test_a_finding_names_its_unit_and_becomes_a_private_matter_or_goes_on_record(make_bot: Any) -> None:
    async with make_bot(ON) as bot:
        ask = await _asked(bot)
        police = bot.user(POLICE, "王警官")
        bot.api.press_button(C1_CHAT, police, ask.message_id, _buttons(ask)[1])
        chooser = await bot.wait_bot(C1_CHAT, "在哪个单元")
        units = _buttons(chooser)
        assert len(units) == 2, "a button per unit of the community"
        bot.api.press_button(C1_CHAT, police, chooser.message_id, units[1])  # 第二村民小组
        prompt = await bot.wait_bot(C1_CHAT, "第二村民小组」发现的矛盾纠纷")
        bot.say(C1_CHAT, POLICE, "张家和李家因宅基地边界争执 <b>", reply_to_message_id=prompt.message_id)
        card = await bot.wait_bot(C1_CHAT, "排查发现 #")
        assert "第二村民小组" in card.text and "&lt;b&gt;" in card.source and "待处理" in card.text
        await bot.api.wait_for(lambda: "发现 #" in (_current(bot, C1_CHAT, ask.message_id).text or "") or None)
        assert "待处理" in _current(bot, C1_CHAT, ask.message_id).text

        to_matter = _buttons(card)[0]
        bot.api.press_button(C1_CHAT, police, card.message_id, to_matter)  # 转为事项
        matter_card = await bot.wait_bot(U2_CHAT, "#1")
        assert "宅基地" not in matter_card.text, "private by default: the unit group does not read it"
        async with bot.svc.store.read() as tx:
            matter = await tx.matter(1)
        assert matter is not None and matter.private and matter.unit_id == "u2" and matter.reporter_id == POLICE
        await bot.api.wait_for(lambda: "已转为事项 #1" in (_current(bot, C1_CHAT, card.message_id).text or "") or None)
        assert not _buttons(_current(bot, C1_CHAT, card.message_id))
        await bot.api.wait_for(lambda: "已转为事项 #1" in (_current(bot, C1_CHAT, ask.message_id).text or "") or None)
        bot.api.press_button(C1_CHAT, police, card.message_id, to_matter)  # a stale button, pressed again
        await bot.api.wait_for(lambda: any("已经处理过了" in a for a in _answers(bot)) or None)
        async with bot.svc.store.read() as tx:
            assert await tx.matter(2) is None, "a second tap makes no second matter"

        # A second finding, put on record.
        bot.api.press_button(C1_CHAT, police, ask.message_id, _buttons(_current(bot, C1_CHAT, ask.message_id))[-1])
        await bot.api.wait_for(lambda: bot.count_bot(C1_CHAT, "在哪个单元") == 2 or None)
        chooser2 = [m for m in bot.api.bot_messages(C1_CHAT) if "在哪个单元" in (m.text or "")][-1]
        bot.api.press_button(C1_CHAT, police, chooser2.message_id, _buttons(chooser2)[0])
        prompt2 = await bot.wait_bot(C1_CHAT, "第一村民小组」发现的矛盾纠纷")
        bot.say(C1_CHAT, POLICE, "两户为停车位争吵，已当场调解", reply_to_message_id=prompt2.message_id)
        await bot.api.wait_for(lambda: bot.count_bot(C1_CHAT, "排查发现 #") == 2 or None)
        card2 = [m for m in bot.api.bot_messages(C1_CHAT) if "排查发现 #" in (m.text or "")][-1]
        bot.api.press_button(C1_CHAT, police, card2.message_id, _buttons(card2)[1])
        await bot.api.wait_for(lambda: "已化解，记录在案" in (_current(bot, C1_CHAT, card2.message_id).text or "")
                               or None)


async def test_only_the_communitys_leaders_answer(make_bot: Any) -> None:
    async with make_bot(ON) as bot:
        ask = await _asked(bot)
        for who in (HEAD1, HEAD2):
            bot.api.press_button(C1_CHAT, bot.user(who), ask.message_id, _buttons(ask)[0])
        await bot.api.wait_for(lambda: sum("只有本社区的民警" in a for a in _answers(bot)) == 2 or None)
        await bot.settle()
        assert _buttons(_current(bot, C1_CHAT, ask.message_id)), "nothing changed"


async def test_one_reminder_then_the_unanswered_are_named_in_the_stations_bulletin(make_bot: Any) -> None:
    async with make_bot(ON) as bot:
        ask = await _asked(bot)
        await bot.wait_bot(C2_CHAT, ASK)
        bot.api.press_button(C1_CHAT, bot.user(POLICE, "王警官"), ask.message_id, _buttons(ask)[0])
        await bot.api.wait_for(lambda: "零报告）" in (_current(bot, C1_CHAT, ask.message_id).text or "") or None)
        bot.clock.set(FRIDAY_16 + 1)
        reminder = await bot.wait_bot(C2_CHAT, "截止，请尽快上报")
        assert "赵警官" in reminder.text
        for _ in range(3):
            bot.clock.advance(120)
            await bot.settle()
        assert bot.count_bot(C2_CHAT, "截止，请尽快上报") == 1 and bot.count_bot(C1_CHAT, "截止，请尽快上报") == 0
        bot.clock.set(MONDAY_9 + 1)
        message = await bot.wait_bot(STATION_CHAT, "未按时完成矛盾纠纷排查", within=20)
        line = next(x for x in message.text.splitlines() if "矛盾纠纷排查" in x)
        assert "好派新城社区" in line and "蒋母塘村" not in line, "a zero-report in time is an answer"


def test_screening_config_is_checked() -> None:
    with pytest.raises(ConfigError, match=r"screening"):
        parse_config(town(screening={"ask_ahead": "1h", "remind_ahead": "2h"}))
    with pytest.raises(ConfigError, match=r"screening\.due"):
        parse_config(town(screening={"due": "someday"}))
    assert parse_config(town(screening={"enabled": False})).screening.enabled is False


async def test_the_ledger_has_a_screening_sheet(make_bot: Any) -> None:
    import io

    from openpyxl import load_workbook

    from escalation.reports import ledger, service

    async with make_bot(ON) as bot:
        ask = await _asked(bot)
        await bot.wait_bot(C2_CHAT, ASK)
        bot.api.press_button(C1_CHAT, bot.user(POLICE, "王警官"), ask.message_id, _buttons(ask)[0])
        await bot.api.wait_for(lambda: "零报告）" in (_current(bot, C1_CHAT, ask.message_id).text or "") or None)
        svc = bot.svc
        data = await service.load_ledger(svc.store, svc.tree, svc.tree.stations[0], THURSDAY_18 - 86400, MONDAY_9)
        book = load_workbook(io.BytesIO(ledger.to_xlsx(data, svc.tree, svc.texts)))
        rows = list(book["排查"].iter_rows(values_only=True))
        assert rows[0][:3] == ("社区", "截止时间", "排查结果")
        by_community = {row[0]: row for row in rows[1:]}
        assert by_community["蒋母塘村"][2] == "零报告" and by_community["蒋母塘村"][3] == "王警官"
        assert by_community["蒋母塘村"][5] == "是"
        assert by_community["好派新城社区"][2] == "未上报" and by_community["好派新城社区"][5] == "否"
        unit = await service.load_ledger(svc.store, svc.tree, svc.tree.nodes["u1"], THURSDAY_18 - 86400, MONDAY_9)
        assert "排查" not in load_workbook(io.BytesIO(ledger.to_xlsx(unit, svc.tree, svc.texts))).sheetnames
