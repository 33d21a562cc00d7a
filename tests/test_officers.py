"""The officers' section of the bulletins (issue 16): targets from config, each officer's
days in the village, visits, households, findings and the community's screening, with ↑↓
against the period before, those below target first; a month's assessment. The pure core
(escalation/officers.py) on plain data first; then end to end through the bot."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from bot.config import ConfigError, parse_config
from bot.text import render
from bot.text.i18n import Texts
from bot.tree import Tree
from escalation import officers
from escalation.officers import Officer, Targets
from escalation.reports import bulletin
from tests.conftest import (
    C1_CHAT,
    C2_CHAT,
    POLICE,
    POLICE2,
    SECRETARY,
    STATION_CHAT,
    TZ,
    U1_CHAT,
    Running,
    parse_town,
    town,
)
from tests.test_visits import log_visit

pytestmark = pytest.mark.both_engines  # on SQLite and on PostgreSQL (issue 17)

# The week of the bulletin sent Monday 30 November 2026 09:00: [Mon 23 09:00, Mon 30 09:00).
MONDAY = datetime(2026, 11, 30, 9, 0, tzinfo=TZ).timestamp()
WEEK = bulletin.weekly_period(MONDAY, tz=TZ)


def at(day: int, hour: int = 10, month: int = 11) -> float:
    return datetime(2026, month, day, hour, 0, tzinfo=TZ).timestamp()


@dataclass
class V:
    """A finished visit as bot/store/rows.Visit has it (the fields the core reads)."""

    user_id: int
    community_id: str | None
    households: int | None
    finished_at: float | None
    findings: str | None = None
    user_name: str = "someone"


def role_of(community: str, user: int) -> str:
    return {SECRETARY: "secretary", 25: "grid_worker"}.get(user, "nobody")


TWO = [Officer("c1", POLICE, "王警官"), Officer("c2", POLICE2, "赵警官")]


def test_a_day_counts_toward_the_target_only_with_a_full_visit_and_days_are_local_dates() -> None:
    visits = [
        V(POLICE, "c1", 3, at(24, 9)), V(POLICE, "c1", 4, at(24, 15)),  # two short visits: a day, not a full one
        V(POLICE, "c1", 6, at(25, 23), "王家漏水"), V(POLICE, "c1", 5, at(25, 23, ) + 1800),  # 23:30 is still the 25th
        V(POLICE, "c2", 9, at(26)),  # another community: its own row
        V(POLICE, "c1", 9, at(30, 8, 11) + 2 * 3600),  # 30 Nov 10:00: after the week's end
        V(POLICE, None, 9, at(26)), V(POLICE, "c1", 9, None),  # unfinished: not counted
    ]
    tallies = officers.tallies(visits, WEEK.start, WEEK.end, TZ, Targets())
    assert tallies[("c1", POLICE)] == officers.Tally(days=2, target_days=1, visits=4, households=18, findings=1)
    assert tallies[("c2", POLICE)].target_days == 1
    assert not officers.met(tallies[("c1", POLICE)], Targets(days_per_week=2))
    assert officers.met(tallies[("c1", POLICE)], Targets(days_per_week=1))
    assert officers.tallies(visits, WEEK.start, WEEK.end, TZ, Targets(households_per_visit=7))[("c1", POLICE)] \
        .target_days == 0


def test_rows_list_every_police_officer_rank_those_below_target_first_and_show_the_others_unranked() -> None:
    visits = [
        V(POLICE2, "c2", 8, at(25)), V(POLICE2, "c2", 8, at(26)),  # 赵: target met
        V(POLICE, "c1", 2, at(25)),  # 王: a visit, but short
        V(POLICE, "c1", 7, at(17)), V(POLICE, "c1", 7, at(18)),  # 王 the week before: more
        V(SECRETARY, "c1", 12, at(26), user_name="李书记"),  # a secretary: shown, not ranked
        V(25, "c1", 1, at(18), user_name="网格员小张"),  # a grid worker with visits only the week before
    ]
    rows = officers.rows(TWO, visits, WEEK, TZ, Targets(), role_of)
    by_user = {r.user_id: r for r in rows}
    wang, zhao, li = by_user[POLICE], by_user[POLICE2], by_user[SECRETARY]
    assert (wang.met, wang.now.days, wang.now.target_days, wang.before.days) == (False, 1, 0, 2)
    assert zhao.met and zhao.now.target_days == 2
    assert (li.ranked, li.role, li.met, li.name) == (False, "secretary", None, "李书记")
    assert by_user[25].now.visits == 0 and by_user[25].before.visits == 1
    order = [r.user_id for r in officers.ordered(rows, ["c1", "c2"])]
    assert order == [POLICE, POLICE2, SECRETARY, 25], "below target first; the unranked last"
    assert [r.user_id for r in officers.rows(TWO, [], WEEK, TZ, Targets(), role_of)] == [POLICE, POLICE2], \
        "an officer with no visit is still listed (below target)"


def test_a_month_counts_the_weeks_of_its_weekly_bulletins_and_the_weeks_whose_target_was_met() -> None:
    fire = datetime(2026, 12, 1, 9, 0, tzinfo=TZ).timestamp()
    month = bulletin.monthly_period(fire, TZ)
    from dataclasses import replace

    month = replace(month, chart_end=MONDAY)  # the last weekly bulletin of November: Mon 30th 09:00
    weeks = officers.month_weeks(month)
    ends = [datetime.fromtimestamp(end, TZ).day for _, end in weeks]
    assert ends == [2, 9, 16, 23, 30], "every weekly bulletin sent in November: each week assessed once"
    visits = [V(POLICE, "c1", 5, at(day)) for day in (3, 10, 24)] + [V(POLICE, "c1", 4, at(17))]
    rows = officers.rows(TWO, visits, month, TZ, Targets(), role_of, weeks)
    wang = next(r for r in rows if r.user_id == POLICE)
    assert (wang.weeks, wang.weeks_met, wang.met) == (5, 3, False)
    assert (wang.now.visits, wang.now.days, wang.now.target_days) == (4, 4, 3)


def test_screenings_and_a_section_per_node_cut_into_messages() -> None:
    screened = officers.screenings([("c1", True, 0), ("c2", False, 0), ("c1", True, 2)])
    assert screened["c1"] == officers.Screening(asked=2, done=2, findings=2)
    assert screened["c2"] == officers.Screening(asked=1, done=0, findings=0)
    many = [Officer("c1", 1000 + i, f"警官{i}") for i in range(officers.ROWS_PER_MESSAGE + 3)]
    rows = officers.rows(many, [], WEEK, TZ, Targets(), role_of)
    parts = officers.section(rows, ["c1"], screened, Targets(), bulletin.Kind.WEEKLY)
    assert [len(p["rows"]) for p in parts] == [officers.ROWS_PER_MESSAGE, 3]
    assert [(p["part"], p["parts"]) for p in parts] == [(0, 2), (1, 2)]
    assert parts[0]["screenings"] == {"c1": {"asked": 2, "done": 2, "findings": 2}}
    assert officers.section(rows, ["c2"], screened, Targets(), bulletin.Kind.WEEKLY) == []


def test_a_section_part_has_a_key_of_its_own_beside_its_bulletins() -> None:
    from bot import outbox

    part = outbox.OfficersPart("weekly:2026-11-30T01:00:00+00:00", "c1", -5, {"part": 1, "rows": []})
    row = part.row(1.0)
    assert (row[0], row[2]) == ("weekly:2026-11-30T01:00:00+00:00:c1:officers:1", "officers")
    assert part.key != outbox.BulletinPart("weekly:2026-11-30T01:00:00+00:00", "c1", 1, -5, {}).key
    assert row[8] == '{"part":1,"rows":[]}' and row[4] is None, "its rows, no words: composed when sent"


def test_a_full_part_fits_one_message_in_either_language_whatever_the_names() -> None:
    raw = town()
    raw["station"]["communities"][0]["name"] = "长" * 60
    tree = Tree(parse_config(raw))
    fire = datetime(2026, 12, 1, 9, 0, tzinfo=TZ).timestamp()
    from dataclasses import replace

    month = replace(bulletin.monthly_period(fire, TZ), chart_end=MONDAY)
    many = [Officer("c1", 1000 + i, "W" * 64) for i in range(officers.ROWS_PER_MESSAGE)]
    visits = [V(1000 + i, "c1", 99999, at(3), "x") for i in range(officers.ROWS_PER_MESSAGE)]
    rows = officers.rows(many, visits, month, TZ, Targets(), role_of, officers.month_weeks(month))
    screened = officers.screenings([("c1", True, 9999)])
    for kind in (bulletin.Kind.WEEKLY, bulletin.Kind.MONTHLY):
        part = officers.section(rows, ["c1", "c2"], screened, Targets(7, 1000), kind)[0]
        for language in ("zh", "en"):
            text, _ = render.compose("officers", part, render.Scene(tree, Texts(language, TZ), MONDAY, STATION_CHAT))
            assert len(text) <= render.TELEGRAM_TEXT and "W" * 24 not in text and "长" * 24 not in text


def _compose(rows: list[officers.Row], communities: list[str], kind: str = bulletin.Kind.WEEKLY,
             language: str = "zh") -> str:
    tree = Tree(parse_town())
    screened = officers.screenings([("c1", True, 0), ("c2", False, 0)])
    (part,) = officers.section(rows, communities, screened, Targets(), kind)
    text, buttons = render.compose("officers", part, render.Scene(tree, Texts(language, TZ), MONDAY, STATION_CHAT))
    assert buttons is None
    return text


def test_the_section_is_composed_with_arrows_marks_screening_and_escaped_names() -> None:
    visits = [V(POLICE2, "c2", 8, at(25)), V(POLICE, "c1", 2, at(25)), V(POLICE, "c1", 7, at(17)),
              V(POLICE, "c1", 7, at(18)), V(SECRETARY, "c1", 12, at(26), "打架", user_name="<b>李</b>")]
    rows = officers.rows(TWO, visits, WEEK, TZ, Targets(), role_of)
    text = _compose(rows, ["c1", "c2"])
    lines = text.splitlines()
    assert "每周驻村 1 天" in lines[0] and "不少于 5 户" in lines[0]
    assert lines[1].startswith("⚠️ 王警官（蒋母塘村）：驻村天数 1 ↓1（满 5 户的 0 天） · 走访次数 1 ↓1 · 入户 2 ↓12")
    assert "排查 ✅ 零报告" in lines[1]
    assert lines[2].startswith("✅ 赵警官（好派新城社区）：驻村天数 1 ↑1") and "排查 ❌ 未按时上报" in lines[2]
    assert "不排名" in lines[3]
    assert lines[4].startswith("• &lt;b&gt;李&lt;/b&gt;（书记）（蒋母塘村）") and "发现 1 ↑1" in lines[4]
    community = _compose([r for r in rows if r.community_id == "c1"], ["c1"], language="en")
    assert "(蒋母塘村)" not in community and "王警官:" in community, "a community's own section omits its name"


def test_the_monthly_section_adds_an_assessment_line_per_officer() -> None:
    fire = datetime(2026, 12, 1, 9, 0, tzinfo=TZ).timestamp()
    from dataclasses import replace

    month = replace(bulletin.monthly_period(fire, TZ), chart_end=MONDAY)
    visits = [V(POLICE, "c1", 5, at(day)) for day in (3, 10, 24)] + [V(SECRETARY, "c1", 5, at(3))]
    rows = officers.rows(TWO, visits, month, TZ, Targets(), role_of, officers.month_weeks(month))
    lines = _compose(rows, ["c1", "c2"], bulletin.Kind.MONTHLY).splitlines()
    assert "月度考核" in lines[0]
    assert lines[1].startswith("⚠️ 赵警官") and lines[2] == "　📋 月度考核：5 周中 0 周达标"
    assert lines[3].startswith("⚠️ 王警官") and lines[4] == "　📋 月度考核：5 周中 3 周达标"
    assert "排查 1/1 周按时" in lines[3]
    assert not any("月度考核" in line for line in lines[6:]), "the unranked have no assessment"


def test_visit_targets_are_configured_and_checked() -> None:
    config = parse_config(town())
    assert (config.visits.days_per_week, config.visits.households_per_visit) == (1, 5)
    config = parse_config(town(visits={"days_per_week": 2, "households_per_visit": 8}))
    assert (config.visits.days_per_week, config.visits.households_per_visit) == (2, 8)
    with pytest.raises(ConfigError, match=r"visits\.days_per_week"):
        parse_config(town(visits={"days_per_week": 8}))
    with pytest.raises(ConfigError, match=r"visits\.households_per_visit"):
        parse_config(town(visits={"households_per_visit": 0}))
    with pytest.raises(ConfigError, match=r"visits\.days"):
        parse_config(town(visits={"days": 1}))


# --- end to end: a week of visits through the bot, the bulletins' sections -----------------
GRID = 41  # c1's grid worker (网格员)
THURSDAY_18 = datetime(2026, 11, 26, 18, 0, tzinfo=TZ).timestamp()
DEC_1_9 = datetime(2026, 12, 1, 9, 0, tzinfo=TZ).timestamp()


def officers_town() -> dict[str, Any]:
    raw = town(screening={"enabled": True})
    raw["station"]["communities"][0]["grid_workers"] = [{"id": GRID, "name": "孙网格员"}]
    return raw


async def insert_visit(bot: Running, user: int, name: str, community: str, households: int, finished: float,
                       findings: str | None = None) -> None:
    """A finished entry written through the visit log's own queries (for weeks before the
    clock's start, which the bot cannot be driven through)."""
    async with bot.svc.store.transaction() as tx:
        await tx.start_visit(user, name, user, finished, community_id=community, step="done", households=households,
                             units=[bot.svc.tree.units_under(community)[0].id], deed="走访", findings=findings,
                             finished_at=finished)


