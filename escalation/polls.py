"""群众安全感 on a schedule (issue 16): a monthly anonymous poll in every unit group, closed
after ``safety_poll.open_for``.

Like the bulletins (escalation/weekly.py), the moment is an APScheduler CronTrigger in the
configured zone that the sweep asks about each time it runs; the month's run is recorded
in the transaction that queues the polls (and each unit has one poll row a month), so a
poll due while the bot was down goes out once when it is back, within its open window,
and never twice. Sending, stopping and the counts go through the outbox and
bot/telegram/delivery.py; the counts Telegram reports in between arrive as ``poll``
updates (handlers/safety.py).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from bot import outbox
from bot.config import SafetyPoll
from bot.outbox import put
from bot.store import Store, Tx
from bot.tree import Tree
from escalation.reports.safety import month_key
from escalation.weekly import last_fire

SCHEDULE = "safety_poll"
LOOKBACK = 32 * 86400.0  # the month's moment is at most a month back


async def open_due(
    store: Store, tree: Tree, settings: SafetyPoll, trigger: CronTrigger, tz: ZoneInfo, now: float,
    since: float = 0.0,
) -> int:
    """Queue this month's poll to every unit group if it is due and not yet sent; returns
    how many were queued. One due before the bot first ran (``since``), or whose open window
    is already over, is skipped."""
    if not settings.enabled:
        return 0
    fire = last_fire(trigger, now, lookback=LOOKBACK)
    if fire is None or fire < since or now >= fire + settings.open_for:
        return 0
    local = datetime.fromtimestamp(fire, tz)
    month = month_key(local.year, local.month)
    async with store.read() as tx:
        if await tx.schedule_ran(SCHEDULE, month):
            return 0
    options = tuple(settings.options) if settings.options else None
    notices = {}
    for unit in tree.units():
        chat = tree.chat_of(unit.id)
        if chat is not None:  # its words are composed when it is sent, in the chat's language
            notices[unit.id] = outbox.SafetyPoll(month, unit.id, chat, settings.question, options)
    closes = fire + settings.open_for
    async with store.transaction() as tx:
        if not await tx.mark_schedule(SCHEDULE, month, now):
            return 0  # another sweep got there first
        added = await tx.safety_polls_add(
            [(unit_id, month, n.chat, n.key, now, closes) for unit_id, n in notices.items()]
        )
        await put(tx, *(notices[unit_id] for unit_id in added), now=now)
        tx.log_event("safety_poll_opened", month=month, groups=len(added))
    return len(added)


async def close_due(store: Store, now: float) -> int:
    """Ask Telegram to stop every poll whose time is up (its final counts are recorded when
    it answers); a poll that never reached its group is closed as it is. Returns how many
    stops were queued."""
    async with store.read() as tx:
        if not await tx.safety_polls_due(now):
            return 0
    async with store.transaction() as tx:
        due = await tx.safety_polls_due(now)  # again, inside the transaction that acts on it
        stops = [outbox.StopPoll(p.month, p.unit_id, p.chat_id, p.message_id)
                 for p in due if p.message_id is not None]
        await put(tx, *stops, now=now)
        await tx.safety_polls_stopping([p.id for p in due if p.message_id is not None], now)
        for poll in due:
            # Not sent and no longer waiting to be: it reached nobody, so nobody answered.
            if poll.message_id is None and poll.outbox_state != "pending":
                await _close(tx, poll.unit_id, poll.month, now)
    return len(stops)


async def settled(tx: Tx, tree: Tree, langs: object, now: float, *, key: str | None = None,
                  chat_id: int | None = None) -> None:
    """Delivery's hook for a poll Telegram would not take or stop (key=), or a unit group
    out of reach (chat_id=): the poll closes with the counts last reported."""
    if key is not None and key.startswith(outbox.SAFETY_PREFIX):
        month, unit_id = outbox.safety_of_key(key)
        await _close(tx, unit_id, month, now)
    elif chat_id is not None:
        await tx.safety_polls_close_chat(chat_id, now)


async def _close(tx: Tx, unit_id: str, month: str, now: float) -> None:
    if await tx.safety_poll_close(unit_id, month, now):
        tx.log_event("safety_poll_given_up", month=month, node=unit_id)
