"""The periodic sweep: escalate or re-ping every matter whose deadline has passed.

It reads only what is due (an index on ``next_due``), re-checks each matter inside the
transaction that acts on it, and writes the change, its timeline event and its messages
together. Running it twice at the same moment does nothing the second time, and after a
restart a matter that fell due while the bot was down is handled exactly once.
"""

from __future__ import annotations

from dataclasses import replace

from bot import render
from bot.i18n import Texts
from bot.storage import Event, Matter, Outgoing, Store
from bot.tree import Tree
from escalation import policy

BATCH = 200


def target_chat(tree: Tree, unit_id: str, tier: int) -> int | None:
    """The chat of the node responsible at ``tier``; if it has none, the nearest above."""
    for level in range(tier, 0, -1):
        chat = tree.chat_of(tree.at_tier(unit_id, level).id)
        if chat is not None:
            return chat
    return None


async def sweep(store: Store, tree: Tree, texts: Texts, now: float) -> int:
    """Carry out every step due at ``now``; returns how many were taken."""
    taken_total = 0
    while True:
        taken, seen = await _sweep_batch(store, tree, texts, now)
        taken_total += taken
        if seen < BATCH:
            return taken_total


async def _sweep_batch(store: Store, tree: Tree, texts: Texts, now: float) -> tuple[int, int]:
    # Each kind of write goes to the database once for the whole batch, not once per
    # matter: a trip to SQLite's thread costs more than the SQL itself.
    async with store.transaction() as tx:
        due = await tx.due_matters(now, BATCH)
        changes: list[tuple[int, dict[str, object]]] = []
        steps: list[tuple[Matter, policy.Step]] = []  # each matter as it is after its step
        for matter in due:
            rules = matter.policy_rules
            taken = policy.step(matter.clock, rules, now)
            if taken is None:  # next_due was ahead of the policy; put it right
                changes.append((matter.id, {"next_due": policy.next_check(matter.clock, rules)}))
                continue
            clock = policy.after(matter.clock, taken, now)
            change: dict[str, object] = {
                "state": clock.state.value,
                "tier": clock.tier,
                "tier_since": clock.tier_since,
                "last_ping_at": clock.last_ping_at,
                "next_due": policy.next_check(clock, rules),
            }
            if taken.action == policy.Action.ESCALATE:
                change["top_tier"] = min(matter.top_tier, clock.tier)
                change["escalated_at"] = matter.escalated_at or now
            changes.append((matter.id, change))
            steps.append((replace(matter, **{**change, "state": clock.state}), taken))  # type: ignore[arg-type]
        await tx.update_matters(changes)
        events = await tx.add_events([
            Event(matter.id, now, None, None, _event_kind(taken), taken.to_tier, texts(f"reason.{taken.reason}"))
            for matter, taken in steps
        ])
        messages: list[Outgoing] = []
        for (matter, taken), event in zip(steps, events, strict=True):
            chat = target_chat(tree, matter.unit_id, taken.to_tier)
            if chat is not None:
                text, keyboard = render.escalation(matter, taken, tree, texts, now)
                messages.append(Outgoing(f"esc:{matter.id}:e{event}", chat, now, matter_id=matter.id, text=text,
                                         markup=keyboard))
            if taken.action == policy.Action.ESCALATE:  # the unit's card shows where the matter now stands
                messages.append(Outgoing(f"card:{matter.id}:e{event}", matter.chat_id, now, kind="card",
                                         matter_id=matter.id))
        await tx.enqueue_many(messages)
    return len(steps), len(due)


def _event_kind(taken: policy.Step) -> str:
    return "escalated" if taken.action == policy.Action.ESCALATE else "reping"
