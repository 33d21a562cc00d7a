"""The weekly safety notice to the village (治安通报, issue 16).

On ``notice.due`` (default Friday 16:00) the sweep drafts each community's notice from the
week's figures and posts it to the community's group with 发布 / 修改 / 不发. 发布 sends it
to every unit group of the community as a broadcast (bot/broadcasts.py: its delivery
report as for /broadcast); 修改 asks for the new text as a reply to a prompt (ForceReply,
which reaches the bot with privacy mode on); 不发 leaves it. A draft not published within
a day is named in the station's next weekly bulletin (escalation/weekly.py).

Each decision is one transaction: the notice's state, the broadcast it causes and the
draft's message rewritten to show what became of it. Drafting is once a week per community,
kept by the schedule's run and the table's unique (community, week).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from bot import outbox
from bot.broadcasts import MAX_TEXT, Broadcasts
from bot.clock import Clock
from bot.config import VillageNotice
from bot.matters import Actor
from bot.outbox import put, say
from bot.roles import Act, may
from bot.store import Store, Tx
from bot.store.rows import VillageNoticeRow
from bot.tree import Tree
from escalation.reports import bulletin, service
from escalation.summary import Figures, rollup

log = logging.getLogger(__name__)

SCHEDULE = "village_notice"
CATCH_UP = 86400.0  # a draft missed by more than a day is stale; skip that week
GRACE = 86400.0  # a draft not published within a day is named in the station's bulletin
CALLBACK = "vn:"  # vn:<pub|edit|skip>:<notice id>
# The draft's words from a community's week: (its chat, its figures) → plain text. It is the
# renderer's (bot/text/render.py's village_notice_body, in the chat's language), handed in
# by the sweep: the draft is the officer's to edit, so its text is kept once made.
Drafter = Callable[[int, Figures], str]


class Answer(StrEnum):
    OK = "ok"
    NOT_FOUND = "not_found"
    NOT_ALLOWED = "not_allowed"
    DECIDED = "decided"  # published or skipped already
    TOO_LONG = "too_long"
    NO_TARGETS = "no_targets"


@dataclass(frozen=True)
class Decision:
    answer: Answer
    notice: VillageNoticeRow | None = None


def view(notice: VillageNoticeRow, community: str) -> dict:
    """What the draft's message shows (words composed when sent): its state and text, and
    the officer's buttons while it is a draft."""
    if notice.state == "draft":
        return outbox.said(
            say("vn.draft", community=community, id=notice.id, text=notice.text),
            buttons=[[(say("vn.btn.publish"), f"{CALLBACK}pub:{notice.id}"),
                      (say("vn.btn.edit"), f"{CALLBACK}edit:{notice.id}"),
                      (say("vn.btn.skip"), f"{CALLBACK}skip:{notice.id}")]],
        )
    key = "vn.published" if notice.state == "published" else "vn.skipped"
    return outbox.said(say(key, community=community, id=notice.id, text=notice.text,
                           who=notice.decided_by_name or "", at=outbox.local_time(notice.decided_at or 0)))


