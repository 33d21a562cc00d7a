"""Issue 15: the words a Chinese station reads — buttons in the chat's language only,
minutes as 分钟, whose deadline a card shows, the ledger's 事由 / 处理过程 / 用时, /summary's
chart and title, check-config's messages, the command line and the demo."""

from __future__ import annotations

import io
import os
import re
import subprocess
from datetime import datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from openpyxl import load_workbook

from bot import cli
from bot.dev.fakeapi import buttons
from bot.text.i18n import Texts
from tests.conftest import (
    C1_CHAT,
    HEAD1,
    POLICE,
    RESIDENT,
    ROOT,
    STAFF,
    STATION_CHAT,
    TZ,
    U1_CHAT,
    Running,
    town,
)

H = 3600.0

CATEGORIES = [
    {"key": "neighbour", "zh": "邻里纠纷", "en": "Neighbours"},
    {"key": "safety", "zh": "安全隐患", "en": "Safety hazard", "urgent": True},
    {"key": "other", "zh": "其他", "en": "Other"},
]


async def report(bot: Running, chat: int = U1_CHAT, text: str = "楼道堆放杂物", user: int = RESIDENT) -> Any:
    sent = bot.say(chat, user, f"/report {text}")
    return await bot.api.wait_for(
        lambda: next((m for m in bot.api.bot_messages(chat) if m.reply_to == sent["message_id"] and "📋" in m.text),
                     None)
    )


def labels(msg: Any) -> list[str]:
    return [label for label, _ in buttons(msg)]


# --- buttons --------------------------------------------------------------------------
async def test_buttons_speak_the_chats_language_only(make_bot: Any) -> None:
    async with make_bot() as bot:
        card = await report(bot)
        assert labels(card) == ["认领", "解决", "🏷 分类", "私下反映"]
        bot.clock.advance(1 * H)  # unclaimed: up to the community, with 接手
        up = await bot.wait_bot(C1_CHAT, "事项 #1 上报至社区")
        assert labels(up) == ["接手", "解决"]

        bot.say(U1_CHAT, HEAD1, "/lang en")
        await bot.wait_bot(U1_CHAT, "English")
        english = await report(bot, text="noise at night")
        assert labels(english) == ["Claim", "Resolve", "🏷 Category", "Report privately"]
        assert not any(any("\u4e00" <= ch <= "\u9fff" for ch in label) for label in labels(english))


# --- durations and alerts -----------------------------------------------------------------
def test_durations_under_an_hour_read_fen_zhong() -> None:
    zh, en = Texts("zh", TZ), Texts("en", TZ)
    assert zh.duration(10 * 60) == "10分钟"
    assert zh.duration(2 * H + 15 * 60) == "2小时15分钟"
    assert zh.duration(45) == "45秒"
    assert en.duration(10 * 60) == "10 min"


async def test_an_urgent_alert_does_not_say_it_waited_zero_seconds(make_bot: Any) -> None:
    async with make_bot(town(categories=CATEGORIES)) as bot:
        card = await report(bot, text="配电箱冒烟")
        bot.api.press_button(U1_CHAT, bot.user(HEAD1), card.message_id, "v1:cat:1:safety")
        alert = await bot.wait_bot(C1_CHAT, "紧急事项 #1")
        station = await bot.wait_bot(STATION_CHAT, "紧急事项 #1")
        assert "配电箱冒烟" in alert.text and "已等待" not in alert.text and "已等待" not in station.text

        # Categorised an hour and a half later, the wait is worth saying.
        bot.clock.advance(0.5 * H)
        second = await report(bot, text="燃气味很重")
        bot.clock.advance(1.5 * H)
        bot.api.press_button(U1_CHAT, bot.user(HEAD1), second.message_id, "v1:cat:2:safety")
        late = await bot.wait_bot(C1_CHAT, "紧急事项 #2")
        assert "已等待：1小时30分钟" in late.text


