"""Bulletins (周报, 月通报), the five-star rating and the charts: figures checked against a
dataset built here, stars for known inputs, the chart's PNG and its font, and the monthly
bulletin end to end (sent once, also when it fell due while the bot was down)."""

from __future__ import annotations

import asyncio
import json
import struct
from datetime import datetime
from typing import Any

import pytest

from bot.clock import ManualClock
from bot.config import ConfigError
from bot.outbox import Kind
from bot.store import SummaryFacts
from bot.text import render
from bot.text.i18n import Texts
from bot.tree import Tree
from escalation import summary
from escalation.reports import bulletin, charts
from escalation.reports import stars as star_rating
from escalation.reports.bulletin import PeriodFigures, count_with_change
from escalation.summary import AtStation, Figures, unit_figures
from tests.conftest import (
    C1_CHAT,
    C2_CHAT,
    HEAD1,
    POLICE,
    RESIDENT,
    STATION_CHAT,
    TZ,
    U1_CHAT,
    U2_CHAT,
    U3_CHAT,
    Running,
    parse_town,
    town,
)

pytestmark = pytest.mark.both_engines  # on SQLite and on PostgreSQL (issue 17)

H = 3600.0
START, END = 1_000_000.0, 1_000_000.0 + 7 * 24 * H
UNITS = ["u1", "u2", "u3", "u4"]


def fact(matter_id: int, unit: str, category: str, created: float, *, claimed: float | None = None,
         resolved: float | None = None, to_community: float | None = None, to_station: float | None = None
         ) -> SummaryFacts:
    """A matter that went up only by missed deadlines (so it is overdue once it went up)."""
    top_tier = 1 if to_station is not None else 2 if to_community is not None else 3
    unclaimed = to_community if to_community is not None and (claimed is None or claimed > to_community) else None
    return SummaryFacts(unit, created, claimed, resolved, to_community, matter_id, category, top_tier,
                        to_community, to_station, unclaimed)


# Matters that exercise every figure; u3 has none at all.
FACTS = [
    # u1: reported, claimed, resolved in the unit, rated satisfied — all inside the week.
    fact(1, "u1", "neighbour", START + H, claimed=START + 2 * H, resolved=START + 5 * H),
    # u1: crosses the start: reported and sent up before the week, resolved (at the community) in it.
    fact(2, "u1", "landlord", START - 48 * H, claimed=START - 47 * H, to_community=START - 40 * H,
         resolved=START + H),
    # u1: never claimed in the unit, up to the community and then the station, still open.
    fact(3, "u1", "wages", START + 10 * H, to_community=START + 11 * H, to_station=START + 30 * H),
    # u2: crosses the end: reported just before it, resolved just after — open at the end.
    fact(4, "u2", "safety", END - H, claimed=END - 0.5 * H, resolved=END + H),
    # u2: after the week: not counted.
    fact(5, "u2", "fraud", END + H),
    # u2: resolved long before, rated in the week: only its rating counts.
    fact(6, "u2", "family", START - 100 * H, claimed=START - 99 * H, resolved=START - 50 * H),
]
# The ratings given (events): matters 1 and 2 in u1, matter 6 in u2.
RATINGS = [("u1", "satisfied", START + 6 * H, 1), ("u1", "基本满意", START + 2 * H, 1),
           ("u2", "unsatisfied", START + 3 * H, 1)]


def test_figures_of_a_dataset_with_crossing_matters_and_an_empty_unit() -> None:
    figs = unit_figures(FACTS, {"u1": 1}, UNITS, START, END, RATINGS)
    u1, u2 = figs["u1"], figs["u2"]
    assert (u1.new, u1.resolved, u1.open, u1.overdue) == (2, 2, 1, 1)
    assert (u1.to_community, u1.to_station, u1.resolved_in_unit, u1.unclaimed_up) == (1, 1, 1, 1)
    assert u1.in_unit_rate == 0.5  # of two resolved, one never left the unit (小事不出村)
    assert u1.ratings == {"satisfied": 1, "basic": 1} and u1.satisfaction == 1.0
    assert u1.categories == {"neighbour": 1, "wages": 1}
    assert u1.median_claim == H  # only the claim made in the week: matter 1 after an hour
    assert u1.median_resolve == (4 * H + 49 * H) / 2
    assert u1.at_station == [AtStation(3, "u1", "wages", START + 10 * H, START + 30 * H)]
    assert (u2.new, u2.resolved, u2.open, u2.overdue, u2.to_community) == (1, 0, 1, 0, 0)
    assert u2.ratings == {"unsatisfied": 1} and u2.satisfaction == 0.0
    assert u2.categories == {"safety": 1}
    assert figs["u3"] == Figures()
    assert star_rating.stars(figs["u3"]) is None


