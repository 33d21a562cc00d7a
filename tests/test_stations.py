"""A city: several stations in one config (issue 17). Each station is a tree of its own with
its own staff, duty roster, chat and bulletins; ids and chats are unique city-wide."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

import pytest
import yaml

from bot.config import ConfigError, parse_config
from bot.store import Store
from escalation import weekly
from tests.conftest import (
    C1_CHAT,
    HEAD1,
    RESIDENT,
    ROOT,
    STAFF,
    STATION_CHAT,
    TOWN,
    TZ,
    U1_CHAT,
    U2_CHAT,
    Running,
    town,
)

H = 3600.0
NOV_30_9 = datetime(2026, 11, 30, 9, 0, tzinfo=TZ).timestamp()  # the Monday after START
DEC_1_9 = NOV_30_9 + 86400
DEC_7_9 = NOV_30_9 + 7 * 86400
B_STATION_CHAT, C5_CHAT, U5_CHAT = -500, -400, -401
B_STAFF, B_STAFF2, B_POLICE, B_HEAD = 41, 42, 51, 61
ALL_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def city() -> dict[str, Any]:
    """The test town's station and a second one, 城南派出所, each with its own watch."""
    raw = town()
    first = raw.pop("station")
    first["duty"] = [{"user": STAFF, "days": ALL_DAYS}]
    second = {
        "id": "st2",
        "name": "城南派出所",
        "chat_id": B_STATION_CHAT,
        "staff": [{"id": B_STAFF, "name": "林所长"}, {"id": B_STAFF2, "name": "何警官"}],
        "duty": [{"user": B_STAFF2, "days": ALL_DAYS}],
        "communities": [{
            "id": "c5", "name": "城南社区", "kind": "estate", "chat_id": C5_CHAT,
            "police": [{"id": B_POLICE, "name": "孔警官"}], "secretaries": [52],
            "units": [{"id": "u5", "name": "城南5幢", "kind": "estate", "chat_id": U5_CHAT,
                       "heads": [{"id": B_HEAD, "name": "钟楼长"}]}],
        }],
    }
    raw["stations"] = [first, second]
    return raw


