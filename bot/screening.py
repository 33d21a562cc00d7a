"""The weekly screening for disputes (矛盾纠纷排查与零报告, issue 16).

``screening.ask_ahead`` before ``screening.due`` (default: Thursday 18:00 for Friday 18:00)
the sweep asks each community's group for the week's screening. Its officers answer with a
tap, **无新增矛盾（零报告）**, or report what they found: **上报发现** asks which unit, then for
a description (a reply to the bot's prompt: ForceReply, which reaches the bot with privacy
mode on); each finding then becomes a matter (private, logged in that unit with the officer
as reporter) or is noted as already handled. One reminder goes out ``remind_ahead`` before
the deadline; a community with no answer by then is named in the station's weekly bulletin
(escalation/weekly.py).

Every answer is one transaction: the screening's state, the finding or matter, and the
messages it changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from apscheduler.triggers.cron import CronTrigger

from bot import outbox
from bot.clock import Clock
from bot.config import Screening
from bot.matters import Actor, Matters
from bot.outbox import put, say
from bot.roles import Act, may
from bot.store import Store, Tx
from bot.store.rows import FindingRow, ScreeningRow
from bot.tree import Tree

SCHEDULE = "screening"
CALLBACK = "sc:"  # sc:zero:<id> · sc:find:<id> · sc:unit:<id>:<unit index> · sc:matter:<finding> · sc:handled:<finding>
MAX_FINDING = 1000  # characters of one finding


class Answer(StrEnum):
    OK = "ok"
    NOT_FOUND = "not_found"
    NOT_ALLOWED = "not_allowed"
    ANSWERED = "answered"  # a zero-report already given, or findings already reported (for zero)
    DECIDED = "decided"  # a finding already turned into a matter or noted
    TOO_LONG = "too_long"


@dataclass(frozen=True)
class Reply:
    answer: Answer
    matter_id: int | None = None


def ask_view(screening: ScreeningRow, community: str, findings: list[FindingRow]) -> dict:
    """The question as it stands: open with its two buttons, or answered (a zero-report;
    findings, each with what became of it; another may still be added)."""
    due = outbox.local_time(screening.due_at)
    head = say("sc.ask", community=community, due=due)
    if screening.state == "zero":
        return outbox.said(head, say("sc.zero_done", who=screening.answered_by_name or "",
                                     at=outbox.local_time(screening.answered_at or 0)))
    lines = [head]
    for f in findings:
        lines.append(say("sc.finding_line", id=f.id, text=f.text[:60],
                         outcome=say(f"sc.outcome.{f.outcome or 'open'}", matter=f.matter_id or 0)))
    buttons = [(say("sc.btn.find"), f"{CALLBACK}find:{screening.id}")]
    if screening.state == "asked":
        buttons.insert(0, (say("sc.btn.zero"), f"{CALLBACK}zero:{screening.id}"))
    return outbox.said(*lines, buttons=[buttons])


def finding_view(finding: FindingRow, unit: str) -> dict:
    text = say("sc.finding", id=finding.id, unit=unit, text=finding.text, who=finding.by_name,
               outcome=say(f"sc.outcome.{finding.outcome or 'open'}", matter=finding.matter_id or 0))
    if finding.outcome is not None:
        return outbox.said(text)
    return outbox.said(text, buttons=[[(say("sc.btn.matter"), f"{CALLBACK}matter:{finding.id}"),
                                       (say("sc.btn.handled"), f"{CALLBACK}handled:{finding.id}")]])


class Screenings:
    def __init__(self, store: Store, tree: Tree, clock: Clock, settings: Screening, matters: Matters) -> None:
        self.store = store
        self.tree = tree
        self.clock = clock
        self.settings = settings
        self.matters = matters

    # --- the sweep: ask, remind ------------------------------------------------------
    async def due_work(self, trigger: CronTrigger, now: float) -> None:
        if not self.settings.enabled:
            return
        due_dt = trigger.get_next_fire_time(None, datetime.fromtimestamp(now, UTC))
        if due_dt is not None and now >= due_dt.timestamp() - self.settings.ask_ahead:
            await self._ask(due_dt.timestamp(), due_dt.astimezone(UTC).isoformat(), now)
        async with self.store.read() as tx:
            to_remind = await tx.screenings_to_remind(now, self.settings.remind_ahead)
        if to_remind:
            async with self.store.transaction() as tx:
                for screening in to_remind:
                    if await tx.mark_screening_reminded(screening.id, now):
                        await put(tx, self._reminder(screening), now=now)

    async def _ask(self, due: float, week: str, now: float) -> None:
        async with self.store.read() as tx:
            if await tx.schedule_ran(SCHEDULE, week):
                return
        async with self.store.transaction() as tx:
            if not await tx.mark_schedule(SCHEDULE, week, now):
                return  # another sweep got there first
            asked = 0
            for community in self.tree.communities():
                chat = self.tree.chat_of(community.id)
                if chat is None:
                    continue
                screening_id = await tx.insert_screening(community.id, week, chat, now, due)
                if screening_id is None:
                    continue
                screening = await tx.screening(screening_id)
                assert screening is not None
                await put(tx, outbox.ScreeningAsk(screening_id, chat, ask_view(screening, community.name, [])),
                          now=now)
                asked += 1
            tx.log_event("screenings_asked", week=week, communities=asked)

    def _reminder(self, screening: ScreeningRow) -> outbox.Notice:
        community = self.tree.nodes.get(screening.community_id)
        officers = community.leaders if community is not None else ()
        return outbox.ScreeningReminder(screening.id, screening.chat_id, outbox.said(say(
            "sc.remind", who=outbox.people([(p.id, p.name) for p in officers]), due=outbox.local_time(screening.due_at),
        )), screening.ask_message_id)

    # --- the officers' answers --------------------------------------------------------
    async def _open(self, tx: Tx, screening_id: int, actor: Actor) -> tuple[Answer, ScreeningRow | None]:
        screening = await tx.screening(screening_id)
        if screening is None or screening.community_id not in self.tree.nodes:
            return Answer.NOT_FOUND, None
        if not actor.person or not may(self.tree, actor.id, Act.SCREEN, screening.community_id):
            return Answer.NOT_ALLOWED, screening
        return Answer.OK, screening

    async def zero_report(self, screening_id: int, actor: Actor, message_id: int | None,
                          update: int | None = None) -> Reply:
        now = self.clock.now()
        async with self.store.transaction(update=update) as tx:
            answer, _ = await self._open(tx, screening_id, actor)
            if answer != Answer.OK:
                return Reply(answer)
            if not await tx.answer_screening(screening_id, "zero", now, actor.id, actor.name):
                return Reply(Answer.ANSWERED)
            await self._show(tx, screening_id, message_id, "zero", now)
            tx.log_event("screening_zero", screening=screening_id)
        return Reply(Answer.OK)

    async def choose_unit(self, screening_id: int, actor: Actor, message_id: int | None, update_id: int) -> Reply:
        """上报发现: which unit? A button per unit of the community."""
        now = self.clock.now()
        async with self.store.transaction(update=update_id) as tx:
            answer, screening = await self._open(tx, screening_id, actor)
            if answer != Answer.OK or screening is None:
                return Reply(answer)
            if screening.state == "zero":
                return Reply(Answer.ANSWERED)
            if message_id is not None and screening.ask_message_id is None:
                await tx.set_screening_message(screening_id, message_id)
            units = self.tree.units_under(screening.community_id)
            rows = [[(say("sc.unit_button", unit=u.name), f"{CALLBACK}unit:{screening_id}:{i}")
                     for i, u in enumerate(units[start:start + 2], start)] for start in range(0, len(units), 2)]
            await put(tx, outbox.ScreeningUnits(screening_id, update_id, screening.chat_id, outbox.said(
                say("sc.which_unit", who=outbox.mention(actor.id, actor.name)), buttons=rows), message_id), now=now)
        return Reply(Answer.OK)

    async def ask_text(self, screening_id: int, unit_index: int, actor: Actor, message_id: int | None,
                       update_id: int) -> Reply:
        """The unit chosen: ask for the finding as a reply (ForceReply, naming the officer)."""
        now = self.clock.now()
        async with self.store.transaction(update=update_id) as tx:
            answer, screening = await self._open(tx, screening_id, actor)
            if answer != Answer.OK or screening is None:
                return Reply(answer)
            units = self.tree.units_under(screening.community_id)
            if not 0 <= unit_index < len(units):
                return Reply(Answer.NOT_FOUND)
            unit = units[unit_index]
            await put(tx, outbox.ScreeningPrompt(
                screening_id, unit.id, update_id, screening.chat_id,
                outbox.said(say("sc.ask_text", who=outbox.mention(actor.id, actor.name), unit=unit.name,
                                max=MAX_FINDING)),
                message_id, {"force_reply": True, "selective": True},
            ), now=now)
        return Reply(Answer.OK)

    async def add_finding(self, screening_id: int, unit_id: str, chat_id: int, actor: Actor, text: str,
                          update_id: int, answer: Callable[[Reply], outbox.Notice | None]) -> Reply:
        """The officer's reply to the prompt about ``unit_id``: a finding there. The handler's
        ``answer`` to it is queued in the same transaction (the update's one)."""
        now = self.clock.now()
        async with self.store.transaction(update=update_id) as tx:
            done = await self._add_finding(tx, screening_id, unit_id, chat_id, actor, text.strip(), now)
            if (said := answer(done)) is not None:
                await put(tx, said, now=now)
        return done

    async def _add_finding(self, tx: Tx, screening_id: int, unit_id: str, chat_id: int, actor: Actor, text: str,
                           now: float) -> Reply:
        answer, screening = await self._open(tx, screening_id, actor)
        if answer != Answer.OK or screening is None:
            return Reply(answer)
        if not text or len(text) > MAX_FINDING or unit_id not in self.tree.nodes:
            return Reply(Answer.TOO_LONG)
        if screening.state == "zero":
            return Reply(Answer.ANSWERED)
        await tx.answer_screening(screening_id, "found", now, actor.id, actor.name)
        finding_id = await tx.add_finding(screening_id, unit_id, text, actor.id, actor.name, now)
        finding = await tx.finding(finding_id)
        assert finding is not None
        await put(tx, outbox.FindingCard(finding_id, chat_id, finding_view(finding, self.tree.name_of(unit_id))),
                  now=now)
        await self._show(tx, screening_id, None, f"f{finding_id}", now)
        tx.log_event("screening_finding", screening=screening_id, finding=finding_id, node=unit_id)
        return Reply(Answer.OK)

    async def decide(self, finding_id: int, to_matter: bool, actor: Actor, message_id: int | None,
                     update: int | None = None) -> Reply:
        """A finding becomes a matter in its unit (private: a household's problem is not
        posted to the whole group), or is noted as already handled."""
        now = self.clock.now()
        async with self.store.transaction(update=update) as tx:
            finding = await tx.finding(finding_id)
            if finding is None or finding.unit_id not in self.tree.nodes:
                return Reply(Answer.NOT_FOUND)
            answer, screening = await self._open(tx, finding.screening_id, actor)
            if answer != Answer.OK or screening is None:
                return Reply(answer)
            if finding.outcome is not None:
                return Reply(Answer.DECIDED, finding.matter_id)
            matter_id = None
            if to_matter:
                matter_id = await self.matters.log_found(tx, self.tree.nodes[finding.unit_id], actor, finding.text,
                                                         private=True, now=now)
            await tx.decide_finding(finding_id, "matter" if to_matter else "handled", now, matter_id)
            decided = await tx.finding(finding_id)
            assert decided is not None
            if message_id is not None:
                await put(tx, outbox.FindingEdit(finding_id, screening.chat_id, message_id,
                                                 finding_view(decided, self.tree.name_of(decided.unit_id))), now=now)
            await self._show(tx, screening.id, None, f"d{finding_id}", now)
            tx.log_event("screening_decided", finding=finding_id, matter=matter_id or 0)
        return Reply(Answer.OK, matter_id)

    async def _show(self, tx: Tx, screening_id: int, message_id: int | None, tag: str, now: float) -> None:
        """Rewrite the question's message as the screening stands now."""
        screening = await tx.screening(screening_id)
        if screening is None:
            return
        message_id = message_id or screening.ask_message_id
        if message_id is None:
            return
        if screening.ask_message_id is None:
            await tx.set_screening_message(screening_id, message_id)
        view = ask_view(screening, self.tree.name_of(screening.community_id), await tx.findings_of(screening_id))
        await put(tx, outbox.ScreeningAskEdit(screening_id, screening.chat_id, message_id, tag, view), now=now)


async def missing_names(tx: Tx, tree: Tree, start: float, end: float, station: str | None = None) -> tuple[str, ...]:
    """Communities (of ``station``'s) whose screening due in [start, end) had no answer by its deadline."""
    return tuple(tree.name_of(c) for c in await tx.screenings_missing(start, end)
                 if station is None or tree.station_of(c) in (None, tree.nodes[station]))