def test_stars_for_known_inputs() -> None:
    stars = star_rating.stars
    assert stars(Figures(resolved=10, resolved_in_unit=10)) == 5
    assert stars(Figures(resolved=10, resolved_in_unit=9)) == 5  # score 0.90 exactly
    assert stars(Figures(resolved=4, resolved_in_unit=3, open=1, overdue=1)) == 3  # score 0.656
    assert stars(Figures(open=2, overdue=2)) == 1
    assert stars(Figures(open=2, overdue=1)) == 2  # score 0.5
    assert stars(Figures(resolved=2, resolved_in_unit=2, ratings={"unsatisfied": 2})) == 4  # 0.8
    assert stars(Figures(resolved=5, resolved_in_unit=5, to_station=1)) == 3  # reached the station
    assert stars(Figures()) is None  # nothing to judge: "—", not five stars
    assert stars(Figures(ratings={"satisfied": 1})) == 5
    figs = unit_figures(FACTS, {}, UNITS, START, END, RATINGS)
    assert [stars(figs[u]) for u in UNITS] == [2, 3, None, None]
    assert star_rating.show(4) == "★★★★☆" and star_rating.show(None) == "—"
    ranked = star_rating.ranked(figs, tie_break=["u4", "u3", "u2", "u1"])
    assert ranked == [("u2", 3), ("u1", 2), ("u4", None), ("u3", None)]


def test_changes_are_shown_with_arrows() -> None:
    t = Texts("zh", TZ)
    assert count_with_change(12, 9) == "12 ↑3"
    assert count_with_change(3, 5) == "3 ↓2"
    assert count_with_change(4, 4) == "4 →"
    assert count_with_change(0, 0) == "0"
    assert bulletin.rate_with_change(0.85, 0.8, t) == "85% ↑5个百分点"
    assert bulletin.rate_with_change(None, 0.8, t) == "—"
    assert bulletin.duration_with_change(2 * H, 3 * H, t) == "2小时 ↓1小时"


def test_a_community_bulletin_compares_with_the_week_before_and_ranks_by_stars() -> None:
    tree, t = Tree(parse_town()), Texts("zh", TZ)
    period = bulletin.weekly_period(END)
    previous = [fact(10 + i, "u2", "neighbour", START - 24 * H, claimed=START - 23 * H,
                     resolved=START - 20 * H) for i in range(3)]
    facts = FACTS + previous
    figs = PeriodFigures(unit_figures(facts, {}, UNITS, START, END, RATINGS),
                         unit_figures(facts, {}, UNITS, START - 7 * 24 * H, START, RATINGS))
    (text,) = bulletin.render(tree.nodes["c1"], tree, figs, t, period)
    assert "蒋母塘村 周报" in text
    # The week before: matters 2 and 6 and three neighbour disputes reported; 6 and the
    # three resolved in their unit; 2 open at its end, sent up.
    assert "新增 3 ↓2 · 解决 2 ↓2 · 未结 2 ↑1 · 超期 1 →" in text
    assert "上报社区 1 → · 上报派出所 1 ↑1 · 小事不出村 50% ↓50个百分点" in text
    assert "群众满意度 67%（评价 3 件：满意 1 · 基本满意 1 · 不满意 1）" in text
    assert "分类：邻里纠纷 1 ↓2 · 安全隐患 1 ↑1 · 劳资纠纷 1 ↑1" in text
    assert "1. ★★★☆☆ 第二村民小组" in text and "2. ★★☆☆☆ 第一村民小组" in text
    (station, *_) = bulletin.render(tree.nodes["st"], tree, figs, t, period)
    assert "#3 蒋母塘村 · 第一村民小组 · 劳资纠纷 · 在派出所 5天18小时 · 距上报 6天14小时" in station
    assert "蒋母塘村 · 第一村民小组：1 件无人认领" in station
    assert "五星 0 · 四星 0 · 三星 1 · 二星 1 · 一星 0 · 无事项 2" in station
    english = bulletin.render(tree.nodes["u3"], tree, figs, Texts("en", TZ), period)[0]
    assert "new 0 · resolved 0 · open 0 · overdue 0" in english and "stars this period: —" in english