def section_of(bot: Running, chat: int, title: str = "民警走访") -> list[str]:
    messages = [m.text for m in bot.api.bot_messages(chat) if (m.text or "").startswith(f"👮 {title}（")]
    assert len(messages) == 1, messages
    return messages[0].splitlines()


async def test_a_week_of_visits_in_the_station_and_community_bulletins(make_bot: Any) -> None:
    async with make_bot(officers_town()) as bot:
        # The week before (16–23 November): 王 met the target, 赵 did not visit.
        await insert_visit(bot, POLICE, "王警官", "c1", 6, at(18))
        await insert_visit(bot, POLICE, "王警官", "c1", 5, at(19))
        # This week, through the bot: 王 visits 3 households (short of 5: no day toward the
        # target), his secretary 8 and the grid worker 2 (shown, not ranked); 赵 visits 5.
        await log_visit(bot, POLICE, households="3", findings="张家与李家因排水沟争吵")
        await log_visit(bot, SECRETARY, households="8")
        await log_visit(bot, GRID, households="2")
        await log_visit(bot, POLICE2, units=("3幢",), households="5")
        # The week's screening: 蒋母塘村 a zero-report in time, 好派新城社区 no answer.
        bot.clock.set(THURSDAY_18 + 1)
        ask = await bot.wait_bot(C1_CHAT, "本周矛盾纠纷排查")
        zero = next(data for text, data in bot.api.buttons(ask) if "零报告" in text)
        bot.api.press_button(C1_CHAT, bot.user(POLICE, "王警官"), ask.message_id, zero)
        await bot.api.wait_for(lambda: "零报告）" in (next(
            m for m in bot.api.bot_messages(C1_CHAT) if m.message_id == ask.message_id).text or "") or None)
        bot.clock.set(MONDAY + 1)
        await bot.wait_bot(STATION_CHAT, "👮 民警走访", within=20)
        await bot.wait_bot(C1_CHAT, "👮 民警走访")
        await bot.wait_bot(C2_CHAT, "👮 民警走访")
        station = section_of(bot, STATION_CHAT)
        assert "每周驻村 1 天" in station[0] and "不少于 5 户" in station[0]
        assert station[1].startswith("⚠️ 王警官（蒋母塘村）：驻村天数 1 ↓1（满 5 户的 0 天） · 走访次数 1 ↓1 · "
                                     "入户 3 ↓8 · 发现 1 ↑1 · 排查 ✅ 零报告"), "below target first"
        assert station[2].startswith("✅ 赵警官（好派新城社区）：驻村天数 1 ↑1 · 走访次数 1 ↑1 · 入户 5 ↑5")
        assert station[2].endswith("排查 ❌ 未按时上报")
        assert "不排名" in station[3]
        assert station[4].startswith("• 李书记（书记）（蒋母塘村）：驻村天数 1 ↑1")
        assert station[5].startswith("• 孙网格员（网格员）（蒋母塘村）") and len(station) == 6
        assert not any("月度考核" in line for line in station)
        community = section_of(bot, C1_CHAT)
        assert [line.split("：")[0] for line in community[1:]] == ["⚠️ 王警官", community[2].split("：")[0],
                                                                   "• 李书记（书记）", "• 孙网格员（网格员）"]
        assert not any("赵警官" in line or "（蒋母塘村）" in line for line in community), "its own officers only"
        assert [line.split("：")[0] for line in section_of(bot, C2_CHAT)[1:]] == ["✅ 赵警官"]
        assert bot.count_bot(U1_CHAT, "民警走访") == 0, "a unit's bulletin has no officers' section"
        # In the same batch as the bulletin: after it and its chart in the station's chat.
        texts = [m.text or "" for m in bot.api.bot_messages(STATION_CHAT)]
        assert texts.index(next(x for x in texts if "全镇周报" in x)) < texts.index(station_text(texts))


