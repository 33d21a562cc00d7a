"""Ledgers (台账): /export in a leader's group sends an XLSX, opened here with openpyxl and
its rows and dates checked; refusals are polite; ``tierbot export`` writes XLSX and CSV
(UTF-8 with BOM) read back here; the catalogs have the same keys and placeholders."""

from __future__ import annotations

import asyncio
import csv
import io
import string
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from openpyxl import load_workbook

from bot import cli
from bot.text.locale import en, zh
from escalation.reports import ledger
from tests.conftest import (
    C1_CHAT,
    HEAD1,
    POLICE,
    RESIDENT,
    RESIDENT2,
    STAFF,
    START,
    STATION_CHAT,
    TZ,
    U1_CHAT,
    U2_CHAT,
    U3_CHAT,
    Running,
    town,
)
from tests.postgres import rows as db_rows

pytestmark = pytest.mark.both_engines  # on SQLite and on PostgreSQL (issue 17)

H = 3600.0


def calm_town() -> dict[str, Any]:
    """Deadlines long enough that nothing escalates while the ledger's matters are made:
    whether a sweep ran between two clock moves must not change the figures."""
    raw = town()
    raw["deadlines"]["unit"] = {"claim": "1d", "resolve": "3d"}
    return raw


HEADER = ["编号", "单元", "社区", "类别", "事由", "报告人", "上报时间", "认领时间", "解决时间", "用时（小时）",
          "最高层级", "状态", "满意度", "处理结果", "处理过程", "当前状态"]


async def town_with_matters(bot: Running) -> None:
    """Three matters in 蒋母塘村 (one private, one rated), one in 好派新城社区."""
    for chat, who, text in ((U1_CHAT, RESIDENT, "邻居占用楼道"), (U2_CHAT, RESIDENT2, "拖欠工资"),
                            (U1_CHAT, RESIDENT2, "家里有人动手"), (U3_CHAT, RESIDENT, "电动车楼道充电")):
        before = len(bot.api.bot_messages(chat))
        bot.api.send_text(chat, bot.api.user(who, "王芳" if who == RESIDENT else "刘大爷"), f"/report {text}")
        await bot.api.wait_for(lambda chat=chat, before=before: len(bot.api.bot_messages(chat)) > before)
        bot.clock.advance(600)
    await bot.done(U1_CHAT, bot.say(U1_CHAT, HEAD1, "/claim 1"))
    bot.clock.advance(H)
    await bot.done(U1_CHAT, bot.say(U1_CHAT, HEAD1, "/resolve 1 已上门协调，杂物清走"))
    async with bot.svc.store.transaction() as tx:  # what the category and rating work will record
        await tx.update_matter(1, category="neighbour", rating="satisfied", rated_at=bot.clock.now())
        await tx.add_event(1, bot.clock.now(), "rated", actor_id=RESIDENT, tier=3, detail="满意")
        await tx.update_matter(2, category="wages")
        await tx.update_matter(3, category="family", private=1)
    bot.clock.advance(60)
    await bot.settle()


def local(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, TZ).replace(tzinfo=None)


async def test_export_sends_an_xlsx_ledger_of_the_leaders_community(make_bot: Any) -> None:
    async with make_bot(calm_town()) as bot:
        await town_with_matters(bot)
        bot.say(C1_CHAT, POLICE, "/export week")
        await bot.api.wait_for(lambda: any(m.document_name for m in bot.api.bot_messages(C1_CHAT)))
        doc = next(m for m in bot.api.bot_messages(C1_CHAT) if m.document_name)
        assert doc.document_name == "蒋母塘村台账_2026-11-17_2026-11-24.xlsx"
        assert "蒋母塘村 台账" in (doc.text or "") and "共 3 件事项" in (doc.text or "")
        book = load_workbook(io.BytesIO(doc.document_bytes or b""))
        assert book.sheetnames == ["汇总", "全部事项", "家庭纠纷", "邻里纠纷", "劳资纠纷", "走访日志"]
        await bot.settle()  # once sent, the file (names and all) is not kept in the database
        assert await db_rows(bot.config.database, "SELECT state, media FROM outbox WHERE kind = 'document'") == [
            ("sent", None)]

        matters = book["全部事项"]
        assert matters.freeze_panes == "A2"
        assert matters.column_dimensions["N"].width == 50
        rows = list(matters.iter_rows(values_only=True))
        assert list(rows[0]) == HEADER
        assert [r[0] for r in rows[1:]] == [1, 2, 3]  # 好派新城社区's matter is not in it
        first = rows[1]
        assert first[1:6] == ("第一村民小组", "蒋母塘村", "邻里纠纷", "邻居占用楼道", "王芳")
        assert first[6] == local(START) and isinstance(first[6], datetime)  # real datetimes, local time
        assert first[7] == local(START + 4 * 600) and first[8] == local(START + 4 * 600 + H)
        assert first[10:14] == ("单元", "已解决", "满意", "已上门协调，杂物清走") and first[15] == "已解决"
        assert rows[3][4:6] == ("（保密）", "（保密）")  # a private report: neither words nor reporter
        assert rows[2][7] is None and rows[2][11] == "待认领"
        assert matters.cell(row=2, column=7).number_format == ledger.DATE_FORMAT

        summary = list(book["汇总"].iter_rows(values_only=True))
        assert summary[0][0] == "蒋母塘村 台账汇总" and "Asia/Shanghai" in summary[1][0]
        assert summary[3][:7] == ("社区", "单元", "评星", "新增", "解决", "未结", "超期")
        assert summary[4][:7] == ("蒋母塘村", "第一村民小组", "★★★★★", 2, 1, 1, 0)
        assert summary[5][:7] == ("蒋母塘村", "第二村民小组", "★★★★★", 1, 0, 1, 0)
        assert summary[6][:7] == ("合计", None, None, 3, 1, 2, 0)  # empty cells read back as None
        assert summary[4][10] == 1.0  # satisfaction, a number formatted as a percentage
        assert [r[0] for r in book["家庭纠纷"].iter_rows(values_only=True)] == ["编号", 3]

        # The station's ledger covers the whole town, for two whole days.
        bot.say(STATION_CHAT, STAFF, "/export 2026-11-23 2026-11-24")
        await bot.api.wait_for(lambda: any(m.document_name for m in bot.api.bot_messages(STATION_CHAT)))
        doc = next(m for m in bot.api.bot_messages(STATION_CHAT) if m.document_name)
        assert doc.document_name == "苏溪派出所台账_2026-11-23_2026-11-24.xlsx"
        rows = list(load_workbook(io.BytesIO(doc.document_bytes or b""))["全部事项"].iter_rows(values_only=True))
        assert [r[0] for r in rows[1:]] == [1, 2, 3, 4]