def test_monthly_period_is_the_calendar_month_before() -> None:
    fire = datetime(2026, 12, 1, 9, 0, tzinfo=TZ).timestamp()
    period = bulletin.monthly_period(fire, TZ)
    assert period.start == datetime(2026, 11, 1, tzinfo=TZ).timestamp()
    assert period.end == datetime(2026, 12, 1, tzinfo=TZ).timestamp()
    assert period.prev_start == datetime(2026, 10, 1, tzinfo=TZ).timestamp()
    january = bulletin.monthly_period(datetime(2027, 1, 1, 9, 0, tzinfo=TZ).timestamp(), TZ)
    assert january.month == (2026, 12)
    assert bulletin.period_label(period, Texts("zh", TZ)) == "2026年11月"


def test_monthly_bulletin_time_is_validated() -> None:
    assert parse_town(monthly_bulletin="08:30").monthly_trigger() is not None
    for bad in ("25:00", "9am", "mon 09:00"):
        with pytest.raises(ConfigError, match=r'monthly_bulletin: expected a time of day such as "09:00"'):
            parse_town(monthly_bulletin=bad)


def big_town(units: int) -> Tree:
    raw = town()
    raw["station"]["communities"][0]["units"] = [
        {"id": f"g{i}", "name": f"第{i}网格", "kind": "village", "heads": [1000 + i]} for i in range(units)
    ]
    return Tree(parse_town(station=raw["station"]))


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def test_the_chart_is_a_png_whose_font_covers_every_label() -> None:
    tree, t = big_town(30), Texts("zh", TZ)
    categories = ["neighbour", "family", "landlord", "wages", "property", "safety", "fraud", "order",
                  "traffic", "help", "other", "petition"]  # "petition" is gone from config: it is "other"
    facts = [fact(i, f"g{i % 30}", categories[i % 12], START + i * 60, resolved=START + i * 90 if i % 3 else None)
             for i in range(240)]
    weeks = [[(f"g{i % 30}", categories[i % 12], 1 + i % 4) for i in range(200) if i % 8 == week]
             for week in range(bulletin.CHART_WEEKS)]
    history = [bulletin.week_sums(tree, rows) for rows in weeks]
    unit_ids = [u.id for u in tree.units()]
    figs = PeriodFigures(unit_figures(facts, {}, unit_ids, START, END), unit_figures(facts, {}, unit_ids, 0, START),
                         history)
    period = bulletin.weekly_period(END)
    spec = bulletin.chart_spec(tree.nodes["c1"], tree, figs, t, period)
    # Twelve categories: seven drawn, the rest (with "other") summed as one "其他".
    assert len(spec["series"]) == bulletin.CHART_CATEGORIES and spec["series"][-1]["label"] == "其他"
    assert [s["label"] for s in spec["series"]].count("其他") == 1
    assert sum(map(sum, (s["values"] for s in spec["series"]))) == sum(c for rows in weeks for *_, c in rows)
    # Thirty units: the best ten and the worst ten, with a gap between.
    assert len(spec["units"]) == 21 and spec["units"][10]["gap"]
    assert spec["units"][0]["label"].endswith("★★★★★")
    texts = charts.spec_texts(spec)
    assert "蒋母塘村 · 01-12 21:46 至 01-19 21:46" in texts
    assert charts.missing_glyphs(texts) == set(), "every label has a glyph in the font: no empty boxes"
    assert charts.missing_glyphs(["\U00010000"]) == {"\U00010000"}  # the check does catch a gap
    spec["units"][0]["label"] = "$x$ 单元"  # a name, not mathematics: drawn as written
    png = charts.render_png(spec)
    width, height = png_size(png)
    assert 600 <= width <= 1200 and 600 <= height <= 2000
    assert 20_000 < len(png) < 1_000_000
    assert charts.font_path().is_file()


# --- end to end: the monthly bulletin --------------------------------------------------
DEC_1_9 = datetime(2026, 12, 1, 9, 0, tzinfo=TZ).timestamp()


def photos(bot: Running, caption: str = "2026年11月") -> dict[int, bytes]:
    """The charts sent, by chat, whose caption names the period."""
    return {c.params["chat_id"]: c.params["photo"].content for c in bot.api.calls_to("sendPhoto")
            if c.status == 200 and caption in c.params.get("caption", "")}


