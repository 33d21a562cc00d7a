"""What people do to matters: report, categorise, claim, note, resolve, close, suspend,
resume, escalate, return, take over, reopen.

Each action re-reads the matter inside its transaction, checks it against the rules, and
writes the change, its timeline event and the notifications it causes together — so a
crash never leaves a change without its message, or a message without its change.
Handlers call these and turn the outcome into a reply.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from bot import limits, outbox, roles, views, visibility
from bot.authority import Action, Verdict, decide
from bot.clock import Clock
from bot.config import Config
from bot.limits import ReportCounter
from bot.outbox import mention, put, said, say
from bot.store import Matter, QueuedReport, Store, Tx, clock_columns
from bot.tree import COMMUNITY, STATION, UNIT, Node, Tree
from escalation import policy
from escalation.notify import Notifier, Ping, target_chat
from escalation.policy import CLOSED, State

log = logging.getLogger(__name__)

MAX_TEXT = 4000  # characters in a report, resolution or note (Telegram's own limit is 4,096)


@dataclass(frozen=True)
class Actor:
    id: int  # a user's id; for an anonymous admin or a channel post, that chat's id
    name: str
    person: bool = True  # False: an anonymous admin or a channel, who may report but not act


class Outcome(StrEnum):
    OK = "ok"
    NOT_FOUND = "not_found"
    OTHER_UNIT = "other_unit"
    NOT_ALLOWED = "not_allowed"
    ALREADY_CLAIMED = "already_claimed"
    ALREADY_RESOLVED = "already_resolved"  # closed in any way
    AT_TOP = "at_top"  # cannot escalate past the station
    AT_UNIT = "at_unit"  # cannot return below the unit
    NOT_CLOSED = "not_closed"  # only a closed matter can be reopened
    NOT_SUSPENDED = "not_suspended"
    SUSPENDED = "suspended"
    RATED = "rated"  # already rated, or not resolved: nothing to rate
    EXPIRED = "expired"  # asked too long ago
    HELD_ABOVE = "held_above"  # a higher tier holds (or closed) the matter: Result.tier says which
    NOT_REPORTER = "not_reporter"  # only the reporter may do this
    NOT_A_PERSON = "not_a_person"  # an anonymous admin or a channel post
    TOO_LONG = "too_long"  # a suspension past suspend.max


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    matter: Matter | None = None
    tier: int | None = None  # with HELD_ABOVE: the tier that holds (or closed) the matter


@dataclass(frozen=True)
class Ack:
    """Where to confirm a command: the chat, the command's message, and in what language."""

    chat_id: int
    message_id: int
    update_id: int
    language: str | None = None


class Labels(Protocol):
    """bot.text.i18n.Languages, as far as the timeline needs it: a rating's label and a
    suspension's day are kept in an event in the town's language. Nothing here composes
    a message: notices carry what their words are made of (bot/outbox.py)."""

    def for_chat(self, chat_id: int | None) -> Any: ...


