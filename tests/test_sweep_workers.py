"""Several workers on one PostgreSQL database (issue 18): the sweep and every state change.

A worker here is a Store of its own (its own connection, lock and group commit) with its own
Matters and Notifier, on one fresh PostgreSQL schema, as each `tierbot run` process has. To
make two workers meet inside a transaction, a worker is paused at a point inside it (a
``Gate``) while the other acts: a sweep batch in ``Notifier.send`` (its due matters taken,
nothing committed), a state change in ``Matters._event`` (its matter read, nothing written).
The scheduled jobs are run by two real Applications (make_bot) on one schema."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from bot.clock import ManualClock
from bot.config import Config
from bot.matters import Actor, Matters, Outcome
from bot.store import QueuedReport, Store
from bot.text.i18n import Languages
from bot.tree import UNIT, Tree
from escalation import policy, sweep
from escalation.notify import Notifier
from tests.conftest import HEAD1, HEAD2, RESIDENT, START, U1_CHAT, parse_town, town
from tests.postgres import rows

H = 3600.0


@dataclass
class Worker:
    store: Store
    matters: Matters
    notifier: Notifier


class Gate:
    """Pauses the first ``count`` calls of an async function until opened; ``reached`` is set
    once they are all waiting."""

    def __init__(self, count: int = 1) -> None:
        self.count = count
        self.reached = asyncio.Event()
        self.opened = asyncio.Event()
        self.waiting = 0

    def wrap(self, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def paused(*args: Any, **kwargs: Any) -> Any:
            if self.waiting < self.count:
                self.waiting += 1
                if self.waiting == self.count:
                    self.reached.set()
                await self.opened.wait()
            return await fn(*args, **kwargs)

        return paused


@asynccontextmanager
async def workers(url: str, count: int, config: Config | None = None,
                  clock: ManualClock | None = None) -> AsyncIterator[list[Worker]]:
    config = config or parse_town(database=url)
    clock = clock or ManualClock(START)
    tree = Tree(config)
    langs = Languages(config.language, config.tz, {c.key: (c.zh, c.en) for c in config.categories})
    async with AsyncExitStack() as stack:
        out = []
        for _ in range(count):
            store = await Store.open(url, now=clock.now)
            stack.push_async_callback(store.close)
            notifier = Notifier(tree, langs, config)
            out.append(Worker(store, Matters(store, tree, langs, clock, config, notifier), notifier))
        yield out


async def add_matters(worker: Worker, count: int, unit: str = "u1", chat: int = U1_CHAT,
                      at: float = START) -> list[int]:
    """``count`` reports at ``at`` (open at the unit, due at its claim deadline)."""
    matters = worker.matters
    node = matters.tree.nodes[unit]
    made = [matters._new_row(node, chat, Actor(RESIDENT, "居民"), f"第{i}件", None, False, at) for i in range(count)]
    ids: list[int] = []
    for start in range(0, count, 500):
        async with worker.store.transaction() as tx:
            ids += [m for m, _ in await tx.insert_reports([QueuedReport(None, row, None) for row in
                                                           made[start:start + 500]])]
    return ids


async def steps(url: str) -> Counter[int]:
    """How often each matter was escalated (its "escalated" events)."""
    return Counter(m for (m,) in await rows(url, "SELECT matter_id FROM events WHERE kind = 'escalated'"))


async def cards(url: str) -> Counter[int]:
    """How often each matter's card was queued for a sweep's step (``card:<id>:s<stamp>``)."""
    found = await rows(url, "SELECT matter_id FROM outbox WHERE kind = 'card' AND key LIKE 'card:%:s%'")
    return Counter(m for (m,) in found)


async def pinged(url: str) -> Counter[int]:
    """How often each matter was named in a queued ping (its data's matters)."""
    named: Counter[int] = Counter()
    for (data,) in await rows(url, "SELECT data FROM outbox WHERE kind = 'ping'"):
        named.update(json.loads(data)["matters"])
    return named


# --- the sweep ---------------------------------------------------------------------------
async def test_three_workers_sweeping_at_once_step_each_due_matter_exactly_once(postgres_url: str) -> None:
    async with workers(postgres_url, 3) as crew:
        ids = await add_matters(crew[0], 3 * sweep.BATCH + 50)
        now = START + 1.5 * H  # past the unit's 1 h claim deadline: each escalates once
        taken = await asyncio.gather(*(sweep.sweep(w.store, w.notifier, now) for w in crew))
        assert sum(taken) == len(ids)
        assert await steps(postgres_url) == Counter(ids)
        assert await cards(postgres_url) == Counter(ids)
        assert await pinged(postgres_url) == Counter(ids)  # each escalation's ping queued once
        [(left,)] = await rows(postgres_url, "SELECT count(*) FROM matters WHERE next_due <= ?", (now,))
        assert left == 0  # none skipped


async def test_a_workers_sweep_goes_on_beside_another_workers_open_batch(postgres_url: str) -> None:
    """Worker A's batch has taken its due matters and not committed: worker B's sweep steps
    the rest meanwhile (the old writers' lock made it wait for A) and passes A's over."""
    async with workers(postgres_url, 2) as (a, b):
        ids = await add_matters(a, sweep.BATCH + 60)
        now = START + 1.5 * H
        gate = Gate()
        a.notifier.send = gate.wrap(a.notifier.send)  # type: ignore[method-assign]
        first = asyncio.create_task(sweep.sweep(a.store, a.notifier, now))
        try:
            await asyncio.wait_for(gate.reached.wait(), 10)
            assert await asyncio.wait_for(sweep.sweep(b.store, b.notifier, now), 5) == 60
            assert sum((await steps(postgres_url)).values()) == 60  # A's 200 not yet
        finally:
            gate.opened.set()
        assert await first == sweep.BATCH
        assert await steps(postgres_url) == Counter(ids)
        assert await pinged(postgres_url) == Counter(ids)


async def test_a_sweep_passes_over_a_matter_being_claimed_and_a_claim_waits_for_a_sweep(postgres_url: str) -> None:
    """The matter row is locked by whoever reads it first: a claim in one worker and a sweep
    in another never both act on the matter as it stood before the other."""
    async with workers(postgres_url, 2) as (a, b):
        claimed, other = await add_matters(a, 2)
        now = START + 1.5 * H
        u1 = a.matters.tree.nodes["u1"]
        gate = Gate()
        a.matters._event = gate.wrap(a.matters._event)  # type: ignore[method-assign]
        claim = asyncio.create_task(a.matters.claim(claimed, Actor(HEAD1, "蒋建国"), u1))
        try:
            await asyncio.wait_for(gate.reached.wait(), 10)
            # B's sweep steps the other matter and passes over the one A is claiming.
            assert await asyncio.wait_for(sweep.sweep(b.store, b.notifier, now), 5) == 1
        finally:
            gate.opened.set()
        assert (await claim).outcome == Outcome.OK
        assert await steps(postgres_url) == Counter([other])
        async with b.store.read() as tx:
            matter = await tx.matter(claimed)
        assert matter is not None and matter.state == policy.State.CLAIMED and matter.tier == UNIT
        assert matter.next_due is not None and matter.next_due > now  # a claimed matter's own deadline

        # The other way round: a sweep batch holds a due matter; a claim of it waits, then
        # decides on the matter as the sweep left it (escalated to the community).
        late = (await add_matters(a, 1, unit="u2", chat=-202))[0]
        gate = Gate()
        b.notifier.send = gate.wrap(b.notifier.send)  # type: ignore[method-assign]
        stepping = asyncio.create_task(sweep.sweep(b.store, b.notifier, now))
        await asyncio.wait_for(gate.reached.wait(), 10)
        u2 = a.matters.tree.nodes["u2"]
        claim = asyncio.create_task(a.matters.claim(late, Actor(HEAD2, "周明"), u2))
        await asyncio.sleep(0.5)
        assert not claim.done()  # waiting for the sweep's row lock
        gate.opened.set()
        assert await stepping == 1
        result = await claim
        assert result.outcome == Outcome.HELD_ABOVE  # the community holds it now: politely refused
        assert (await steps(postgres_url))[late] == 1


@pytest.mark.parametrize("action", ["claim", "resolve"])
async def test_two_workers_acting_on_one_matter_at_once_one_wins_the_other_is_refused(
        postgres_url: str, action: str) -> None:
    async with workers(postgres_url, 2) as (a, b):
        [matter_id] = await add_matters(a, 1)
        u1 = a.matters.tree.nodes["u1"]
        head = Actor(HEAD1, "蒋建国")

        async def act(worker: Worker) -> Any:
            if action == "claim":
                return await worker.matters.claim(matter_id, head, u1)
            return await worker.matters.resolve(matter_id, head, u1, "已清理")

        gate = Gate()
        a.matters._event = gate.wrap(a.matters._event)  # type: ignore[method-assign]
        first = asyncio.create_task(act(a))
        await asyncio.wait_for(gate.reached.wait(), 10)
        second = asyncio.create_task(act(b))  # reads the matter while A's change is under way
        await asyncio.sleep(0.5)
        gate.opened.set()
        outcomes = [(await first).outcome, (await second).outcome]
        refusal = Outcome.ALREADY_CLAIMED if action == "claim" else Outcome.ALREADY_RESOLVED
        assert outcomes == [Outcome.OK, refusal]
        kind = "claimed" if action == "claim" else "resolved"
        [(events,)] = await rows(postgres_url, "SELECT count(*) FROM events WHERE kind = ?", (kind,))
        assert events == 1


async def test_a_deadlocked_state_change_is_run_again(postgres_url: str) -> None:
    """PostgreSQL aborts one side of a deadlock (40P01): the state change is run again whole
    and succeeds, once."""
    async with workers(postgres_url, 2) as (a, b):
        x, y = await add_matters(a, 2)
        u1 = a.matters.tree.nodes["u1"]
        head = Actor(HEAD1, "蒋建国")
        # Each worker's claim, with its matter locked, then wants the other's matter row:
        # a cycle PostgreSQL breaks by aborting one of them.
        both = asyncio.Barrier(2)
        tries: Counter[str] = Counter()

        def crossing(worker: Worker, name: str, other: int) -> None:
            original = worker.matters._event

            async def event(tx: Any, *args: Any, **kwargs: Any) -> Any:
                tries[name] += 1
                if tries[name] == 1:
                    await both.wait()
                    await tx.matter_for_update(other)
                return await original(tx, *args, **kwargs)

            worker.matters._event = event  # type: ignore[method-assign]

        crossing(a, "a", y)
        crossing(b, "b", x)
        results = await asyncio.wait_for(asyncio.gather(a.matters.claim(x, head, u1), b.matters.claim(y, head, u1)),
                                         30)
        assert [r.outcome for r in results] == [Outcome.OK, Outcome.OK]
        assert sorted(tries.values()) == [1, 2]  # one of them ran twice
        [(events,)] = await rows(postgres_url, "SELECT count(*) FROM events WHERE kind = 'claimed'")
        assert events == 2


# --- the scheduled jobs, in two real Applications ------------------------------------------
async def test_two_bots_on_one_database_run_each_scheduled_job_once(make_bot: Any, postgres_url: str) -> None:
    """Two Applications (each its own connection, sweep and schedule) on one schema, the clock
    moved past the end of quiet hours (a held ping released), the 25th at 10:00 (the safety
    polls) and Monday 09:00 (the weekly summary): each job's messages are queued once."""
    raw = town(quiet_hours="22:00-07:00", safety_poll={"enabled": True, "day": 25, "time": "10:00"})
    clock = ManualClock(START + 13 * H)  # Tuesday 23:00: quiet
    async with make_bot(raw, clock=clock, database=postgres_url) as one, \
            make_bot(raw, clock=clock, database=postgres_url) as two:
        assert one.svc.store is not two.svc.store
        # A report that reaches the database without an update (two bots polling one fake
        # would both be handed it: a webhook's business, not this test's).
        await one.svc.matters.report(one.svc.tree.nodes["u1"], U1_CHAT, Actor(RESIDENT, "居民"), "路灯坏了", None)
        async with one.svc.store.read():
            pass
        clock.advance(1.5 * H)  # 00:30: escalated in quiet hours, its ping held
        await wait_rows(postgres_url, "SELECT count(*) FROM held_pings", 1)
        clock.advance(7 * H)  # 07:30: released, by one of them
        await wait_rows(postgres_url, "SELECT count(*) FROM held_pings", 0)
        await asyncio.sleep(0.5)  # both have swept since
        # Escalated to the community at 00:30 (held) and to the station at 07:30, each once;
        # the held ping released in one message, once.
        assert await rows(postgres_url, "SELECT tier FROM events WHERE kind = 'escalated' ORDER BY id") == [(2,), (1,)]
        [(released,)] = await rows(postgres_url, "SELECT count(*) FROM outbox WHERE kind = 'ping' AND key LIKE 'held%'")
        assert released == 1
        clock.advance(3 * H)  # Wednesday 25th, 10:30: the monthly safety polls
        await wait_rows(postgres_url, "SELECT count(*) FROM schedule_runs", 1)
        await asyncio.sleep(0.5)
        clock.advance(5 * 24 * H)  # Monday 30th, 10:30: the weekly summary
        await wait_rows(postgres_url, "SELECT count(*) FROM schedule_runs", 2)
        await asyncio.sleep(0.5)
    runs = await rows(postgres_url, "SELECT name, period FROM schedule_runs")
    assert len(runs) == 2
    polls = await rows(postgres_url, "SELECT chat_id, count(*) FROM outbox WHERE kind = 'safety_poll' GROUP BY chat_id")
    assert polls and all(n == 1 for _, n in polls)
    [(poll_rows,)] = await rows(postgres_url, "SELECT count(*) FROM safety_polls")
    assert poll_rows == len(polls)
    bulletins = await rows(postgres_url, "SELECT key, count(*) FROM outbox WHERE kind = 'bulletin' GROUP BY key")
    assert bulletins and all(n == 1 for _, n in bulletins)
    [(weekly,)] = await rows(postgres_url, "SELECT count(*) FROM outbox WHERE kind = 'bulletin'")
    assert weekly == len(bulletins)


async def wait_rows(url: str, sql: str, want: int, within: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + within
    while True:
        [(got,)] = await rows(url, sql)
        if got == want:
            return
        assert loop.time() < end, f"{sql}: {got}, not {want}"
        await asyncio.sleep(0.05)