async def test_the_monthly_bulletin_goes_out_on_the_first_with_charts(make_bot: Any) -> None:
    async with make_bot() as bot:
        bot.say(U1_CHAT, RESIDENT, "/report 邻居占用楼道堆放杂物")
        await bot.wait_bot(U1_CHAT, "事项 #1")
        await bot.done(U1_CHAT, bot.say(U1_CHAT, HEAD1, "/resolve 1 已协调清理"))
        bot.say(U2_CHAT, RESIDENT, "/report 工厂拖欠工资")  # nobody answers: it climbs
        await bot.wait_bot(U2_CHAT, "事项 #2")
        bot.clock.advance(1.5 * H)
        await bot.wait_bot(C1_CHAT, "事项 #2 上报至社区")
        bot.clock.advance(2.5 * H)
        await bot.wait_bot(STATION_CHAT, "事项 #2 上报至派出所")
        bot.clock.set(DEC_1_9 - 60)  # Monday's weekly bulletin goes out on the way
        await bot.wait_bot(STATION_CHAT, "全镇周报")
        await bot.settle()
        assert bot.count_bot(STATION_CHAT, "月通报") == 0
        bot.clock.set(DEC_1_9 + 60)
        station = await bot.wait_bot(STATION_CHAT, "全镇月通报（2026年11月）")
        assert "新增 2 ↑2 · 解决 1 ↑1 · 未结 1 ↑1 · 超期 1 ↑1" in station.text
        assert "↑↓→ 与上月相比" in station.text
        assert "#2 蒋母塘村 · 第二村民小组 · 其他 · 在派出所" in station.text
        assert "蒋母塘村 · 第二村民小组：1 件无人认领" in station.text
        unit1 = await bot.wait_bot(U1_CHAT, "第一村民小组 月通报（2026年11月）")
        assert "本期评星：★★★★★" in unit1.text
        await bot.wait_bot(U3_CHAT, "月通报")
        await bot.api.wait_for(lambda: len(photos(bot)) == 3)
        sent = photos(bot)
        assert set(sent) == {STATION_CHAT, C1_CHAT, C2_CHAT}  # communities and the station, not units
        for png in sent.values():
            width, height = png_size(png)
            assert width >= 600 and height >= 600
        charts_in_c1 = [m.text for m in bot.api.bot_messages(C1_CHAT) if m.photo]
        assert charts_in_c1 == ["📈 蒋母塘村 · 11-23 09:00 至 11-30 09:00", "📈 蒋母塘村 · 2026年11月"]
        # The chart comes after the bulletin's text in the chat, then the officers' section (issue 16).
        assert bot.api.bot_messages(C1_CHAT)[-2].photo and "民警走访" in (bot.api.bot_messages(C1_CHAT)[-1].text or "")
        bot.clock.advance(2 * H)
        await bot.settle()
        assert bot.count_bot(STATION_CHAT, "全镇月通报") == 1 and len(bot.api.calls_to("sendPhoto")) == 6


async def test_a_monthly_bulletin_missed_while_down_is_sent_once(make_bot: Any, bot_database: str) -> None:
    database = bot_database
    async with make_bot(database=database) as bot:
        await bot.settle()
        clock = bot.clock
    clock.set(DEC_1_9 + 30 * H)  # down over the 1st, back on the 2nd at 15:00
    async with make_bot(clock=clock, database=database) as bot:
        await bot.wait_bot(STATION_CHAT, "全镇月通报")
        await bot.api.wait_for(lambda: len(photos(bot)) == 3)
        await bot.settle()
    clock.advance(1 * H)
    async with make_bot(clock=clock, database=database) as bot:  # restarted again
        await bot.settle()
        assert bot.count_bot(STATION_CHAT, "全镇月通报") == 1
        assert bot.count_bot(U1_CHAT, "月通报") == 1
        assert len(bot.api.calls_to("sendPhoto")) == 3


async def test_a_chart_that_cannot_be_drawn_does_not_hold_up_the_chat(make_bot: Any, monkeypatch: Any) -> None:
    def broken(spec: dict) -> bytes:
        raise charts.FontMissing("no font here")

    monkeypatch.setattr(charts, "render_png", broken)
    async with make_bot(clock=ManualClock(DEC_1_9 + 60)) as bot:
        bot.svc.first_started = 0.0  # as if it had been running: the bulletin is due
        await bot.wait_bot(STATION_CHAT, "全镇月通报")
        bot.say(STATION_CHAT, RESIDENT, "/chatid")
        await bot.wait_bot(STATION_CHAT, "本群 ID")

        async def failed_items() -> list[Any]:
            async with bot.svc.store.read() as tx:
                return await tx._all("SELECT key, error FROM outbox WHERE state = 'failed'")

        for _ in range(50):
            failed = await failed_items()
            if len(failed) == 3:
                break
            await asyncio.sleep(0.1)
        assert {key.rsplit(":", 2)[-2:][0] for key, _ in failed} == {"st", "c1", "c2"}
        assert all("no font here" in error for _, error in failed)


