"""Bulletins on a schedule: the weekly one (周报) and the monthly one (月通报), each sent
exactly once.

The schedules are APScheduler CronTriggers in the configured timezone. The sweep asks
``send_due`` and ``send_monthly_due`` each time it runs; the run is recorded in the same
transaction that queues the messages, so a bulletin that fell due while the bot was down
goes out once when it is back (if within its catch-up window), and never twice.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from apscheduler.triggers.cron import CronTrigger

from bot import outbox, screening, village_notice
from bot.outbox import put
from bot.roles import Role, role
from bot.store import Store, Tx
from bot.tree import COMMUNITY, STATION, Node, Tree
from escalation import officers
from escalation.officers import Targets
from escalation.reports import bulletin, service
from escalation.reports.bulletin import Period
from escalation.reports.service import Words

WEEK = bulletin.WEEK
CATCH_UP = 86400.0  # a weekly bulletin missed by more than a day is stale; skip it
MONTHLY_CATCH_UP = 3 * 86400.0  # a month's bulletin is still worth reading a few days late
SCHEDULE = "weekly"
MONTHLY = "monthly"


def last_fire(trigger: CronTrigger, now: float, lookback: float = 8 * 86400.0) -> float | None:
    """The latest scheduled moment at or before ``now`` (within ``lookback``)."""
    now_dt = datetime.fromtimestamp(now, UTC)
    fire = trigger.get_next_fire_time(None, now_dt - timedelta(seconds=lookback))
    latest = None
    while fire is not None and fire <= now_dt:
        latest = fire
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return latest.timestamp() if latest else None


async def send_due(
    store: Store, tree: Tree, words: Words, trigger: CronTrigger, now: float, since: float = 0.0,
    targets: Targets | None = None,
) -> bool:
    """Queue the week's bulletins if they are due and not yet sent; True if queued.

    ``since`` is when the bot first ran: a bulletin due before then was never missed (a
    bot installed on a Monday afternoon does not open with last week's empty figures)."""
    fire = last_fire(trigger, now)
    if fire is None or now - fire > CATCH_UP or fire < since:
        return False
    period = bulletin.weekly_period(fire, tz=words.tz)
    return await _send(store, tree, words, SCHEDULE, fire, period, now, targets=targets)


async def send_monthly_due(
    store: Store, tree: Tree, words: Words, trigger: CronTrigger, now: float, since: float = 0.0,
    weekly_trigger: CronTrigger | None = None, safety_min_answers: int | None = None,
    targets: Targets | None = None,
) -> bool:
    """Queue last month's bulletins on the 1st, once; True if queued. The chart's weeks
    are the weekly bulletin's (``weekly_trigger``) up to the month's end. With
    ``safety_min_answers`` they show the month's 群众安全感 polls (issue 16)."""
    fire = last_fire(trigger, now, lookback=32 * 86400.0)
    if fire is None or now - fire > MONTHLY_CATCH_UP or fire < since:
        return False
    period = bulletin.monthly_period(fire, words.tz)
    if weekly_trigger is not None:
        period = replace(period, chart_end=last_fire(weekly_trigger, period.end))
    return await _send(store, tree, words, MONTHLY, fire, period, now, safety_min_answers, targets)


async def _send(store: Store, tree: Tree, words: Words, schedule: str, fire: float, period: Period,
                now: float, safety_min_answers: int | None = None, targets: Targets | None = None) -> bool:
    """Each station's bulletins (a city has several, issue 17) in a transaction of its own,
    marked as run for that station: the figures are counted once for the whole city, then
    each station's nodes get theirs, and each station's figures are published as its own."""
    key = datetime.fromtimestamp(fire, UTC).isoformat()
    async with store.read() as tx:
        due = [st for st in tree.stations if not await tx.schedule_ran(schedule, key, st.id)]
    if not due:
        return False
    figures = await service.period_figures(store, tree, period, now=now)
    if safety_min_answers is not None:
        figures.safety = await service.safety_figures(store, period, safety_min_answers)
    views = service.bulletins(tree, figures, period)
    sections = await _officers_sections(store, tree, f"{schedule}:{key}", period, targets or Targets(), words)
    sent = False
    for station in due:
        mine = set(tree.station_nodes(station.id))
        own = {node_id: view for node_id, view in views.items() if node_id in mine}
        notices = service.notices(tree, words, own, f"{schedule}:{key}")  # counted outside the write lock
        async with store.transaction() as tx:
            if not await tx.mark_schedule(schedule, key, now, station.id):
                continue  # another sweep got there first
            await put(tx, *notices, now=now)
            if schedule == SCHEDULE and (
                officers := await _officers_line(tx, tree, station, f"{schedule}:{key}", period)
            ):
                await put(tx, officers, now=now)
            await put(tx, *(s for s in sections if s.node_id in mine), now=now)  # after its bulletin
            tx.log_event("bulletin", schedule=schedule, due=key, station=station.id, groups=len(own))
            await service.publish(tx, tree, figures, period, now, station.id)
        sent = True
    return sent


async def _officers_line(tx: Tx, tree: Tree, station: Node, batch: str, period: Period) -> outbox.Notice | None:
    """The station's weekly bulletin names its communities whose safety notice was not
    published within a day and those whose screening had no answer by its deadline."""
    station_chat = tree.chat_of(station.id)
    if station_chat is None:
        return None
    late = await village_notice.late_names(tx, tree, period.start, period.end, station.id)
    unscreened = await screening.missing_names(tx, tree, period.start, period.end, station.id)
    if not late and not unscreened:
        return None
    return outbox.NoticesLate(batch, station.id, station_chat, late, unscreened)


async def _officers_sections(store: Store, tree: Tree, batch: str, period: Period, targets: Targets,
                             words: Words) -> list[outbox.OfficersPart]:
    """Each station's and community's officers' section (escalation/officers.py): the
    station's lists every community's, a community's its own."""
    weeks = officers.month_weeks(period) if period.kind == bulletin.Kind.MONTHLY else []
    async with store.read() as tx:
        visits = await tx.visits_between(min([period.prev_start, *(start for start, _ in weeks)]), period.end)
        answers = await tx.screenings_between(period.start, period.end)
    communities = list(tree.communities())
    police = [officers.Officer(c.id, p.id, p.name or tree.person_name(p.id) or str(p.id))
              for c in communities for p in c.leaders if role(tree, p.id, c.id) == Role.POLICE]
    rows = officers.rows(police, visits, period, words.tz, targets, lambda c, user: role(tree, user, c).value, weeks)
    screened = officers.screenings(
        (s.community_id, s.answered_at is not None and s.answered_at <= s.due_at, found) for s, found, *_ in answers
    )
    out: list[outbox.OfficersPart] = []
    for node in tree.nodes.values():
        chat = tree.chat_of(node.id)
        if chat is None or node.tier not in (STATION, COMMUNITY):
            continue
        mine = list(node.children) if node.tier == STATION else [node.id]  # the station's own communities
        out += [outbox.OfficersPart(batch, node.id, chat, part)
                for part in officers.section(rows, mine, screened, targets, period.kind)]
    return out