def errors_of(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    return str(caught.value)


def test_a_city_is_a_list_of_stations_and_a_town_still_one() -> None:
    config = parse_config(city())
    assert [st.id for st in config.stations] == ["st", "st2"]
    assert [s.user for s in config.stations[1].duty] == [B_STAFF2]
    one = parse_config(town(duty=[{"user": STAFF, "days": ["mon"]}]))
    assert [st.id for st in one.stations] == ["st"] and [s.user for s in one.stations[0].duty] == [STAFF]


def test_ids_and_chats_clashing_across_stations_are_refused_with_their_key_paths() -> None:
    raw = city()
    raw["stations"][1]["communities"][0]["units"][0]["id"] = "u1"
    raw["stations"][1]["communities"][0]["chat_id"] = C1_CHAT
    raw["stations"][1]["id"] = "st"
    message = errors_of(raw)
    assert ("stations[0].communities[0].units[0].id and stations[1].communities[0].units[0].id: the same id 'u1'"
            in message)
    assert "stations[0].id and stations[1].id: the same id 'st'" in message
    assert "stations[0].communities[0].chat_id and stations[1].communities[0].chat_id: the same chat -200" in message


def test_a_city_has_one_form_and_each_station_its_own_watch() -> None:
    both = city()
    both["station"] = copy.deepcopy(TOWN["station"])
    assert "station, stations: expected exactly one of them" in errors_of(both)
    neither = city()
    del neither["stations"]
    assert "station, stations: expected exactly one of them" in errors_of(neither)
    shared = city()
    shared["duty"] = [{"user": STAFF, "days": ["mon"]}]
    assert "duty: with stations:, each station has its own duty: list" in errors_of(shared)
    wrong = city()
    wrong["stations"][1]["duty"] = [{"user": STAFF, "days": ["mon"]}]  # the first station's staff
    assert "stations[1].duty[0].user: 11 is not in stations[1].staff" in errors_of(wrong)
    bad = city()
    bad["stations"][1]["communities"][0]["units"][0]["kind"] = "castle"
    assert "stations[1].communities[0].units[0].kind: expected one of village" in errors_of(bad)


def test_config_yamls_commented_city_is_valid() -> None:
    """config.yaml's commented example of the list form, uncommented in place of its station:."""
    text = (ROOT / "config.yaml").read_text(encoding="utf-8")
    block = text[text.index("# stations:"):].splitlines()
    city_form = yaml.safe_load("\n".join(line.removeprefix("# ").removeprefix("#") for line in block))
    raw = yaml.safe_load(text)
    del raw["station"], raw["duty"]
    config = parse_config({**raw, **city_form})
    assert [st.id for st in config.stations] == ["suxi", "chengnan"] and len(config.stations[0].duty) == 1


async def report(bot: Running, chat: int, text: str) -> None:
    sent = bot.say(chat, RESIDENT, f"/report {text}")
    await bot.api.wait_for(lambda: any(m.reply_to == sent["message_id"] and "📋" in m.text
                                       for m in bot.api.bot_messages(chat)))


async def test_each_station_pings_its_own_watch_and_bulletins_count_its_own(make_bot: Any) -> None:
    async with make_bot(city()) as bot:
        await report(bot, U1_CHAT, "楼道堆放杂物")  # 1, station st
        await report(bot, U2_CHAT, "邻居噪音")  # 2, station st
        await report(bot, U5_CHAT, "拖欠工资")  # 3, station st2
        await bot.done(U1_CHAT, bot.say(U1_CHAT, HEAD1, "/resolve 1 已清理"))
        bot.clock.advance(1 * H)  # the unit's hour
        await bot.wait_bot(C5_CHAT, "上报至社区")
        await bot.wait_bot(C1_CHAT, "上报至社区")
        bot.clock.advance(2 * H)  # the community's two: both stations are pinged
        up_a = await bot.wait_bot(STATION_CHAT, "上报至派出所")
        up_b = await bot.wait_bot(B_STATION_CHAT, "上报至派出所")
        assert "#2" in up_a.text and "#3" not in up_a.text and "值班：陈所长" in up_a.text
        assert "#3" in up_b.text and "#2" not in up_b.text and "值班：何警官" in up_b.text
        assert f"tg://user?id={B_STAFF2}" in up_b.source
        # /duty in a station's chat is that station's watch; the other station's staff may not take it.
        bot.say(B_STATION_CHAT, B_STAFF, "/duty")
        roster = await bot.wait_bot(B_STATION_CHAT, "当前值班")
        assert "当前值班：何警官" in roster.text
        bot.api.press_button(B_STATION_CHAT, bot.user(STAFF, "陈所长"), roster.message_id, "v1:duty")
        await bot.api.wait_for(lambda: any(a.get("show_alert") for a in bot.api.callback_answers))
        bot.api.press_button(B_STATION_CHAT, bot.user(B_STAFF, "林所长"), roster.message_id, "v1:duty")
        await bot.api.wait_for(lambda: any("林所长 已接班" in (a.get("text") or "") for a in bot.api.callback_answers))
        bot.say(STATION_CHAT, STAFF, "/duty")
        assert "当前值班：陈所长" in (await bot.wait_bot(STATION_CHAT, "当前值班")).text  # st's watch untouched
        bot.clock.advance(3 * H)  # the station's claim window: re-pinged, each with its own watch
        again_b = await bot.wait_bot(B_STATION_CHAT, "仍未处理")
        again_a = await bot.wait_bot(STATION_CHAT, "仍未处理")
        assert "值班：林所长" in again_b.text and "值班：陈所长" in again_a.text

        bot.clock.set(NOV_30_9 + 60)
        a = await bot.wait_bot(STATION_CHAT, "全镇周报", within=20)  # room for a busy machine
        b = await bot.wait_bot(B_STATION_CHAT, "全镇周报", within=20)
        assert "苏溪派出所" in a.text and "新增 2 ↑2 · 解决 1 ↑1 · 未结 1 ↑1" in a.text
        assert "城南派出所" in b.text and "新增 1 ↑1 · 解决 0 · 未结 1 ↑1" in b.text
        assert "城南" not in a.text and "蒋母塘村" not in b.text  # each ranks its own communities
        assert "#3" in b.text and "#3" not in a.text  # 通报: matters at the station, its own
        async with bot.svc.store.read() as tx:
            assert await tx.schedule_ran(weekly.SCHEDULE, _key(NOV_30_9), "st")
            assert await tx.schedule_ran(weekly.SCHEDULE, _key(NOV_30_9), "st2")
            kept = await tx.published("weekly", NOV_30_9 - 7 * 86400, NOV_30_9)
        assert set(kept) == {"st", "st2"} and '"u5"' in kept["st2"] and '"u5"' not in kept["st"]

        # /summary in a station's chat is that station's.
        bot.say(B_STATION_CHAT, B_STAFF, "/summary")
        summary = await bot.wait_bot(B_STATION_CHAT, "近七天", within=20)  # a busy machine: a chart is counted
        assert "城南派出所" in summary.text and "新增 1" in summary.text and "蒋母塘村" not in summary.text

        # The week after compares each station with what its own bulletin published.
        await report(bot, U5_CHAT, "又一件")
        bot.clock.set(DEC_1_9 + 60)  # November's monthly bulletins: each station's its own
        month_a = await bot.wait_bot(STATION_CHAT, "苏溪派出所 全镇月通报（2026年11月）", within=20)
        month_b = await bot.wait_bot(B_STATION_CHAT, "城南派出所 全镇月通报（2026年11月）", within=20)
        assert "新增 2 ↑2 · 解决 1 ↑1" in month_a.text and "新增 2 ↑2 · 解决 0" in month_b.text
        bot.clock.set(DEC_7_9 + 60)
        await bot.api.wait_for(lambda: bot.count_bot(B_STATION_CHAT, "全镇周报（11-30") >= 1, 20)
        b2 = [m for m in bot.api.bot_messages(B_STATION_CHAT) if "全镇周报" in m.text][-1]
        assert "新增 1 →" in b2.text
        await bot.settle()
        assert bot.count_bot(STATION_CHAT, "全镇周报") == 2 and bot.count_bot(B_STATION_CHAT, "全镇周报") == 2
        assert not any("城南" in text for text in bot.bot_texts(STATION_CHAT))  # nothing of st2's in st's chat
        assert not any("蒋母塘" in text for text in bot.bot_texts(B_STATION_CHAT))


def _key(fire: float) -> str:
    from datetime import UTC

    return datetime.fromtimestamp(fire, UTC).isoformat()


async def test_a_towns_rows_from_before_stations_become_its_one_stations(make_bot: Any, bot_database: str) -> None:
    store = await Store.open(bot_database)
    try:
        async with store.transaction() as tx:  # as a town wrote them before the migration: station ''
            await tx.mark_schedule(weekly.SCHEDULE, _key(NOV_30_9), 1.0)
            await tx.mark_schedule("notice", "2026-W48", 1.0)
            await tx.save_published("weekly", 1.0, 2.0, "{}", 3.0, "")
            await tx.add_duty_override(STAFF, "陈所长", 1.0, 9e9, STAFF, "")
    finally:
        await store.close()
    async with make_bot() as bot:
        async with bot.svc.store.read() as tx:
            assert await tx.schedule_ran(weekly.SCHEDULE, _key(NOV_30_9), "st")
            assert not await tx.schedule_ran(weekly.SCHEDULE, _key(NOV_30_9), "")
            assert await tx.schedule_ran("notice", "2026-W48")  # a city-wide run stays city-wide
            assert set(await tx.published("weekly", 1.0, 2.0)) == {"st"}
            assert [o.user_id for o in await tx.duty_overrides(bot.clock.now(), "st")] == [STAFF]
        bot.clock.set(NOV_30_9 + 60)  # this week's bulletin went out before the upgrade: not again
        await bot.settle()
        assert bot.count_bot(STATION_CHAT, "全镇周报") == 0
