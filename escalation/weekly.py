"""Weekly summaries: when one is due, and sending each exactly once.

The schedule is an APScheduler CronTrigger in the configured timezone. The sweep asks
``send_due`` each time it runs; the run is recorded in the same transaction that queues
the messages, so a summary that fell due while the bot was down goes out once when it is
back (if within ``CATCH_UP``), and never twice.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from apscheduler.triggers.cron import CronTrigger

from bot.i18n import Languages
from bot.storage import Store
from bot.tree import Tree
from escalation import summary

WEEK = 7 * 86400.0
CATCH_UP = 86400.0  # a summary missed by more than a day is stale; skip it
SCHEDULE = "weekly"


def last_fire(trigger: CronTrigger, now: float) -> float | None:
    """The latest scheduled moment at or before ``now`` (within the last eight days)."""
    now_dt = datetime.fromtimestamp(now, UTC)
    fire = trigger.get_next_fire_time(None, now_dt - timedelta(days=8))
    latest = None
    while fire is not None and fire <= now_dt:
        latest = fire
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return latest.timestamp() if latest else None


async def figures_for(store: Store, tree: Tree, start: float, end: float) -> dict[str, summary.Figures]:
    async with store.read() as tx:
        facts = await tx.summary_facts(start, end)
        escalated = await tx.escalated_between(start, end)
    return summary.unit_figures(facts, escalated, [u.id for u in tree.units()], start, end)


async def send_due(
    store: Store, tree: Tree, langs: Languages, trigger: CronTrigger, now: float, since: float = 0.0
) -> bool:
    """Queue this week's summaries if they are due and not yet sent; True if queued.

    ``since`` is when the bot first ran: a summary due before then was never missed (a
    bot installed on a Monday afternoon does not open with last week's empty figures)."""
    fire = last_fire(trigger, now)
    if fire is None or now - fire > CATCH_UP or fire < since:
        return False
    period = datetime.fromtimestamp(fire, UTC).isoformat()
    async with store.read() as tx:
        if await tx.schedule_ran(SCHEDULE, period):
            return False
    start, end = fire - WEEK, fire
    units = await figures_for(store, tree, start, end)
    async with store.transaction() as tx:
        if not await tx.mark_schedule(SCHEDULE, period, now):
            return False  # another sweep got there first
        for node in tree.nodes.values():
            chat = tree.chat_of(node.id)
            if chat is None:
                continue
            for part, text in enumerate(summary.render(node, tree, units, langs.for_chat(chat), start, end)):
                await tx.enqueue(f"{SCHEDULE}:{period}:{node.id}:{part}", chat, now, text=text)
    return True