def station_text(texts: list[str]) -> str:
    return next(x for x in texts if x.startswith("👮 民警走访"))


async def test_the_monthly_bulletin_assesses_each_officer_by_the_weeks_of_the_month(make_bot: Any) -> None:
    raw = officers_town()
    raw["visits"] = {"days_per_week": 1, "households_per_visit": 5}
    async with make_bot(raw) as bot:
        for day in (3, 10, 18):  # 王: on target in the weeks ending 9, 16 and 23 November
            await insert_visit(bot, POLICE, "王警官", "c1", 5, at(day))
        await insert_visit(bot, POLICE2, "赵警官", "c2", 4, at(11))  # short: no week on target
        await log_visit(bot, POLICE, households="7")  # the week ending 30 November, through the bot
        bot.clock.set(MONDAY + 60)
        await bot.wait_bot(STATION_CHAT, "👮 民警走访（", within=20)
        bot.clock.set(DEC_1_9 + 60)
        await bot.wait_bot(STATION_CHAT, "民警走访·月度考核", within=20)
        station = section_of(bot, STATION_CHAT, "民警走访·月度考核")
        assert station[1].startswith("⚠️ 赵警官（好派新城社区）：驻村天数 1 ↑1（满 5 户的 0 天） · "
                                     "走访次数 1 ↑1 · 入户 4 ↑4")
        assert station[2] == "　📋 月度考核：5 周中 0 周达标"
        assert station[3].startswith("⚠️ 王警官（蒋母塘村）：驻村天数 4 ↑4 · 走访次数 4 ↑4 · 入户 22 ↑22")
        assert station[4] == "　📋 月度考核：5 周中 4 周达标"
        await bot.wait_bot(C1_CHAT, "民警走访·月度考核")
        community = section_of(bot, C1_CHAT, "民警走访·月度考核")
        assert community[1].startswith("⚠️ 王警官：")
        assert community[2] == "　📋 月度考核：5 周中 4 周达标"
        weekly = section_of(bot, STATION_CHAT)  # Monday 30th's
        assert weekly[1].startswith("⚠️ 赵警官") and weekly[2].startswith("✅ 王警官")
        assert not any("月度考核" in line for line in weekly)


async def test_targets_from_config_decide_who_is_below(make_bot: Any) -> None:
    raw = officers_town()
    raw["visits"] = {"days_per_week": 2, "households_per_visit": 3}
    async with make_bot(raw) as bot:
        await log_visit(bot, POLICE, households="3")  # a full visit at 3 households, but one day of two
        bot.clock.advance(24 * 3600)
        await log_visit(bot, POLICE, households="4")
        await log_visit(bot, POLICE2, units=("3幢",), households="9")
        bot.clock.set(MONDAY + 1)
        await bot.wait_bot(STATION_CHAT, "👮 民警走访", within=20)
        station = section_of(bot, STATION_CHAT)
        assert "每周驻村 2 天" in station[0] and "不少于 3 户" in station[0]
        assert station[1].startswith("⚠️ 赵警官") and station[2].startswith("✅ 王警官（蒋母塘村）：驻村天数 2 ↑2 ·")