async def test_an_escalated_unit_card_says_whose_deadlines_it_shows(make_bot: Any) -> None:
    async with make_bot() as bot:
        card = await report(bot)
        assert "认领期限：11-24 11:00" in card.text and "社区认领期限" not in card.text
        bot.clock.advance(1 * H)
        await bot.api.wait_for(lambda: "已上报社区" in card.text)
        # The community's windows (2 h / 2 d) from its arrival at 11:00.
        assert "社区认领期限：11-24 13:00" in card.text and "社区解决期限：11-26 11:00" in card.text
        bot.clock.advance(2 * H)
        await bot.api.wait_for(lambda: "已上报派出所" in card.text)
        assert "派出所认领期限：11-24 16:00" in card.text


# --- the command line -------------------------------------------------------------------
def tierbot(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed ``tierbot`` command, as a person runs it."""
    return subprocess.run([str(ROOT / ".venv" / "bin" / "tierbot"), *args], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env=env)


def test_version_comes_from_the_package_metadata() -> None:
    done = tierbot("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"tierbot {metadata.version('tierbot')}"


def test_run_help_names_the_token_variable() -> None:
    done = tierbot("run", "--help")
    assert done.returncode == 0 and "TELEGRAM_BOT_TOKEN" in done.stdout


def test_export_with_an_unknown_node_lists_the_valid_ones(tmp_path: Path, capsys: Any) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({**town(), "database": str(tmp_path / "db.sqlite3")}, allow_unicode=True),
                      encoding="utf-8")
    code = cli.main(["export", "--config", str(config), "--from", "2026-11-01", "--to", "2026-11-30",
                     "--out", str(tmp_path / "x.csv"), "--node", "jiangmutang"])
    assert code == 2
    err = capsys.readouterr().err
    assert "'jiangmutang'" in err
    for node_id, name in (("st", "苏溪派出所"), ("c1", "蒋母塘村"), ("u1", "第一村民小组"), ("u4", "商铺街")):
        assert f"{node_id}  {name}" in err
    assert not (tmp_path / "x.csv").exists()


# --- the ledger --------------------------------------------------------------------------
async def exported(bot: Running, chat: int, user: int, command: str) -> Any:
    before = sum(1 for m in bot.api.bot_messages(chat) if m.document_name)
    bot.say(chat, user, command)
    doc = await bot.api.wait_for(lambda: [m for m in bot.api.bot_messages(chat) if m.document_name][before:])
    return load_workbook(io.BytesIO(doc[0].document_bytes or b""))


async def test_the_ledger_says_what_was_reported_how_it_went_and_how_long_it_took(make_bot: Any) -> None:
    async with make_bot() as bot:
        await report(bot, text="邻居占用楼道")
        bot.clock.advance(600)
        await bot.done(U1_CHAT, bot.say(U1_CHAT, HEAD1, "/note 1 已联系邻居"))
        await report(bot, text="家里有人动手")
        async with bot.svc.store.transaction() as tx:  # as a private report is stored
            await tx.update_matter(2, private=1)
        await bot.done(U1_CHAT, bot.say(U1_CHAT, HEAD1, "/note 2 丈夫酒后动手"))
        bot.clock.advance(3000)  # 11:00: the unit's claim window is over
        await bot.wait_bot(C1_CHAT, "事项 #1 上报至社区")
        await bot.done(C1_CHAT, bot.say(C1_CHAT, POLICE, "/note 1 此人有前科"))  # the leaders' own words
        bot.say(C1_CHAT, POLICE, "/return 1 请单元先调解")
        await bot.wait_bot(C1_CHAT, "事项 #1 已退回")
        bot.say(C1_CHAT, POLICE, "/takeover 1")
        await bot.wait_bot(C1_CHAT, "已接手事项 #1")
        bot.clock.advance(H)  # 12:00
        await bot.done(C1_CHAT, bot.say(C1_CHAT, POLICE, "/resolve 1 已调解，杂物清走"))
        await bot.settle()
        book = await exported(bot, C1_CHAT, POLICE, "/export 2026-11-23 2026-11-24")

    summary = list(book["汇总"].iter_rows(values_only=True))
    assert summary[0][0] == "蒋母塘村 台账汇总"  # title and period first, above the table
    assert summary[1][0] == "时段：2026-11-23 至 2026-11-24（Asia/Shanghai）"
    assert summary[3][:3] == ("社区", "单元", "评星") and book["汇总"].freeze_panes == "A5"

    rows = list(book["全部事项"].iter_rows(values_only=True))
    column = {name: i for i, name in enumerate(rows[0])}
    first, private = rows[1], rows[2]
    assert first[column["事由"]] == "邻居占用楼道"
    assert first[column["用时（小时）"]] == 2.0  # 10:00 to 12:00
    timeline = first[column["处理过程"]].split("\n")
    assert timeline[0].startswith("2026-11-24 10:00 上报")
    assert "2026-11-24 10:10 进展 · 用户31：已联系邻居" in timeline
    assert any(line.startswith("2026-11-24 11:00 上报至社区") for line in timeline)
    assert timeline[-1] == "2026-11-24 12:00 解决 · 用户21：已调解，杂物清走"
    joined = "\n".join(timeline)
    for internal in ("此人有前科", "接手"):  # the leaders' internal steps (bot/visibility.py)
        assert internal not in joined
    assert "退回单元 · 用户21：请单元先调解" in joined  # a return to the unit is addressed to it: public
    assert book["全部事项"].cell(row=2, column=column["处理过程"] + 1).alignment.wrap_text

    assert private[column["事由"]] == "（保密）" and private[column["报告人"]] == "（保密）"
    assert private[column["用时（小时）"]] is None  # not resolved
    assert "上报 · （保密）" in private[column["处理过程"]] and "用户901" not in private[column["处理过程"]]
    assert "进展 · 用户31" in private[column["处理过程"]] and "丈夫" not in private[column["处理过程"]]
    assert "家里有人动手" not in str(private)


async def test_a_rolling_ledger_period_shows_the_year_and_the_minutes(make_bot: Any) -> None:
    async with make_bot() as bot:
        book = await exported(bot, STATION_CHAT, STAFF, "/export week")
    period = list(book["汇总"].iter_rows(values_only=True))[1][0]
    assert period == "时段：2026-11-17 10:00 至 2026-11-24 10:00（Asia/Shanghai）"


# --- /summary ------------------------------------------------------------------------------
async def test_summary_is_titled_the_last_seven_days_and_draws_the_chart_above_the_unit(make_bot: Any) -> None:
    async with make_bot() as bot:
        await report(bot)
        bot.say(U1_CHAT, RESIDENT, "/summary")
        unit = await bot.wait_bot(U1_CHAT, "近七天")
        assert "第一村民小组 近七天（11-17 10:00 至 11-24 10:00）" in unit.text and "周报" not in unit.text

        for chat, title in ((C1_CHAT, "蒋母塘村 近七天"), (STATION_CHAT, "苏溪派出所 全镇近七天")):
            bot.say(chat, STAFF, "/summary")
            text = await bot.wait_bot(chat, title)
            photo = await bot.api.wait_for(lambda chat=chat: next(
                (m for m in bot.api.bot_messages(chat) if m.photo), None))
            messages = bot.api.bot_messages(chat)
            assert messages.index(photo) > messages.index(text)  # the chart after the text
            assert photo.text == f"📈 {title.split()[0]} · 11-17 10:00 至 11-24 10:00"
        sent = [c.params["photo"].content for c in bot.api.calls_to("sendPhoto")]
        assert len(sent) == 2 and all(png.startswith(b"\x89PNG") for png in sent)
        await bot.settle()
        assert not any(m.photo for m in bot.api.bot_messages(U1_CHAT))  # a unit's summary has no chart


# --- check-config ----------------------------------------------------------------------------
def check_config(tmp_path: Path, raw: Any, capsys: Any) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    assert cli.main(["check-config", str(path)]) == 1
    return capsys.readouterr().err


def test_check_config_says_type_errors_in_our_words(tmp_path: Path, capsys: Any) -> None:
    err = check_config(tmp_path, town(station="suxi"), capsys)
    assert "station: expected a mapping with id, name, staff, communities; got the text 'suxi'" in err
    raw = town()
    raw["station"]["communities"][0]["units"][0] = 5
    raw["deadlines"]["unit"] = "1h"
    raw["telegram"] = ["fast"]
    raw["categories"] = {"other": "其他"}
    raw["station"]["name"] = None
    err = check_config(tmp_path, raw, capsys)
    assert "station.communities[0].units[0]: expected a mapping with id, name, kind, heads; got the number 5" in err
    assert "deadlines.unit: expected a mapping with claim, resolve; got the text '1h'" in err
    assert "telegram: expected a mapping of base_url," in err and "got a list of 1" in err
    assert "categories: expected a list; got a mapping with other" in err
    assert "station.name: expected a name; got nothing" in err
    for pydantic_words in ("valid dictionary", "instance of", "Input should"):
        assert pydantic_words not in err


def test_check_config_names_every_key_path_of_a_problem_across_keys(tmp_path: Path, capsys: Any) -> None:
    raw = town(duty=[{"user": 11, "days": ["mon"]}, {"user": 999, "days": ["tue"]}])
    raw["station"]["communities"][1]["id"] = "u1"  # a community with a unit's id
    raw["station"]["communities"][1]["units"][1]["id"] = "u1"  # and a unit, too
    err = check_config(tmp_path, raw, capsys)
    assert ("station.communities[0].units[0].id and station.communities[1].id and "
            "station.communities[1].units[1].id: the same id 'u1'; every node id must be unique") in err
    assert "duty[1].user: 999 is not in station.staff; duty users must be station staff" in err
    assert "duty[0]" not in err and "(top level)" not in err
    assert "config.yaml: 2 problem(s)" in err


# --- tierbot demo --------------------------------------------------------------------------
def english_town(tmp_path: Path, **changes: Any) -> Path:
    """The sample config.yaml (no chat ids: groups bind at run time) in English, New York time."""
    raw = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    raw.update(language="en", timezone="America/New_York", **changes)
    path = tmp_path / "town.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def test_demo_plays_a_config_without_chats_in_its_language_and_time_zone(tmp_path: Path) -> None:
    path = english_town(tmp_path)
    assert "chat_id:" not in path.read_text(encoding="utf-8")
    done = tierbot("demo", "--config", str(path), env={**os.environ, "TZ": "UTC"})
    assert done.returncode == 0, done.stderr
    narration = [line for line in done.stdout.splitlines() if re.match(r"\[\s*\d+\.\ds\] ", line)]
    assert len(narration) == 10
    assert "reports a fire hazard in" in narration[0] and "Safety hazard" in narration[1]
    assert "screening for disputes" in narration[8] and "(zero-report)" in done.stdout  # issue 16's officers' side
    assert "logs it with /visit in a private chat" in narration[9]
    assert not any("她" in line or "反映" in line for line in narration)  # no Chinese narration
    assert "no token, no network" in done.stdout.splitlines()[-1]
    # The transcript's clock is New York's, not the machine's (UTC here).
    stamps = re.findall(r"^\[(\d\d):(\d\d):\d\d\] #", done.stdout, flags=re.M)
    assert stamps
    now = datetime.now(ZoneInfo("America/New_York"))
    minutes = {(now + timedelta(minutes=d)).strftime("%H:%M") for d in range(-3, 2)}
    assert f"{stamps[0][0]}:{stamps[0][1]}" in minutes
    assert "== 苏溪派出所 (-2000000000) ==" in done.stdout  # a fake chat for a node that had none


def test_demo_refuses_a_town_it_cannot_play_clearly(tmp_path: Path, capsys: Any) -> None:
    raw = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    for community in raw["station"]["communities"]:
        community["units"] = community["units"][:1]
    path = english_town(tmp_path, station=raw["station"])
    assert cli.main(["demo", "--config", str(path)]) == 1
    assert "needs station staff and a community with at least two units" in capsys.readouterr().err
    assert cli.main(["demo", "--config", str(tmp_path / "missing.yaml")]) == 1
    assert "missing.yaml: cannot read the file" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("station: suxi\n", encoding="utf-8")
    done = tierbot("demo", "--config", str(bad))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "station: expected a mapping with id, name, staff, communities; got the text 'suxi'" in done.stderr