REFUSALS = [
    (C1_CHAT, RESIDENT, "/export week", "只有 蒋母塘村 及上级的领导可以导出台账"),
    (U1_CHAT, HEAD1, "/export week", "台账只能在社区群或派出所群里导出"),
    (C1_CHAT, POLICE, "/export", "用法：/export week"),
    (C1_CHAT, POLICE, "/export year", "用法：/export week"),
    (C1_CHAT, POLICE, "/export 2026-11-30 2026-11-01", "日期不对"),
    (C1_CHAT, POLICE, "/export 2026-13-01 2026-11-30", "日期不对"),
    (C1_CHAT, POLICE, "/export 2025-01-01 2026-11-30", "跨度不超过 366 天"),
    (-999, POLICE, "/export week", "本群还没有登记"),
]


async def test_export_refusals_are_polite(make_bot: Any) -> None:
    async with make_bot() as bot:
        for chat, user, command, answer in REFUSALS:
            before = bot.count_bot(chat, answer)
            bot.say(chat, user, command)
            await bot.api.wait_for(lambda chat=chat, answer=answer, before=before:
                                   bot.count_bot(chat, answer) > before)
        assert not bot.api.calls_to("sendDocument")


def test_ranges() -> None:
    now = START
    assert ledger.parse_range(["week"], now, TZ) == (now - 7 * 86400, now)
    assert ledger.parse_range(["MONTH"], now, TZ) == (now - 30 * 86400, now)
    start, end = ledger.parse_range(["2026-11-01", "2026-11-30"], now, TZ)
    assert start == datetime(2026, 11, 1, tzinfo=TZ).timestamp()
    assert end == datetime(2026, 12, 1, tzinfo=TZ).timestamp()
    with pytest.raises(ledger.UsageError):
        ledger.parse_range(["2026-11-01"], now, TZ)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        ledger.parse_range(["11/01/2026", "2026-11-30"], now, TZ)
    assert ledger.sheet_name("a/b:c", set()) == "a_b_c"
    taken: set[str] = set()
    assert [ledger.sheet_name("x" * 40, taken) for _ in range(2)] == ["x" * 31, "x" * 27 + " (2)"]


async def test_the_command_line_writes_xlsx_and_csv(make_bot: Any, bot_database: str, tmp_path: Path) -> None:
    async with make_bot(calm_town()) as bot:
        await town_with_matters(bot)
    raw = {**calm_town(), "database": bot_database}
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    out_csv, out_xlsx = tmp_path / "out" / "台账.csv", tmp_path / "台账.xlsx"

    def run(*args: str) -> int:
        return cli.main(["export", "--config", str(config), "--from", "2026-11-24", "--to", "2026-11-24", *args])

    assert await asyncio.to_thread(run, "--out", str(out_csv)) == 0
    data = out_csv.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")  # the BOM: Excel then reads UTF-8 Chinese right
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0] == HEADER
    assert [r[0] for r in rows[1:]] == ["1", "2", "3", "4"]
    assert rows[1][1:9] == ["第一村民小组", "蒋母塘村", "邻里纠纷", "邻居占用楼道", "王芳", "2026-11-24 10:00",
                            "2026-11-24 10:40", "2026-11-24 11:40"]
    assert rows[4][1:4] == ["3幢", "好派新城社区", "其他"]

    assert await asyncio.to_thread(run, "--out", str(out_xlsx), "--node", "c2") == 0
    book = load_workbook(out_xlsx)
    assert [r[0] for r in book["全部事项"].iter_rows(values_only=True)] == ["编号", 4]
    assert await asyncio.to_thread(run, "--out", str(tmp_path / "x.pdf")) == 2
    assert await asyncio.to_thread(run, "--out", str(out_csv), "--node", "nowhere") == 2


def test_catalogs_have_the_same_keys_and_placeholders() -> None:
    assert zh.MESSAGES.keys() == en.MESSAGES.keys()

    def fields(text: str) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name}

    for key in zh.MESSAGES:
        assert fields(zh.MESSAGES[key]) == fields(en.MESSAGES[key]), key