class Matters:
    def __init__(
        self, store: Store, tree: Tree, langs: Labels, clock: Clock, config: Config, notifier: Notifier
    ) -> None:
        self.store = store
        self.tree = tree
        self.langs = langs
        self.clock = clock
        self.config = config
        self.notifier = notifier
        self.counter = ReportCounter(config.limits.reports_per_hour)

    async def load_limits(self) -> None:
        """At start: the last hour's reports per person, from the database."""
        async with self.store.read() as tx:
            self.counter.load(await tx.recent_reports(self.clock.now() - limits.HOUR))

    def limit_key(self, user_id: int, sender_chat: int | None = None) -> int | None:
        """Whom a report counts against: None for a leader of the tree (no limits), the
        sender_chat of an anonymous admin or a channel post, else the person. Abuse limits
        (bot/limits.py) bind residents only: anyone who holds a post anywhere is exempt."""
        if sender_chat is not None:
            return sender_chat
        return None if roles.role(self.tree, user_id).leads else user_id

    # --- residents -----------------------------------------------------------------
    async def report(
        self,
        unit: Node,
        chat_id: int,
        reporter: Actor,
        text: str,
        message_id: int | None,
        photo_file_id: str | None = None,
        answers_prompt: bool = False,
        private: bool = False,
        limit_key: int | None = None,
        membership: str | None = None,
        update: int | None = None,
    ) -> float | None:
        """Log a report. One from a unit group is queued for the next group commit (see
        bot/store/): its card, posted once it is committed, is the answer. A private
        one (私下反映) comes from the reporter's private chat (``chat_id``): the unit group
        gets a card without the text, the heads a copy by DM, the community the full text
        in its own chat, and the reporter a receipt.

        ``limit_key`` (None: no limits) counts it against a person (bot/limits.py); over a
        limit it is held instead, the reporter is told when they may report again, and
        that time is returned. ``membership``: what Telegram says of a private reporter."""
        assert unit.tier == UNIT
        now = self.clock.now()
        per_hour = self.config.limits.reports_per_hour
        if limit_key is not None and not private:
            # Already over by this process's own count: held at once. Else the group
            # commit decides, counting every process's reports (bot/limits.py).
            again = limits.retry_at(self.counter.times(limit_key, now), per_hour, limits.HOUR)
            self.counter.add(limit_key, now)  # held or not, it counts: spamming on does not help
            if again is not None:
                async with self.store.transaction(update=update) as tx:
                    await self._hold(tx, unit, chat_id, reporter, text, message_id, photo_file_id, private,
                                     limit_key, membership, limits.HELD_HOURLY, again, now)
                return again
        card_chat = (self.tree.chat_of(unit.id) or chat_id) if private else chat_id
        row = self._new_row(unit, card_chat, reporter, text, None if private else message_id, private, now,
                            limit_key, membership)
        if not private:
            self.store.queue_report(QueuedReport(
                update, row, message_id, photo_file_id, chat_id if answers_prompt else None,
                per_hour=None if limit_key is None else per_hour,
            ))
            return None
        report = QueuedReport(update, row, None, photo_file_id, chat_id if answers_prompt else None)
        async with self.store.transaction(update=update) as tx:  # the write lock: no other process counts in between
            if limit_key is not None:
                reason, again = await self._over_limit(tx, limit_key, membership, now)
                self.counter.add(limit_key, now)
                if again is not None:
                    await self._hold(tx, unit, chat_id, reporter, text, message_id, photo_file_id, private,
                                     limit_key, membership, reason, again, now)
                    return again
            [(matter_id, event)] = await tx.insert_reports([report])
            tx.log_event("reported", matter=matter_id, node=unit.id)
            matter = await tx.matter(matter_id)
            assert matter is not None
            await self._private_copies(tx, matter, now, event, chat_id, message_id)
        return None

    def _new_row(
        self, unit: Node, card_chat: int, reporter: Actor, text: str, message_id: int | None, private: bool,
        now: float, limit_key: int | None = None, membership: str | None = None,
    ) -> dict[str, Any]:
        """A new matter's row: at the unit, with the default deadlines (a category picked
        later brings its own)."""
        rules = self.config.rules_for("other")
        return {
            "unit_id": unit.id,
            "chat_id": card_chat,
            "report_message_id": message_id,
            "reporter_id": reporter.id,
            "reporter_name": reporter.name,
            "text": text,
            "top_tier": UNIT,
            "rules": rules.to_json(),
            "created_at": now,
            "private": int(private),
            "limit_key": limit_key,
            "membership": membership,
            **clock_columns(policy.arrive(UNIT, now), rules),
        }

    async def log_found(self, tx: Tx, unit: Node, finder: Actor, text: str, private: bool, now: float) -> int:
        """A matter an officer found (a screening's or a visit's finding), logged in the
        caller's transaction with the officer as its reporter; it follows the normal flow.
        A private one goes to the unit group without its text, as 私下反映 does. Returns its number."""
        assert unit.tier == UNIT
        card_chat = self.tree.chat_of(unit.id) or finder.id
        row = self._new_row(unit, card_chat, finder, text, None, private, now)
        [(matter_id, event)] = await tx.insert_reports([QueuedReport(None, row, None, None, None)])
        tx.log_event("reported", matter=matter_id, node=unit.id, found=True)
        if private:
            matter = await tx.matter(matter_id)
            assert matter is not None
            await self._private_copies(tx, matter, now, event, finder.id, None,
                                       receipt=await tx.has_private_chat(finder.id))
        return matter_id

    async def _over_limit(self, tx: Tx, key: int, membership: str | None, now: float) -> tuple[str, float | None]:
        """Whether a private report is over a limit, counted in the database inside its write
        transaction: the reason, and when the person may report again (None: not over)."""
        times = await tx.report_times(key, now - limits.HOUR)
        self.counter.replace(key, times)
        reason, again = limits.HELD_HOURLY, limits.retry_at(times, self.config.limits.reports_per_hour, limits.HOUR)
        if again is None and membership == limits.NONMEMBER:
            strangers = await tx.report_times(key, now - limits.DAY, nonmember=True)
            reason = limits.HELD_NONMEMBER
            again = limits.retry_at(strangers, self.config.limits.private_nonmember_per_day, limits.DAY)
        return reason, again

    async def _hold(
        self, tx: Tx, unit: Node, chat_id: int, reporter: Actor, text: str, message_id: int | None,
        photo_file_id: str | None, private: bool, key: int, membership: str | None, reason: str, again: float,
        now: float,
    ) -> None:
        """Keep a report over a limit as held, and tell the reporter when they may report again."""
        held_id = await tx.hold_report({
            "unit_id": unit.id, "chat_id": chat_id, "message_id": message_id, "reporter_id": reporter.id,
            "reporter_name": reporter.name, "limit_key": key, "text": text, "photo": photo_file_id,
            "private": int(private), "membership": membership, "reason": reason, "created_at": now,
        })
        limit = (self.config.limits.reports_per_hour if reason == limits.HELD_HOURLY
                 else self.config.limits.private_nonmember_per_day)
        await put(tx, outbox.HeldNotice(held_id, chat_id, reason, reporter.id, reporter.name, limit, again,
                                        reply_to=message_id), now=now)
        log.info("report held: unit %s, key %s, held report %s (%s)", unit.id, key, held_id, reason)

    async def release_held(
        self, held_id: int, actor: Actor, chat: Node, update: int | None = None
    ) -> tuple[Outcome, int | None]:
        """A head turns a held report into a matter: from then on a normal report by its
        original reporter, with fresh deadlines. Returns the outcome and the matter's number."""
        async with self.store.transaction(update=update) as tx:
            held = await tx.held_report(held_id)
            if held is None or held.unit_id not in self.tree.nodes:
                return Outcome.NOT_FOUND, None
            if not self.tree.contains(chat.id, held.unit_id):
                return Outcome.OTHER_UNIT, None
            if not roles.may(self.tree, actor.id, roles.Act.HELD, held.unit_id):
                return Outcome.NOT_ALLOWED, None
            if held.matter_id is not None:
                return Outcome.ALREADY_RESOLVED, held.matter_id
            now = self.clock.now()
            rules = self.config.rules_for("other")
            group_chat = self.tree.chat_of(held.unit_id)
            row = {
                "unit_id": held.unit_id,
                "chat_id": (group_chat or held.chat_id) if held.private else held.chat_id,
                "report_message_id": None if held.private else held.message_id,
                "reporter_id": held.reporter_id, "reporter_name": held.reporter_name, "text": held.text,
                "top_tier": UNIT, "rules": rules.to_json(), "created_at": now, "private": int(held.private),
                "limit_key": held.limit_key, "membership": held.membership,
                **clock_columns(policy.arrive(UNIT, now), rules),
            }
            report = QueuedReport(None, row, None if held.private else held.message_id, held.photo)
            [(matter_id, event)] = await tx.insert_reports([report])
            await tx.release_held(held.id, matter_id, actor.id, now)
            await tx.add_event(matter_id, now, "held_released", actor_id=actor.id, actor_name=actor.name, tier=UNIT)
            tx.log_event("reported", matter=matter_id, node=held.unit_id)  # a matter from now on, like any report
            if held.private:
                matter = await tx.matter(matter_id)
                assert matter is not None
                await self._private_copies(tx, matter, now, event, held.chat_id, held.message_id)
        log.info("held report %s released as matter %s by %s", held_id, matter_id, actor.id)
        return Outcome.OK, matter_id

    async def _private_copies(
        self, tx: Tx, matter: Matter, now: float, event: int, private_chat: int, message_id: int | None,
        receipt: bool = True,
    ) -> None:
        unit = self.tree.nodes[matter.unit_id]
        if receipt:
            await put(tx, outbox.Receipt(
                matter.id, private_chat, said(say("private.receipt", id=matter.id, unit=unit.name)),
                reply_to=message_id,
            ), now=now)
        for head in unit.leaders:
            if head.id != matter.reporter_id and await tx.has_private_chat(head.id):
                await put(tx, outbox.CardCopy(matter.id, head.id), now=now)
        await self.notifier.send(tx, [Ping(matter, "private", COMMUNITY, "private", event)], now)

    async def categorize(self, matter_id: int, actor: Actor, chat: Node, key: str, update: int | None = None) -> Result:
        """The reporter or a head picks the category. Its deadlines replace the defaults
        (counted from the report), and an urgent one alerts tiers 2 and 1 at once."""

        async def change(tx: Tx, matter: Matter, now: float) -> None:
            category = self.config.category(key)
            rules = self.config.rules_for(category.key)
            event = await self._event(tx, matter, now, "categorized", actor, category.zh)
            await tx.update_matter(
                matter.id, category=category.key, category_set=1, urgent=int(category.urgent),
                rules=rules.to_json(), next_due=policy.next_check(matter.clock, rules),
            )
            await self._refresh_card(tx, matter, now, event)
            if category.urgent and not matter.urgent:
                updated = await tx.matter(matter.id)
                assert updated is not None
                # Past the reporter's urgent alerts for the day (a resident tagging, not a
                # head), it still reaches tiers 2 and 1 at once, but as a line in one
                # message per chat per sweep: thirty tags are one message, not thirty alerts.
                over = (matter.limit_key is not None and not roles.role(self.tree, actor.id).leads
                        and await tx.urgent_alerts(matter.limit_key, now - limits.DAY)
                        >= self.config.limits.urgent_per_day)
                await tx.update_matter(matter.id, urgent_at=now)
                if over:
                    log.info("urgent alert over the limit: matter %s, key %s", matter.id, matter.limit_key)
                    await self.notifier.defer(
                        tx, [Ping(updated, "urgent_over", tier, "over_limit", event) for tier in (COMMUNITY, STATION)],
                        now,
                    )
                    return
                pings = [Ping(updated, "urgent", tier, "urgent", event) for tier in (COMMUNITY, STATION)]
                await self.notifier.send(tx, pings, now, may_hold=False)
                # A private reporter is told in private: the group must not see who it was.
                chat = matter.reporter_id if matter.private else matter.chat_id
                await put(tx, outbox.UrgentAlert(
                    matter.id, chat, said(say("notify.urgent", reporter=mention(matter.reporter_id,
                                                                                matter.reporter_name))),
                    reply_to=None if matter.private else matter.report_message_id,
                ), now=now)

        return await self._act(matter_id, actor, chat, change, Action.CATEGORIZE, update=update, write_lock=True)

    # --- heads and leaders ---------------------------------------------------------
    async def claim(
        self, matter_id: int, actor: Actor, chat: Node, ack: Ack | None = None, update: int | None = None
    ) -> Result:
        async def change(tx: Tx, matter: Matter, now: float) -> Outcome | None:
            if matter.state == State.CLAIMED:
                return Outcome.ALREADY_CLAIMED
            clock = policy.claimed(matter.clock, now)
            await tx.update_matter(
                matter.id, claimed_by=actor.id, claimed_by_name=actor.name, claimed_at=now,
                first_claimed_at=matter.first_claimed_at or now, **clock_columns(clock, matter.policy_rules),
            )
            event = await self._event(tx, matter, now, "claimed", actor)
            tx.log_event("claimed", matter=matter.id, node=matter.unit_id, tier=matter.tier)
            await self._refresh_card(tx, matter, now, event)
            if matter.private or self.config.notify.reporter_on_claim:  # a private reporter sees no card
                await self._tell_reporter(tx, matter, actor, now, event, "notify.claimed")
            if not matter.private and matter.report_message_id is not None and actor.id != matter.reporter_id:
                # Telegram shows the reporter a reaction on their report: someone is on it.
                await put(tx, outbox.Reaction(f"claim:{matter.id}:e{event}", matter.chat_id,
                                              matter.report_message_id, SEEN), now=now)
            await self._react(tx, ack, now, "ok.claimed", id=matter.id)
            return None

        return await self._act(matter_id, actor, chat, change, Action.CLAIM, update=_update_of(ack, update))

    async def note(self, matter_id: int, actor: Actor, chat: Node, text: str, ack: Ack | None = None) -> Result:
        async def change(tx: Tx, matter: Matter, now: float) -> None:
            clock = policy.noted(matter.clock, now)
            await tx.update_matter(matter.id, **clock_columns(clock, matter.policy_rules))
            await self._event(tx, matter, now, "note", actor, text, tier=self._written_at(actor, chat, matter))
            await self._react(tx, ack, now, "ok.note", id=matter.id)

        return await self._act(matter_id, actor, chat, change, Action.NOTE, update=_update_of(ack))

    async def resolve(
        self, matter_id: int, actor: Actor, chat: Node, resolution: str = "", ack: Ack | None = None,
        update: int | None = None,
    ) -> Result:
        return await self._close(matter_id, actor, chat, State.RESOLVED, resolution, ack, update)

    async def close(
        self, matter_id: int, actor: Actor, chat: Node, state: State, reason: str, ack: Ack | None = None
    ) -> Result:
        """无法解决 (unresolvable) or 转交 (referred), with a reason: closed, never "resolved"."""
        assert state in (State.UNRESOLVABLE, State.REFERRED)
        return await self._close(matter_id, actor, chat, state, reason, ack)

    async def _close(
        self, matter_id: int, actor: Actor, chat: Node, state: State, text: str, ack: Ack | None,
        update: int | None = None,
    ) -> Result:
        async def change(tx: Tx, matter: Matter, now: float) -> None:
            values: dict[str, Any] = {"state": state.value, "closed_at": now, "next_due": None,
                                      "suspended_at": None, "suspended_until": None}
            if state == State.RESOLVED:
                values.update(resolved_at=now, resolved_by=actor.id, resolved_by_name=actor.name,
                              resolution=text or None)  # a resolve is not a claim
            else:
                values.update(close_reason=text, resolved_by=actor.id, resolved_by_name=actor.name)
            await tx.update_matter(matter.id, **values)
            event = await self._event(tx, matter, now, state.value, actor, text or None)
            tx.log_event(state.value, matter=matter.id, node=matter.unit_id, tier=matter.tier)
            await self._refresh_card(tx, matter, now, event)
            key = {State.RESOLVED: "notify.resolved_with" if text else "notify.resolved",
                   State.UNRESOLVABLE: "notify.unresolvable", State.REFERRED: "notify.referred"}[state]
            # The reporter is told once per outcome: a resolution in the one message that asks
            # for the rating (an anonymous reporter, a chat, cannot rate).
            if state == State.RESOLVED and actor.id != matter.reporter_id and matter.reporter_id > 0:
                await self._ask_rating(tx, matter, now, event, self._to_reporter(matter, actor, key, text=text))
            else:
                await self._tell_reporter(tx, matter, actor, now, event, key, text=text)
            told = None
            if self._verdict(action, matter, actor) == Verdict.ALLOW_TELL_HOLDER:
                # Resolved from below: the tier that holds it hears at once, with the resolution.
                updated = await tx.matter(matter.id)
                assert updated is not None
                ping = Ping(updated, "resolved_below", matter.tier, "resolved_below", event, text or None)
                await self.notifier.send(tx, [ping], now, may_hold=False)
                told = target_chat(self.tree, matter.unit_id, matter.tier)
            if matter.private:
                await self._tell_leaders(tx, matter, actor, chat, now, event, state, text, told)
            await self._react(tx, ack, now, f"ok.{state.value}", id=matter.id)

        action = {State.RESOLVED: Action.RESOLVE, State.UNRESOLVABLE: Action.CLOSE, State.REFERRED: Action.REFER}[state]
        return await self._act(matter_id, actor, chat, change, action, update=_update_of(ack, update))

    async def suspend(
        self, matter_id: int, actor: Actor, chat: Node, until: float, reason: str, ack: Ack | None = None
    ) -> Result:
        """挂起: the clocks stop until ``until`` (or /resume)."""

        async def change(tx: Tx, matter: Matter, now: float) -> Outcome | None:
            if matter.suspended_until is not None:
                return Outcome.SUSPENDED
            if until - now > self.config.suspend.max:
                return Outcome.TOO_LONG
            clock = policy.suspend(matter.clock, now, until)
            await tx.update_matter(matter.id, **clock_columns(clock, matter.policy_rules))
            day = self.langs.for_chat(None).date(until)
            by = self._written_at(actor, chat, matter)
            event = await self._event(tx, matter, now, "suspended", actor, f"{day} {reason}", tier=by)
            await self._refresh_card(tx, matter, now, event)
            if until - now > self.config.suspend.notify_above and by > STATION:
                # A long pause is a decision the tier above the one that took it should know of
                # (not the community of its own pause on a unit's matter).
                updated = await tx.matter(matter.id)
                assert updated is not None
                ping = Ping(updated, "suspended", by - 1, "suspended", event, reason)
                await self.notifier.send(tx, [ping], now, may_hold=False)
            await self._ack(tx, ack, now, "ok.suspended", id=matter.id, until=outbox.local_date(until))
            return None

        return await self._act(matter_id, actor, chat, change, Action.SUSPEND, update=_update_of(ack))

    async def resume(self, matter_id: int, actor: Actor, chat: Node, ack: Ack | None = None) -> Result:
        async def change(tx: Tx, matter: Matter, now: float) -> Outcome | None:
            if matter.suspended_until is None:
                return Outcome.NOT_SUSPENDED
            clock = policy.resume(matter.clock, now)
            await tx.update_matter(matter.id, **clock_columns(clock, matter.policy_rules))
            event = await self._event(tx, matter, now, "resumed", actor)
            await self._refresh_card(tx, matter, now, event)
            await self._ack(tx, ack, now, "ok.resumed", id=matter.id)
            return None

        return await self._act(matter_id, actor, chat, change, Action.RESUME, update=_update_of(ack))

    async def escalate(self, matter_id: int, actor: Actor, chat: Node, reason: str, ack: Ack | None = None) -> Result:
        """疑难会商: a head sends the matter up at once."""

        async def change(tx: Tx, matter: Matter, now: float) -> Outcome | None:
            if matter.tier == STATION:
                return Outcome.AT_TOP
            await self._move(tx, matter, actor, now, matter.tier - 1, "escalated", reason, claimed=False)
            await self._ack(tx, ack, now, "ok.escalated", id=matter.id, tier=_tier(matter.tier - 1))
            return None

        return await self._act(matter_id, actor, chat, change, Action.ESCALATE, update=_update_of(ack))

    async def return_down(
        self, matter_id: int, actor: Actor, chat: Node, instructions: str, ack: Ack | None = None
    ) -> Result:
        """A tier-2 or tier-1 leader hands the matter back one tier down, with new deadlines."""

        async def change(tx: Tx, matter: Matter, now: float) -> Outcome | None:
            if matter.tier == UNIT:
                return Outcome.AT_UNIT
            await self._move(tx, matter, actor, now, matter.tier + 1, "returned", instructions, claimed=False)
            await self._ack(tx, ack, now, "ok.returned", id=matter.id, tier=_tier(matter.tier + 1))
            return None

        return await self._act(matter_id, actor, chat, change, Action.RETURN, update=_update_of(ack))

    async def takeover(self, matter_id: int, actor: Actor, chat: Node, ack: Ack | None = None) -> Result:
        """The caller's tier becomes responsible, and the caller has it."""

        async def change(tx: Tx, matter: Matter, now: float) -> Outcome | None:
            tier = roles.role(self.tree, actor.id, matter.unit_id).tier
            assert tier is not None  # authority.decide let only a leader at or above the holder here
            await self._move(tx, matter, actor, now, tier, "taken_over", None, claimed=True)
            await self._ack(tx, ack, now, "ok.taken_over", id=matter.id)
            return None

        return await self._act(matter_id, actor, chat, change, Action.TAKEOVER, update=_update_of(ack))

    async def reopen(self, matter_id: int, actor: Actor, chat: Node, why: str, ack: Ack | None = None) -> Result:
        """Reopen a closed matter, with fresh deadlines, at the tier that closed it: the
        reporter or a head for what the unit closed, else that tier or one above."""

        async def change(tx: Tx, matter: Matter, now: float) -> Outcome | None:
            if not matter.closed:
                return Outcome.NOT_CLOSED
            tier = self._holder(Action.REOPEN, matter)
            event = await self._reopen(tx, matter, actor, now, why, tier=tier)
            if tier < UNIT and target_chat(self.tree, matter.unit_id, tier) != self.tree.chat_of(chat.id):
                # Reopened onto a tier other than the one asking (the station reopens what the
                # community closed): that tier hears at once, not at its next deadline.
                updated = await tx.matter(matter.id)
                assert updated is not None
                await self.notifier.send(tx, [Ping(updated, "reopened", tier, "reopened", event)], now,
                                         may_hold=False)
            await self._ack(tx, ack, now, "ok.reopened", id=matter.id)
            return None

        return await self._act(matter_id, actor, chat, change, Action.REOPEN, when_closed=True, update=_update_of(ack))

    async def _reopen(
        self, tx: Tx, matter: Matter, actor: Actor, now: float, why: str, tier: int = UNIT,
    ) -> int:
        # Ratings are events: a reopen never takes one back (the matter keeps its latest,
        # and its next resolution may be rated again).
        clock = policy.arrive(tier, now)
        await tx.update_matter(
            matter.id, closed_at=None, resolved_at=None, resolved_by=None, resolved_by_name=None,
            resolution=None, close_reason=None, claimed_by=None, claimed_by_name=None, claimed_at=None,
            **clock_columns(clock, matter.policy_rules),
        )
        # The tier it reopens at, as for every move (the figures replay it from the timeline);
        # bot/visibility.py keeps a leader's reason at the leader's own tier.
        event = await self._event(tx, matter, now, "reopened", actor, why, tier=tier)
        tx.log_event("reopened", matter=matter.id, node=matter.unit_id)
        await self._refresh_card(tx, matter, now, event)
        return event

    # --- the reporter's own ----------------------------------------------------------
    async def cancel(self, matter_id: int, actor: Actor, chat: Node | None, ack: Ack | None = None) -> Result:
        """The reporter withdraws their open matter; it stays in the timeline."""

        async def change(tx: Tx, matter: Matter, now: float) -> None:
            await tx.update_matter(matter.id, state=State.CANCELLED.value, closed_at=now, next_due=None,
                                   suspended_at=None, suspended_until=None)
            event = await self._event(tx, matter, now, "cancelled", actor)
            tx.log_event("cancelled", matter=matter.id, node=matter.unit_id)
            await self._refresh_card(tx, matter, now, event)
            if matter.private:  # those who got it in full hear it was withdrawn, as of any other end
                await self._tell_leaders(tx, matter, actor, chat, now, event, State.CANCELLED, "")
            await self._ack(tx, ack, now, "ok.cancelled", id=matter.id)

        async def held(tx: Tx, matter: Matter, now: float) -> None:
            # The reporter may not undo what a higher tier handles, but that tier should know
            # (once per tier: asking again does not ping it again).
            if not any(e.kind == "cancel_wish" and e.tier == matter.tier for e in await tx.events(matter.id)):
                event = await self._event(tx, matter, now, "cancel_wish", actor)
                ping = Ping(matter, "cancel_wish", matter.tier, "cancel_wish", event)
                await self.notifier.send(tx, [ping], now, may_hold=False)
            # The reporter hears where the wish went in the same transaction, the update's one.
            await self._ack(tx, ack, now, "err.cancel_held", id=matter.id, tier=_tier(matter.tier))

        return await self._act(matter_id, actor, chat, change, Action.CANCEL, on_held=held, update=_update_of(ack))

    async def rate(
        self, matter_id: int, actor: Actor, rating: str, ask_why_in: int | None = None, update: int | None = None,
        thanks: Sequence[outbox.Notice] = (),
    ) -> Result:
        """群众满意度: the reporter rates a resolved matter; 不满意 reopens it, tells the
        heads, and (in chat ``ask_why_in``) waits for the reporter's reason. ``thanks``: the
        handler's answers to a rating taken, queued with it."""
        async with self.store.transaction(update=update) as tx:
            matter = await tx.matter_for_update(matter_id)  # as _act: the sweep takes no writers' lock
            if matter is None:
                return Result(Outcome.NOT_FOUND)
            verdict = self._verdict(Action.RATE, matter, actor)
            if verdict == Verdict.NOT_A_PERSON:
                return Result(Outcome.NOT_A_PERSON, matter)
            if verdict != Verdict.ALLOW:
                return Result(Outcome.NOT_ALLOWED, matter)
            now = self.clock.now()
            if matter.state != State.RESOLVED or await self._rated_since_resolved(tx, matter):
                return Result(Outcome.RATED, matter)
            if now > (matter.resolved_at or now) + self.config.satisfaction.ask_for:
                return Result(Outcome.EXPIRED, matter)
            await tx.update_matter(matter.id, rating=rating, rated_at=now)
            t = self.langs.for_chat(None)
            event = await self._event(tx, matter, now, "rated", actor, t(f"rating.{rating}"))
            if rating == RATING_UNSATISFIED:
                # Reopened where it was decided (as /reopen): what the station or the community
                # closed goes back to it, and that tier hears at once.
                tier = self._holder(Action.REOPEN, matter)
                await self._reopen(tx, matter, actor, now, t("rating.unsatisfied"), tier=tier)
                told = None
                if tier < UNIT:
                    updated = await tx.matter(matter.id)
                    assert updated is not None
                    await self.notifier.send(tx, [Ping(updated, "unsatisfied", tier, "unsatisfied", event)], now,
                                             may_hold=False)
                    told = target_chat(self.tree, matter.unit_id, tier)
                if matter.private:  # not the unit group: the heads by DM, the community in full
                    for chat in await self._private_audience(tx, matter, skip=actor.id):
                        if chat == told:
                            continue
                        await put(tx, outbox.Unsatisfied(matter.id, event, chat, tier, per_chat=True), now=now)
                else:
                    await put(tx, outbox.Unsatisfied(matter.id, event, matter.chat_id, tier), now=now)
                if ask_why_in is not None:
                    await tx.set_prompt(ask_why_in, actor.id, now, kind="unsatisfied", matter_id=matter.id)
            await self._refresh_card(tx, matter, now, event)
            await put(tx, *thanks, now=now)
            return Result(Outcome.OK, await tx.matter(matter.id))

    async def explain(self, matter_id: int, actor: Actor, chat_id: int, why: str, update: int | None = None) -> Result:
        """The reporter's reason for 不满意: into the timeline, and to the heads."""
        async with self.store.transaction(update=update) as tx:
            matter = await tx.matter(matter_id)
            await tx.take_prompt(chat_id, actor.id, 0.0)
            if matter is None or actor.id != matter.reporter_id:
                return Result(Outcome.NOT_ALLOWED, matter)
            now = self.clock.now()
            event = await self._event(tx, matter, now, "note", actor, why, tier=UNIT)
            # A private matter's words go to the heads privately and to the community, never
            # to the unit group.
            chats = await self._private_audience(tx, matter, skip=actor.id) if matter.private else [matter.chat_id]
            holder = target_chat(self.tree, matter.unit_id, matter.tier) if matter.tier < UNIT else None
            if holder is not None and holder not in chats:  # reopened above: the tier that decides hears why
                chats.append(holder)
            for chat in chats:
                words = said(say("notify.unsatisfied_why", id=matter.id, text=why))
                await put(tx, outbox.UnsatisfiedWhy(matter.id, event, chat, words), now=now)
            return Result(Outcome.OK, matter)

    async def attach(
        self, matter_id: int, actor: Actor, chat: Node | None, kind: str, file_id: str, ack: Ack | None = None
    ) -> Result:
        """A photo, voice note or location added to a matter by its reporter or a head."""

        async def change(tx: Tx, matter: Matter, now: float) -> None:
            await tx.add_attachment(matter.id, kind, file_id, actor.id, now)
            event = await self._event(tx, matter, now, "attached", actor, kind)
            await self._refresh_card(tx, matter, now, event)
            await self._ack(tx, ack, now, "ok.attached", id=matter.id)

        return await self._act(matter_id, actor, chat, change, Action.ATTACH, when_closed=True, update=_update_of(ack))

    async def _ask_rating(self, tx: Tx, matter: Matter, now: float, event: int, resolved: outbox.Say) -> None:
        """The reporter told of the resolution and asked to rate it, in one message."""
        chat = matter.reporter_id if matter.private else matter.chat_id
        words = said(resolved, say("rating.ask_after", days=outbox.duration(self.config.satisfaction.ask_for)))
        await put(tx, outbox.RatingRequest(
            matter.id, event, chat, {**words, "matter": matter.id, "ratings": list(RATINGS)},
            reply_to=None if matter.private else matter.report_message_id,
        ), now=now)

    @staticmethod
    async def _rated_since_resolved(tx: Tx, matter: Matter) -> bool:
        """The reporter rated the matter's latest resolution already (each one may be rated once)."""
        rated = False
        for event in await tx.events(matter.id):
            if event.kind == "resolved":
                rated = False
            elif event.kind == "rated":
                rated = True
        return rated

    # --- shared steps --------------------------------------------------------------
    async def _act(
        self,
        matter_id: int,
        actor: Actor,
        chat: Node | None,
        change: Callable[[Tx, Matter, float], Awaitable[Outcome | None]],
        action: Action,
        when_closed: bool = False,
        on_held: Callable[[Tx, Matter, float], Awaitable[None]] | None = None,
        update: int | None = None,
        write_lock: bool = False,
    ) -> Result:
        """Load, check scope and permission (bot/authority.py), apply ``change`` — all in
        one transaction, ``update``'s. ``on_held``: what to do, in it, when a higher tier holds
        the matter. A refusal is rolled back: nothing changed, and the update's one write
        transaction is left to the handler's answer.

        On PostgreSQL the matter is read ``FOR UPDATE``, first: another worker's change or sweep
        of it waits for this commit and then sees it, so every change is decided on the matter
        as it stands. That row lock is all it takes (``row_locks``), except for ``write_lock``
        (categorize: its urgent alerts are counted per reporter, across matters, so it keeps the
        writers' lock too). A deadlock aborted by PostgreSQL runs the whole again."""
        return await self.store.retrying(lambda: self._act_once(
            matter_id, actor, chat, change, action, when_closed, on_held, update, write_lock))

    async def _act_once(
        self,
        matter_id: int,
        actor: Actor,
        chat: Node | None,
        change: Callable[[Tx, Matter, float], Awaitable[Outcome | None]],
        action: Action,
        when_closed: bool,
        on_held: Callable[[Tx, Matter, float], Awaitable[None]] | None,
        update: int | None,
        write_lock: bool,
    ) -> Result:
        try:
            async with self.store.transaction(update=update, row_locks=not write_lock) as tx:
                matter = await tx.matter_for_update(matter_id)
                if matter is None:
                    raise _Refused(Result(Outcome.NOT_FOUND))
                if chat is not None and not self.tree.contains(chat.id, matter.unit_id):
                    raise _Refused(Result(Outcome.OTHER_UNIT, matter))
                verdict = self._verdict(action, matter, actor)
                if verdict in _REFUSALS:
                    raise _Refused(Result(_REFUSALS[verdict], matter))
                if matter.closed and not when_closed:
                    raise _Refused(Result(Outcome.ALREADY_RESOLVED, matter))
                if verdict == Verdict.HELD_ABOVE:
                    held = Result(Outcome.HELD_ABOVE, matter, tier=self._holder(action, matter))
                    if on_held is None:
                        raise _Refused(held)
                    await on_held(tx, matter, self.clock.now())
                    return held
                refusal = await change(tx, matter, self.clock.now())
                if refusal is not None:
                    raise _Refused(Result(refusal, matter))
                return Result(Outcome.OK, await tx.matter(matter.id))
        except _Refused as refused:
            return refused.result

    def _verdict(self, action: Action, matter: Matter, actor: Actor) -> Verdict:
        return decide(
            action, roles.role(self.tree, actor.id, matter.unit_id).tier, actor.id == matter.reporter_id,
            self._holder(action, matter), person=actor.person,
            resolve_from_below=self.config.escalation.resolve_from_below,
        )

    def _holder(self, action: Action, matter: Matter) -> int:
        """The tier whose say the action needs: the one holding the matter; for reopening a
        closed one, the tier that held it or the closer's, whichever is higher."""
        if action == Action.REOPEN and matter.closed and matter.resolved_by is not None:
            return min(matter.tier, roles.role(self.tree, matter.resolved_by, matter.unit_id).tier or UNIT)
        return matter.tier

    async def _move(
        self, tx: Tx, matter: Matter, actor: Actor, now: float, tier: int, kind: str, note: str | None, claimed: bool
    ) -> None:
        """Hand the matter to ``tier`` with fresh windows, and tell that tier."""
        clock = policy.arrive(tier, now)
        values: dict[str, Any] = {}
        if claimed:
            clock = policy.claimed(clock, now)
            values = {"claimed_by": actor.id, "claimed_by_name": actor.name, "claimed_at": now,
                      "first_claimed_at": matter.first_claimed_at or now}
        if tier < matter.tier:
            values.update(top_tier=min(matter.top_tier, tier), escalated_at=matter.escalated_at or now)
        await tx.update_matter(matter.id, **values, **clock_columns(clock, matter.policy_rules))
        event = await self._event(tx, matter, now, kind, actor, note, tier=tier)
        tx.log_event(kind, matter=matter.id, node=matter.unit_id, from_tier=matter.tier, to_tier=tier,
                     reason="by hand")
        await self._refresh_card(tx, matter, now, event)
        if not claimed:
            updated = await tx.matter(matter.id)
            assert updated is not None
            ping = Ping(updated, kind, tier, kind, event, note)
            await self.notifier.send(tx, [ping], now, may_hold=False)
            if updated.private and tier == UNIT:
                await self._instruct_heads(tx, ping, now)

    async def _instruct_heads(self, tx: Tx, ping: Ping, now: float) -> None:
        """A private matter handed to its unit: the group reads no instruction (bot/visibility.py),
        so each head reads it by DM (those with ``dm: true`` already get the ping's copy)."""
        for head in self.tree.nodes[ping.matter.unit_id].leaders:
            if head.dm or head.id == ping.matter.reporter_id or not await tx.has_private_chat(head.id):
                continue
            await put(tx, outbox.Instruction(ping.matter.id, ping.event_id, head.id,
                                             (ping.kind, ping.tier, ping.reason, ping.note)), now=now)

    async def _event(
        self, tx: Tx, matter: Matter, now: float, kind: str, actor: Actor, detail: str | None = None,
        tier: int | None = None,
    ) -> int:
        return await tx.add_event(
            matter.id, now, kind, actor_id=actor.id, actor_name=actor.name,
            tier=tier if tier is not None else matter.tier, detail=detail,
        )

    async def _refresh_card(self, tx: Tx, matter: Matter, now: float, event: int) -> None:
        # Rendered at delivery time, so several quick changes still end in the latest state.
        await put(tx, outbox.Card(matter.id, matter.chat_id, f"e{event}"), now=now)
        await views.follow(tx, [matter.id], now, f"e{event}")  # and every message about it elsewhere

    async def _tell_reporter(
        self, tx: Tx, matter: Matter, actor: Actor, now: float, event: int, key: str, **params: str
    ) -> None:
        if actor.id == matter.reporter_id:
            return
        words = said(self._to_reporter(matter, actor, key, **params))
        # A private reporter hears back in private; others in their group, under their report.
        chat = matter.reporter_id if matter.private else matter.chat_id
        await put(tx, outbox.ReporterNotice(
            matter.id, event, chat, words, reply_to=None if matter.private else matter.report_message_id,
        ), now=now)

    @staticmethod
    def _to_reporter(matter: Matter, actor: Actor, key: str, **params: str) -> outbox.Say:
        return say(key, reporter=mention(matter.reporter_id, matter.reporter_name), id=matter.id, who=actor.name,
                   resolution=params.get("text", ""), **params)

    async def _tell_leaders(
        self, tx: Tx, matter: Matter, actor: Actor, chat: Node | None, now: float, event: int, state: State,
        text: str, told: int | None = None,
    ) -> None:
        """How a private matter ended, for those who may read it: its heads by DM and the
        community in its group (not the chat the command came from, which has the ack, nor
        ``told``, a chat already told)."""
        unit = self.tree.nodes[matter.unit_id]
        came_from = self.tree.chat_of(chat.id) if chat is not None else None
        for to in await self._private_audience(tx, matter, skip=actor.id):
            if to in (came_from, told):
                continue
            lines = [say("privacy.closed", id=matter.id, unit=unit.name, state=say(f"state.{state.value}"),
                         who=actor.name)]
            if text:
                lines.append(say("card.resolution" if state == State.RESOLVED else "card.close_reason", text=text))
            await put(tx, outbox.Outcome(matter.id, event, to, said(*lines)), now=now)

    async def _private_audience(self, tx: Tx, matter: Matter, skip: int | None = None) -> list[int]:
        """Where a private matter's news goes besides its reporter: each of its unit's heads
        who opened a private chat with the bot, and the community's group."""
        chats = [p.id for p in self.tree.nodes[matter.unit_id].leaders
                 if p.id != skip and p.id != matter.reporter_id and await tx.has_private_chat(p.id)]
        community = target_chat(self.tree, matter.unit_id, COMMUNITY)
        if community is not None and community != matter.chat_id:  # never the unit group itself
            chats.append(community)
        return chats

    def _written_at(self, actor: Actor, chat: Node | None, matter: Matter) -> int:
        """The tier a person's words were written at: theirs, or the chat's if higher."""
        tier = visibility.writer_tier(self.tree, actor.id, matter.unit_id)
        return min(tier, chat.tier) if chat is not None else tier

    async def _ack(self, tx: Tx, ack: Ack | None, now: float, key: str, **params: object) -> None:
        if ack is not None:
            await put(tx, outbox.CommandAnswer(ack.update_id, ack.chat_id, _answer(ack, key, **params), ack.message_id),
                      now=now)

    async def _react(self, tx: Tx, ack: Ack | None, now: float, key: str, **params: object) -> None:
        """A command the card's edit already answers: 👍 on it, not a new message; the short
        reply only if the chat refuses reactions (bot/telegram/delivery.py queues it then)."""
        if ack is not None:
            await put(tx, outbox.Reaction(f"u{ack.update_id}", ack.chat_id, ack.message_id, DONE,
                                          fallback=_answer(ack, key, **params), update_id=ack.update_id), now=now)


