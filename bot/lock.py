"""One ``tierbot run`` per database: an exclusive lock on ``<database>.lock``.

Two pollers on one database handle every update twice (two matters per report, cards and
escalations sent twice). The lock is a separate file, not the database, so ``tierbot
export``, ``status`` and ``backup`` still read the database while the bot runs. ``flock``
belongs to the open file: the kernel releases it when the process dies, however it dies,
so a stale lock file never keeps the bot down. The holder writes its pid into the file for
the message a second instance prints.

On PostgreSQL (issue 17) there is no file: ``PostgresGuard`` holds an advisory lock on a
connection of its own instead, which the server releases when that connection ends.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


class AlreadyRunning(Exception):
    """Another process holds the lock; ``pid`` is what it wrote (None if unreadable)."""

    def __init__(self, database: str, pid: int | None) -> None:
        holder = f"pid {pid}" if pid is not None else "another process"
        super().__init__(f"tierbot: another tierbot ({holder}) is already running on the database {database}; "
                         "stop it first, or give this one its own database")
        self.pid = pid


def lock_path(database: str | Path) -> Path:
    database = Path(database)
    return database.with_name(database.name + ".lock")


class DatabaseLock:
    """Held from ``acquire`` until ``release`` or the process's end."""

    def __init__(self, database: str | Path) -> None:
        self.database = str(database)
        self.path = lock_path(database)
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise AlreadyRunning(self.database, pid) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)  # the file stays (removing it would race a newcomer)
            os.close(self._fd)
            self._fd = None


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip())
    except (OSError, ValueError):
        return None  # the holder has not written it yet


class PostgresGuard:
    """The same guard on a PostgreSQL database: ``pg_try_advisory_lock`` keyed by the database
    and schema, on a connection of its own held from ``acquire`` to ``release``. The server
    releases it when that connection ends, as the kernel releases a flock; its session's
    application_name carries the pid for a second instance's message."""

    def __init__(self, url: str) -> None:
        from bot.config import shown

        self.url = url
        self.database = shown(url)  # what messages name: no password
        self._conn: Any = None
        self._on_lost: Callable[[Any], None] | None = None

    async def acquire(self, on_lost: Callable[[], None] | None = None) -> None:
        """AlreadyRunning if another process holds the guard; ``on_lost`` is called if the
        connection holding it ends before ``release`` (the server restarted, say): the guard
        is gone then, and a second instance could start."""
        from bot.store import postgres

        conn = await postgres.guard_connection(self.url, os.getpid())
        try:
            key = await postgres.guard_key(conn)
            if not await postgres.try_guard(conn, key):
                raise AlreadyRunning(self.database, await postgres.guard_holder(conn, key))
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        if on_lost is not None:
            self._on_lost = lambda _conn: on_lost()
            conn.add_termination_listener(self._on_lost)

    async def release(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            if self._on_lost is not None:
                conn.remove_termination_listener(self._on_lost)
            with contextlib.suppress(Exception):  # closing ends the session, and the lock with it
                await conn.close()
