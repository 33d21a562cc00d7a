"""What people do to matters: report, claim, resolve, note.

Each action re-reads the matter inside its transaction, checks it against the rules, and
writes the change, its timeline event and the notifications it causes together — so a
crash never leaves a change without its message, or a message without its change.
Handlers call these and turn the outcome into a reply.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from html import escape

from bot import render
from bot.clock import Clock
from bot.i18n import Texts
from bot.storage import Matter, Store, Tx
from bot.tree import UNIT, Node, Tree
from escalation import policy
from escalation.policy import Rules, State

MAX_TEXT = 1500  # characters in a report, resolution or note; keeps every card in one message


@dataclass(frozen=True)
class Actor:
    id: int
    name: str


class Outcome(StrEnum):
    OK = "ok"
    NOT_FOUND = "not_found"
    OTHER_UNIT = "other_unit"
    NOT_ALLOWED = "not_allowed"
    ALREADY_CLAIMED = "already_claimed"
    ALREADY_RESOLVED = "already_resolved"


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    matter: Matter | None = None


@dataclass(frozen=True)
class Ack:
    """Where to confirm a command: the chat and the command's message."""

    chat_id: int
    message_id: int
    update_id: int


class Matters:
    def __init__(self, store: Store, tree: Tree, texts: Texts, clock: Clock, rules: Rules) -> None:
        self.store = store
        self.tree = tree
        self.t = texts
        self.clock = clock
        self.rules = rules  # the chain new matters start with (copied onto each)

    async def report(
        self,
        unit: Node,
        chat_id: int,
        reporter: Actor,
        text: str,
        message_id: int | None,
        photo_file_id: str | None = None,
        answers_prompt: bool = False,
    ) -> Matter:
        assert unit.tier == UNIT
        now = self.clock.now()
        clock = policy.Clock(State.OPEN, UNIT, now)
        async with self.store.transaction() as tx:
            matter_id = await tx.insert_matter(
                unit_id=unit.id,
                chat_id=chat_id,
                report_message_id=message_id,
                reporter_id=reporter.id,
                reporter_name=reporter.name,
                text=text,
                state=State.OPEN.value,
                tier=UNIT,
                top_tier=UNIT,
                tier_since=now,
                next_due=policy.next_check(clock, self.rules),
                rules=self.rules.to_json(),
                created_at=now,
            )
            await tx.add_event(matter_id, now, "reported", actor_id=reporter.id, actor_name=reporter.name, tier=UNIT)
            if photo_file_id:
                await tx.add_attachment(matter_id, "photo", photo_file_id, reporter.id, now)
            if answers_prompt:
                await tx.take_prompt(chat_id, reporter.id, 0.0)
            await tx.enqueue(
                f"card:{matter_id}:new", chat_id, now, kind="card", matter_id=matter_id, reply_to=message_id
            )
            matter = await tx.matter(matter_id)
        assert matter is not None
        return matter

    async def claim(self, matter_id: int, actor: Actor, chat: Node, ack: Ack | None = None) -> Result:
        async with self.store.transaction() as tx:
            matter, refusal = await self._load(tx, matter_id, actor, chat)
            if refusal:
                return refusal
            assert matter is not None
            if matter.state == State.CLAIMED:
                return Result(Outcome.ALREADY_CLAIMED, matter)
            now = self.clock.now()
            clock = policy.Clock(State.CLAIMED, matter.tier, matter.tier_since, matter.last_ping_at)
            await tx.update_matter(
                matter.id,
                state=State.CLAIMED.value,
                claimed_by=actor.id,
                claimed_by_name=actor.name,
                claimed_at=now,
                first_claimed_at=matter.first_claimed_at or now,
                next_due=policy.next_check(clock, matter.policy_rules),
            )
            event = await self._event(tx, matter, now, "claimed", actor)
            await self._refresh_card(tx, matter, now, event)
            if actor.id != matter.reporter_id:
                await self._tell_reporter(
                    tx, matter, now, event,
                    self.t("notify.claimed", reporter=render.mention(matter.reporter_id, matter.reporter_name),
                           id=matter.id, who=escape(actor.name)),
                )
            await self._ack(tx, ack, now, self.t("ok.claimed", id=matter.id))
            return Result(Outcome.OK, await tx.matter(matter.id))

    async def resolve(
        self, matter_id: int, actor: Actor, chat: Node, resolution: str = "", ack: Ack | None = None
    ) -> Result:
        async with self.store.transaction() as tx:
            matter, refusal = await self._load(tx, matter_id, actor, chat)
            if refusal:
                return refusal
            assert matter is not None
            now = self.clock.now()
            await tx.update_matter(
                matter.id,
                state=State.RESOLVED.value,
                resolved_at=now,
                resolved_by=actor.id,
                resolved_by_name=actor.name,
                resolution=resolution or None,
                first_claimed_at=matter.first_claimed_at or now,
                next_due=None,
            )
            event = await self._event(tx, matter, now, "resolved", actor, resolution or None)
            await self._refresh_card(tx, matter, now, event)
            if actor.id != matter.reporter_id:
                reporter = render.mention(matter.reporter_id, matter.reporter_name)
                who = escape(actor.name)
                text = (
                    self.t("notify.resolved_with", reporter=reporter, id=matter.id, who=who,
                           resolution=escape(resolution))
                    if resolution
                    else self.t("notify.resolved", reporter=reporter, id=matter.id, who=who)
                )
                await self._tell_reporter(tx, matter, now, event, text)
            await self._ack(tx, ack, now, self.t("ok.resolved", id=matter.id))
            return Result(Outcome.OK, await tx.matter(matter.id))

    async def note(self, matter_id: int, actor: Actor, chat: Node, text: str, ack: Ack | None = None) -> Result:
        async with self.store.transaction() as tx:
            matter, refusal = await self._load(tx, matter_id, actor, chat)
            if refusal:
                return refusal
            assert matter is not None
            now = self.clock.now()
            await self._event(tx, matter, now, "note", actor, text)
            await self._ack(tx, ack, now, self.t("ok.note", id=matter.id))
            return Result(Outcome.OK, matter)

    # --- shared steps --------------------------------------------------------------
    async def _load(self, tx: Tx, matter_id: int, actor: Actor, chat: Node) -> tuple[Matter | None, Result | None]:
        """The matter, or why the actor may not act on it from this chat."""
        matter = await tx.matter(matter_id)
        if matter is None:
            return None, Result(Outcome.NOT_FOUND)
        if not self.tree.contains(chat.id, matter.unit_id):
            return matter, Result(Outcome.OTHER_UNIT, matter)
        if not self.tree.may_act(actor.id, matter.unit_id):
            return matter, Result(Outcome.NOT_ALLOWED, matter)
        if matter.state == State.RESOLVED:
            return matter, Result(Outcome.ALREADY_RESOLVED, matter)
        return matter, None

    async def _event(
        self, tx: Tx, matter: Matter, now: float, kind: str, actor: Actor, detail: str | None = None
    ) -> int:
        return await tx.add_event(
            matter.id, now, kind, actor_id=actor.id, actor_name=actor.name, tier=matter.tier, detail=detail
        )

    async def _refresh_card(self, tx: Tx, matter: Matter, now: float, event: int) -> None:
        # Rendered at delivery time, so several quick changes still end in the latest state.
        await tx.enqueue(f"card:{matter.id}:e{event}", matter.chat_id, now, kind="card", matter_id=matter.id)

    async def _tell_reporter(self, tx: Tx, matter: Matter, now: float, event: int, text: str) -> None:
        await tx.enqueue(
            f"reporter:{matter.id}:e{event}", matter.chat_id, now, matter_id=matter.id,
            text=text, reply_to=matter.report_message_id,
        )

    async def _ack(self, tx: Tx, ack: Ack | None, now: float, text: str) -> None:
        if ack is not None:
            await tx.enqueue(f"ack:{ack.update_id}", ack.chat_id, now, text=text, reply_to=ack.message_id)