def _update_of(ack: Ack | None, update: int | None = None) -> int | None:
    """The update a command is handled for: its Ack's (the command's message), else the one
    given (a button carries no Ack)."""
    return ack.update_id if ack is not None else update


class _Refused(Exception):
    """Leaves ``Matters._act``'s transaction with a refusal, rolling it back."""

    def __init__(self, result: Result) -> None:
        super().__init__(result.outcome)
        self.result = result


def _answer(ack: Ack, key: str, **params: object) -> dict[str, Any]:
    """A command's confirmation, in the language of the person who gave it."""
    return {"language": ack.language, **said(say(key, **params))}


def _tier(tier: int) -> outbox.Say:
    return say(f"tier.{tier}")


_REFUSALS = {
    Verdict.NOT_A_PERSON: Outcome.NOT_A_PERSON,
    Verdict.NOT_ALLOWED: Outcome.NOT_ALLOWED,
    Verdict.NOT_REPORTER: Outcome.NOT_REPORTER,
}
DONE, SEEN = "👍", "👀"  # reactions: a command done; a report someone claimed
RATINGS = ("satisfied", "basic", "unsatisfied")  # 满意 / 基本满意 / 不满意
RATING_UNSATISFIED = "unsatisfied"
__all__ = ["CLOSED", "MAX_TEXT", "RATINGS", "Ack", "Actor", "Matters", "Outcome", "Result"]