class VillageNotices:
    def __init__(self, store: Store, tree: Tree, clock: Clock, settings: VillageNotice) -> None:
        self.store = store
        self.tree = tree
        self.clock = clock
        self.settings = settings

    # --- drafting -------------------------------------------------------------------
    async def draft_due(self, trigger: CronTrigger, now: float, tz: ZoneInfo, drafter: Drafter,
                        since: float = 0.0) -> int:
        """Draft this week's notices if due and not yet drafted; how many were queued."""
        from escalation.weekly import last_fire  # the bulletins' schedule rule, shared

        if not self.settings.enabled:
            return 0
        fire = last_fire(trigger, now)
        if fire is None or now - fire > CATCH_UP or fire < since:
            return 0
        week = datetime.fromtimestamp(fire, UTC).isoformat()
        async with self.store.read() as tx:
            if await tx.schedule_ran(SCHEDULE, week):
                return 0
        communities = [(c, chat) for c in self.tree.communities() if (chat := self.tree.chat_of(c.id)) is not None]
        period = bulletin.weekly_period(fire, tz=tz)
        figures = await service.period_figures(self.store, self.tree, period, history=False, now=now)
        drafted = 0
        async with self.store.transaction() as tx:
            if not await tx.mark_schedule(SCHEDULE, week, now):
                return 0  # another sweep got there first
            for community, chat in communities:
                text = drafter(chat, rollup(self.tree, community.id, figures.current))
                notice_id = await tx.insert_village_notice(community.id, week, chat, text, now)
                if notice_id is None:
                    continue
                notice = await tx.village_notice(notice_id)
                assert notice is not None
                await put(tx, outbox.NoticeDraft(notice_id, chat, view(notice, community.name)), now=now)
                drafted += 1
            tx.log_event("village_notices_drafted", week=week, communities=drafted)
        return drafted

    # --- the officer's buttons and reply ----------------------------------------------
    async def _load(self, tx: Tx, notice_id: int, actor: Actor) -> Decision:
        notice = await tx.village_notice(notice_id)
        if notice is None or notice.community_id not in self.tree.nodes:
            return Decision(Answer.NOT_FOUND)
        if not actor.person or not may(self.tree, actor.id, Act.BROADCAST, notice.community_id):
            return Decision(Answer.NOT_ALLOWED, notice)
        if notice.state != "draft":
            return Decision(Answer.DECIDED, notice)
        return Decision(Answer.OK, notice)

    async def publish(self, notice_id: int, actor: Actor, message_id: int | None, language: str,
                      update: int | None = None) -> Decision:
        """Send the draft to every unit group of its community, as a broadcast (in
        ``update``'s one write transaction)."""
        now = self.clock.now()
        async with self.store.transaction(update=update) as tx:
            decision = await self._load(tx, notice_id, actor)
            if decision.answer != Answer.OK:
                return decision
            notice = decision.notice
            assert notice is not None
            community = self.tree.nodes[notice.community_id]
            if len(notice.text) > MAX_TEXT:
                return Decision(Answer.TOO_LONG, notice)
            queued = await Broadcasts(self.store, self.tree, self.clock).queue(
                tx, community, notice.chat_id, message_id, actor, notice.text, None, language, now
            )
            if queued is None:
                return Decision(Answer.NO_TARGETS, notice)
            await tx.decide_village_notice(notice.id, "published", now, actor.id, actor.name, queued.id)
            await self._show(tx, notice.id, message_id, "published", now)
            tx.log_event("village_notice_published", notice=notice.id, community=community.id, broadcast=queued.id)
        return Decision(Answer.OK, notice)

    async def skip(self, notice_id: int, actor: Actor, message_id: int | None, update: int | None = None) -> Decision:
        now = self.clock.now()
        async with self.store.transaction(update=update) as tx:
            decision = await self._load(tx, notice_id, actor)
            if decision.answer != Answer.OK:
                return decision
            assert decision.notice is not None
            await tx.decide_village_notice(notice_id, "skipped", now, actor.id, actor.name)
            await self._show(tx, notice_id, message_id, "skipped", now)
            tx.log_event("village_notice_skipped", notice=notice_id, community=decision.notice.community_id)
        return decision

    async def ask_for_text(self, notice_id: int, actor: Actor, message_id: int | None, update_id: int) -> Decision:
        """Ask the officer for the new text: a prompt to reply to, naming them (so that
        Telegram's ForceReply opens the reply for them alone)."""
        now = self.clock.now()
        async with self.store.transaction(update=update_id) as tx:
            decision = await self._load(tx, notice_id, actor)
            if decision.answer != Answer.OK:
                return decision
            notice = decision.notice
            assert notice is not None
            if message_id is not None:
                await tx.set_village_notice_message(notice_id, message_id)
            prompt = outbox.said(say("vn.ask_text", who=outbox.mention(actor.id, actor.name), id=notice_id,
                                     max=MAX_TEXT))
            await put(tx, outbox.NoticePrompt(notice_id, update_id, notice.chat_id, prompt, message_id,
                                              {"force_reply": True, "selective": True}), now=now)
        return decision

    async def replace_text(self, notice_id: int, actor: Actor, text: str, update_id: int,
                           answer: Callable[[Decision], outbox.Notice | None]) -> Decision:
        """The officer's reply to the prompt about ``notice_id``: the draft's new text. The
        handler's ``answer`` to it is queued in the same transaction (the update's one)."""
        now = self.clock.now()
        async with self.store.transaction(update=update_id) as tx:
            decision = await self._replace_text(tx, notice_id, actor, text.strip(), update_id, now)
            if (said := answer(decision)) is not None:
                await put(tx, said, now=now)
        return decision

    async def _replace_text(self, tx: Tx, notice_id: int, actor: Actor, text: str, update_id: int,
                            now: float) -> Decision:
        decision = await self._load(tx, notice_id, actor)
        if decision.answer != Answer.OK:
            return decision
        notice = decision.notice
        assert notice is not None
        if not text or len(text) > MAX_TEXT:  # MAX_TEXT leaves room for the heading
            return Decision(Answer.TOO_LONG, notice)
        await tx.set_village_notice_text(notice_id, text)
        await self._show(tx, notice_id, notice.draft_message_id, f"u{update_id}", now)
        tx.log_event("village_notice_edited", notice=notice_id)
        return decision

    async def _show(self, tx: Tx, notice_id: int, message_id: int | None, tag: str, now: float) -> None:
        """Rewrite the draft's message as the notice is now."""
        notice = await tx.village_notice(notice_id)
        message_id = message_id or (notice.draft_message_id if notice else None)
        if notice is None or message_id is None:
            return
        name = self.tree.name_of(notice.community_id)
        await put(tx, outbox.NoticeDraftEdit(notice_id, notice.chat_id, message_id, tag, view(notice, name)), now=now)


async def late_names(tx: Tx, tree: Tree, start: float, end: float, station: str | None = None) -> tuple[str, ...]:
    """Communities (of ``station``'s) whose notice, due to be published in [start, end), was not within a day."""
    return tuple(tree.name_of(c) for c in await tx.village_notices_late(start, end, GRACE)
                 if station is None or tree.station_of(c) in (None, tree.nodes[station]))
