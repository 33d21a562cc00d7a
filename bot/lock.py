"""One ``tierbot run`` per database: an exclusive lock on ``<database>.lock``.

Two pollers on one database handle every update twice (two matters per report, cards and
escalations sent twice). The lock is a separate file, not the database, so ``tierbot
export``, ``status`` and ``backup`` still read the database while the bot runs. ``flock``
belongs to the open file: the kernel releases it when the process dies, however it dies,
so a stale lock file never keeps the bot down. The holder writes its pid into the file for
the message a second instance prints.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path


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
