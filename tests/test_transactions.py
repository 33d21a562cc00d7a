"""One write transaction per update, passed explicitly (issue 13): the update a handler
handles is given to ``Store.transaction(update=…)``, which marks it done with the handler's
effect and refuses a second one; and the store and the delivery worker are wired when they
are built, never by assigning callbacks afterwards."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path
from typing import Any

import pytest

from bot.store import QueuedReport, SecondWrite, Store
from tests.conftest import HEAD1, RESIDENT, ROOT, U1_CHAT
from tests.postgres import add_trigger, drop_trigger, fresh_schema, rows

pytestmark = pytest.mark.both_engines  # on SQLite and on PostgreSQL (issue 17)


async def _done(database: str | Path, update_id: int) -> bool:
    found = await rows(str(database), "SELECT done_at FROM inbox WHERE update_id = ?", (update_id,))
    return bool(found) and found[0][0] is not None


def _next_update(bot: Any) -> int:
    """The id the fake server gives the next update a test sends."""
    return int(bot.api._next_update)


async def test_a_second_write_transaction_for_one_update_is_refused(database_url: str) -> None:
    store = await Store.open(database_url)
    try:
        async with store.transaction() as tx:
            await tx.inbox_add([(7, "{}"), (8, "{}")], 1.0)
        async with store.transaction(update=7) as tx:
            await tx.set_meta("first", "1")
        assert await _done(database_url, 7)
        with pytest.raises(SecondWrite, match="update 7"):
            async with store.transaction(update=7) as tx:
                await tx.set_meta("second", "2")
        with pytest.raises(SecondWrite):  # nor may a queued report be the update's second write
            store.queue_report(QueuedReport(7, {}, None, None, None))
        async with store.transaction(update=8) as tx:  # another update has its own
            await tx.set_meta("other", "3")
        async with store.read() as tx:
            written = [await tx.meta_value(key) for key in ("first", "second", "other")]
        assert written == ["1", None, "3"]
    finally:
        await store.close()


async def test_a_refused_transaction_rolled_back_leaves_the_update_its_one_write(database_url: str) -> None:
    store = await Store.open(database_url)
    try:
        async with store.transaction() as tx:
            await tx.inbox_add([(9, "{}")], 1.0)
        with pytest.raises(RuntimeError, match="changed my mind"):
            async with store.transaction(update=9) as tx:
                await tx.set_meta("undone", "1")
                raise RuntimeError("changed my mind")
        assert not await _done(database_url, 9)
        async with store.transaction(update=9) as tx:  # nothing committed: this is its one write
            await tx.set_meta("answer", "1")
        assert await _done(database_url, 9)
    finally:
        await store.close()


async def test_a_handlers_effect_and_its_update_being_done_commit_together(make_bot: Any) -> None:
    async with make_bot() as bot:
        bot.say(U1_CHAT, RESIDENT, "/report 楼道灯坏了")
        await bot.wait_bot(U1_CHAT, "#1")
        await bot.settle()
        await add_trigger(bot.config.database, "no_done", "BEFORE UPDATE OF done_at", "inbox",
                          where="NEW.done_at IS NOT NULL", fail="not now")  # "done" cannot be written
        claim = _next_update(bot)
        bot.say(U1_CHAT, HEAD1, "/claim 1")
        await bot.wait_bot(U1_CHAT, "抱歉")  # the handler's transaction failed as a whole
        await bot.settle()
        [(claimed,)] = await rows(bot.config.database, "SELECT claimed_by FROM matters WHERE id = 1")
        await drop_trigger(bot.config.database, "no_done", "inbox")
        assert claimed is None  # so the claim went with it
        assert not await _done(bot.config.database, claim)


async def test_a_refused_command_is_answered_in_its_updates_one_transaction(make_bot: Any) -> None:
    async with make_bot() as bot:
        bot.say(U1_CHAT, RESIDENT, "/report 楼道灯坏了")
        await bot.wait_bot(U1_CHAT, "#1")
        refused = _next_update(bot)
        bot.say(U1_CHAT, HEAD1, "/claim 99")  # no such matter: the domain refuses, the handler answers
        claimed = _next_update(bot)
        bot.say(U1_CHAT, HEAD1, "/claim 1")
        await bot.wait_bot(U1_CHAT, "99")
        await bot.settle()
        assert await _done(bot.config.database, refused) and await _done(bot.config.database, claimed)
    # make_bot fails the test had any handler been refused a second write transaction


def test_nothing_wires_the_store_or_delivery_after_they_are_built() -> None:
    """The store tells the delivery worker through the Signals it is built with; no code
    assigns a callback (or the store's clock) afterwards."""
    late = []
    for path in sorted(ROOT.glob("**/*.py")):
        if ".venv" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] \
                if isinstance(node, ast.AnnAssign | ast.AugAssign) else []
            late += [f"{path.relative_to(ROOT)}:{node.lineno} .{t.attr}" for t in targets
                     if isinstance(t, ast.Attribute) and (t.attr in ("on_enqueue", "on_lost") or (
                         t.attr == "now" and "store" in ast.unparse(t.value)))]  # its clock comes with it too
    assert late == []
    assert not {"on_enqueue", "on_lost", "bound_unrecorded"} & set(vars(Store))


async def test_write_transactions_of_two_databases_on_one_server_do_not_wait_for_each_other() -> None:
    """PostgreSQL's writers' lock (SQLite's one writer at a time) is a lock of the database,
    i.e. of its schema: two towns on one server, or two tests, never queue behind each other."""
    async with fresh_schema() as one, fresh_schema() as other:
        first, second = await Store.open(one), await Store.open(other)
        try:
            async with first.transaction() as tx:
                await tx.set_meta("held", "1")

                async def elsewhere() -> None:
                    async with second.transaction() as tx2:
                        await tx2.set_meta("meanwhile", "1")

                await asyncio.wait_for(elsewhere(), 5)  # while the first holds its write transaction
        finally:
            await first.close()
            await second.close()
