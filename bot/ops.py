"""What an operator runs beside the bot: ``tierbot status``, ``backup``, ``restore`` and
``migrate-db`` (issue 17).

``status`` and ``backup`` read the database through a read-only connection, so they work
while the bot runs (WAL: neither blocks it) and never take its single-instance lock.
``restore`` replaces the database, so it refuses while a bot holds that lock, and holds
it itself meanwhile.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bot import store as storage
from bot.config import Config, shown
from bot.lock import DatabaseLock, PostgresGuard
from bot.text.i18n import Texts
from bot.tree import Tree
from escalation import policy

if TYPE_CHECKING:
    from bot.store.move import Moved

TIER_NAMES = {3: "units", 2: "communities", 1: "station"}


@dataclass
class Status:
    """What ``tierbot status`` prints, and the problems that make it exit 1."""

    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@contextlib.contextmanager
def holding_lock(database: str | Path) -> Iterator[None]:
    """Hold the running bot's own lock (bot/lock.py) while replacing its database;
    AlreadyRunning, at once, if a bot holds it."""
    lock = DatabaseLock(database)
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


async def status(config: Config, now: float, max_backlog_age: float, max_sweep_age: float) -> Status:
    """The database's state as an operator checks it; problems when the oldest message
    waiting or the last sweep is older than its threshold (or the sweep never ran)."""
    t = Texts("en", config.tz)
    tree = Tree(config)
    out = Status()
    out.lines.append(f"database: {shown(config.database)}")
    async with storage.read_only(config.database) as tx:
        version = await tx.schema_version()
        by_tier = await tx.open_by_tier()
        running = await tx.running_matters()
        backlog, oldest_at, oldest_key = await tx.outbox_backlog()
        unreachable = sorted(await tx.unreachable_chats())
        failed = await tx.inbox_failed_count()
        last_sweep = await tx.meta_value(storage.LAST_SWEEP)
    newer = f" (newer than this tierbot's {storage.SCHEMA_VERSION})" if version > storage.SCHEMA_VERSION else ""
    out.lines.append(f"schema version: {version}{newer}")
    out.lines.append(
        f"open matters: {sum(by_tier.values())} ("
        + ", ".join(f"tier {tier} {TIER_NAMES[tier]}: {by_tier.get(tier, 0)}" for tier in (3, 2, 1)) + ")"
    )
    out.lines.append(f"oldest overdue: {_oldest_overdue(running, now, t)}")
    if backlog and oldest_at is not None:
        age = now - oldest_at
        out.lines.append(f"outbox backlog: {backlog} message(s), the oldest queued {t.duration(age)} ago "
                         f"({oldest_key})")
        if age > max_backlog_age:
            out.problems.append(f"the oldest message waiting was queued {t.duration(age)} ago "
                                f"(limit {t.duration(max_backlog_age)})")
    else:
        out.lines.append("outbox backlog: none")
    names = [f"{chat} ({node.id})" if (node := tree.node_for_chat(chat)) else str(chat) for chat in unreachable]
    out.lines.append(f"unreachable chats: {len(names)}{': ' + ', '.join(names[:20]) if names else ''}"
                     f"{' …' if len(names) > 20 else ''}")
    out.lines.append(f"failed inbox updates: {failed}")
    if last_sweep is None:
        out.lines.append("last sweep: never")
        out.problems.append("no sweep has run on this database")
    else:
        age = now - float(last_sweep)
        out.lines.append(f"last sweep: {t.duration(age)} ago ({_local(float(last_sweep), config)})")
        if age > max_sweep_age:
            out.problems.append(f"the last sweep ran {t.duration(age)} ago (limit {t.duration(max_sweep_age)})")
    out.lines.append(f"next bulletin: weekly {_next_fire(config.weekly_trigger(), now, config)}, "
                     f"monthly {_next_fire(config.monthly_trigger(), now, config)} ({config.timezone})")
    return out


def _oldest_overdue(matters: list[storage.Matter], now: float, t: Texts) -> str:
    worst: tuple[float, storage.Matter, str] | None = None
    for matter in matters:
        rules, clock = matter.policy_rules, matter.clock
        for due, what in ((policy.claim_due(clock, rules), "claim"), (policy.resolve_due(clock, rules), "resolve")):
            if due is not None and due < now and (worst is None or due < worst[0]):
                worst = (due, matter, what)
    if worst is None:
        return "none"
    due, matter, what = worst
    return (f"matter {matter.id} at tier {matter.tier} ({matter.unit_id}), "
            f"{t.duration(now - due)} past its {what} deadline")


def _local(ts: float, config: Config) -> str:
    return datetime.fromtimestamp(ts, config.tz).strftime("%Y-%m-%d %H:%M:%S")


def _next_fire(trigger: object, now: float, config: Config) -> str:
    fire = trigger.get_next_fire_time(None, datetime.fromtimestamp(now, UTC))  # type: ignore[attr-defined]
    return fire.astimezone(config.tz).strftime("%Y-%m-%d %H:%M") if fire else "never"


def backup(database: Path, out: Path) -> int:
    """Copy the database (bot running or not) to ``out`` and check the copy; its schema version."""
    if not database.is_file():
        raise storage.BadCopy(f"no database at {database}")
    storage.copy_database(database, out)
    return storage.check_copy(out)


def restore(database: Path, source: Path) -> tuple[int, Path | None]:
    """Put the backup ``source`` in place of the database, after checking it; the bot must
    be stopped. The database it replaces is kept beside it (as a checked copy, or as its
    files if it cannot be read). Returns the schema version restored and where the old
    database went."""
    if source.resolve() in {p.resolve() for p in storage.database_files(database)}:
        raise storage.BadCopy(f"{source} is the database itself; restore from a copy made by tierbot backup")
    version = storage.check_copy(source)
    with holding_lock(database):
        kept: Path | None = None
        if any(p.exists() for p in storage.database_files(database)):
            stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
            kept = database.with_name(f"{database.name}.before-restore-{stamp}")
            try:
                storage.copy_database(database, kept)
            except Exception:  # unreadable (the reason to restore, perhaps): keep its files as they are
                for path, suffix in zip(storage.database_files(database), ("", "-wal", "-shm", "-journal"),
                                        strict=True):
                    if path.exists():
                        path.rename(kept.with_name(kept.name + suffix))
            for path in storage.database_files(database):  # a stale -wal must not be applied to the copy
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        storage.copy_database(source, database)
        storage.check_copy(database)
    return version, kept


async def migrate_db(source: Path, url: str) -> Moved:
    """``tierbot migrate-db``: copy the town's SQLite database into PostgreSQL, with the bot
    stopped on both (the source's lock and the target's guard held meanwhile, so that neither
    changes under the copy: AlreadyRunning if a bot holds one)."""
    from bot.store import move as storage_move  # asyncpg only for those who use it

    with holding_lock(source):
        guard = PostgresGuard(url)
        await guard.acquire()
        try:
            return await storage_move.copy_to_postgres(source, url)
        finally:
            await guard.release()
