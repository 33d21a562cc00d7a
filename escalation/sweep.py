"""The periodic sweep: carry out every step whose time has come.

It reads only what is due (an index on ``next_due``), re-checks each matter inside the
transaction that acts on it, and writes the change, its timeline event and its messages
together. Running it twice at the same moment does nothing the second time, and after a
restart a matter that fell due while the bot was down is handled exactly once.

Several workers on one PostgreSQL database (issue 18) each run it: a batch takes its due
matters with ``FOR UPDATE SKIP LOCKED`` (bot/store/queries.py ``due_matters``) and commits their
steps and messages in the same transaction, without the writers' lock, so the workers' batches
run side by side, each matter in one of them. What quiet hours held is released under the
writers' lock, by one worker at a time. A batch PostgreSQL aborts as a deadlock is run again
(Store.retrying).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from bot import views
from bot.outbox import Card, put
from bot.store import Event, Store, clock_columns
from escalation import policy
from escalation.notify import Notifier, Ping
from escalation.policy import Action

log = logging.getLogger(__name__)

BATCH = 200

# What each step is called in the timeline, what the ping says, and whether the card changes.
_STEPS: dict[Action, tuple[str, str, bool]] = {
    Action.ESCALATE: ("escalated", "escalated", True),
    Action.REPING: ("reping", "reping", False),
    Action.REMIND: ("reminded", "remind", False),
    Action.IDLE_REMIND: ("idle_reminded", "idle", False),
    Action.UNCLAIM: ("released", "unclaimed", True),
    Action.RESUME: ("resumed", "resumed", True),
}


async def sweep(store: Store, notifier: Notifier, now: float) -> int:
    """Carry out every step due at ``now``; returns how many were taken."""
    async def release() -> None:
        # Under the writers' lock: one worker takes all that is due, so a chat gets one message
        # (with SKIP LOCKED, two workers' releases could split a chat's pings in two).
        async with store.transaction() as tx:
            await notifier.release(tx, now)  # what quiet hours held, if they are over

    await store.retrying(release)
    taken_total = 0
    while True:
        taken, seen = await store.retrying(lambda: _sweep_batch(store, notifier, now))
        taken_total += taken
        if seen < BATCH:
            return taken_total


async def _sweep_batch(store: Store, notifier: Notifier, now: float) -> tuple[int, int]:
    """One batch in one transaction, written in a few trips: the sweep runs for the life
    of the bot, so its cost is per due matter, never per matter in the history."""
    pings: list[Ping] = []
    changes: list[tuple[int, dict[str, Any]]] = []
    events: list[Event] = []
    cards: list[Card] = []
    stamp = int(now * 1000)  # with the matter's id, marks this step's messages uniquely
    reason_text = notifier.langs.for_chat(None)
    async with store.transaction(row_locks=True) as tx:
        due = await tx.due_matters(now, BATCH)  # locked: another worker's sweep passes them over
        for matter in due:
            if matter.unit_id not in notifier.tree.nodes:  # its unit was removed from config.yaml
                log.warning("matter %s belongs to unit %r, no longer in the config; it stops escalating",
                            matter.id, matter.unit_id)
                changes.append((matter.id, {"next_due": None}))
                continue
            rules = matter.policy_rules
            taken = policy.step(matter.clock, rules, now)
            if taken is None:  # next_due was ahead of the policy; put it right
                changes.append((matter.id, {"next_due": policy.next_check(matter.clock, rules)}))
                continue
            event_kind, ping_kind, card_changes = _STEPS[taken.action]
            change: dict[str, Any] = clock_columns(policy.after(matter.clock, taken, now), rules)
            if taken.action == Action.ESCALATE:
                change.update(top_tier=min(matter.top_tier, taken.to_tier), escalated_at=matter.escalated_at or now)
                tx.log_event("escalated", matter=matter.id, node=matter.unit_id, from_tier=matter.tier,
                             to_tier=taken.to_tier, reason=taken.reason.value)
            elif taken.action == Action.UNCLAIM:
                tx.log_event("released", matter=matter.id, node=matter.unit_id, tier=matter.tier)
            changes.append((matter.id, change))
            events.append(Event(matter.id, now, None, None, event_kind, taken.to_tier,
                                reason_text(f"reason.{taken.reason}")))
            if card_changes:  # the unit's card shows where the matter now stands
                cards.append(Card(matter.id, matter.chat_id, f"s{stamp}"))
            # The matter as it now stands, without reading it back: it is what we write.
            updated = replace(matter, **{k: v for k, v in change.items() if k != "state"},
                              state=policy.State(change["state"]))
            pings.append(Ping(updated, ping_kind, taken.to_tier, taken.reason.value, stamp))
        await tx.update_matters(changes)
        await tx.add_events(events)
        await put(tx, *cards, now=now)
        await views.follow(tx, [card.matter_id for card in cards], now, f"s{stamp}")
        await notifier.send(tx, pings, now)
    return len(pings), len(due)