# --- kept as figures, composed when sent (issue 13) ------------------------------------------
def kept(view: dict) -> dict:
    """A view as the outbox keeps it (JSON) and the delivery worker reads it back."""
    return json.loads(json.dumps(view, ensure_ascii=False, separators=(",", ":")))


@pytest.mark.parametrize("published", [False, True])
def test_a_bulletin_kept_as_its_figures_composes_the_same_words_and_chart(published: bool) -> None:
    """What the outbox keeps of a bulletin (bulletin.view) composes, in either language, the
    very messages and chart its figures do: the words move to the moment it is sent."""
    tree = Tree(parse_town())
    period = bulletin.weekly_period(END, tz=TZ)
    facts = FACTS + [fact(10 + i, "u2", "neighbour", START - 24 * H, claimed=START - 23 * H,
                          resolved=START - 20 * H) for i in range(3)]
    history = [bulletin.week_sums(tree, [("u1", "neighbour", 1 + week), ("u3", "wages", 2)])
               for week in range(bulletin.CHART_WEEKS)]
    figs = PeriodFigures(unit_figures(facts, {"u1": 1}, UNITS, START, END, RATINGS),
                         unit_figures(facts, {}, UNITS, START - 7 * 24 * H, START, RATINGS), history)
    if published:  # every week but the first compares with what last week's bulletin showed
        figs.published = {node_id: summary.from_shown(shown) for node_id, shown in figs.shown(tree).items()}
        figs.current["u2"].private_categories = {"safety": 1}  # a unit group does not read it
    for language in ("zh", "en"):
        t = Texts(language, TZ)
        for node in tree.nodes.values():
            view = kept(bulletin.view(node, tree, figs, period))
            assert bulletin.messages(view, tree, t) == bulletin.render(node, tree, figs, t, period), node.id
            if node.tier != 3:
                assert bulletin.chart(view, tree, t) == (bulletin.chart_caption(node, t, period),
                                                         bulletin.chart_spec(node, tree, figs, t, period))


def test_a_bulletin_counted_in_another_language_shares_its_lines_out() -> None:
    """Counted as two messages, sent to a chat whose language now needs one: both parts are
    sent, each with its share of the lines, none lost."""
    tree = Tree(parse_town())
    figs = PeriodFigures(unit_figures(FACTS, {}, UNITS, START, END, RATINGS),
                         unit_figures(FACTS, {}, UNITS, START - 7 * 24 * H, START, RATINGS))
    view = kept(bulletin.view(tree.nodes["st"], tree, figs, bulletin.weekly_period(END, tz=TZ)))
    scene = render.Scene(tree, Texts("en", TZ), END, STATION_CHAT)
    (whole,) = bulletin.messages(view, tree, scene.t)
    parts = [render.compose(Kind.BULLETIN, {"bulletin": view, "part": n, "parts": 2}, scene)[0] for n in (0, 1)]
    assert all(parts) and "\n".join(parts) == whole
    assert render.compose(Kind.BULLETIN, {"bulletin": view, "part": 0, "parts": 1}, scene) == (whole, None)


async def test_a_bulletin_is_composed_in_the_chats_language_when_it_is_sent(make_bot: Any) -> None:
    """The outbox keeps a bulletin's figures, not its words: a community that switches to
    English while its monthly bulletin and chart wait reads both in English."""
    async with make_bot(clock=ManualClock(DEC_1_9 + 60)) as bot:
        bot.api.fail("sendMessage", chat_id=C1_CHAT, status=500)  # the community's bulletin waits
        bot.svc.first_started = 0.0  # as if it had been running: the bulletin is due
        await bot.wait_bot(STATION_CHAT, "全镇月通报")
        async with bot.svc.store.read() as tx:
            kept_rows = await tx._all("SELECT kind, text, data FROM outbox WHERE kind IN ('bulletin', 'chart')")
        assert kept_rows and all(text is None and data for _, text, data in kept_rows), "figures, not words"
        bot.say(C1_CHAT, POLICE, "/lang en")
        await bot.settle()
        bot.clock.advance(5)  # the retry falls due
        text = await bot.wait_bot(C1_CHAT, "蒋母塘村: monthly bulletin")
        assert "(2026-11)" in text.text
        chart = await bot.api.wait_for(lambda: next((m for m in bot.api.bot_messages(C1_CHAT) if m.photo), None))
        assert chart.text == "📈 蒋母塘村 · 2026-11"
        assert "月通报" in (await bot.wait_bot(C2_CHAT, "月通报（2026年11月）")).text  # the others as ever
