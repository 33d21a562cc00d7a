"""Backup and restore (issue 11): plain sqlite3, as they run from the command line."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from pathlib import Path

from bot.store.schema import SCHEMA_VERSION
from bot.store.store import file_uri


class BadCopy(Exception):
    """A file that is not a sound tierbot database this code can open; nothing was changed."""


def check_copy(path: Path) -> int:
    """Integrity check and schema version of a database file; its version, or BadCopy."""
    try:
        conn = sqlite3.connect(file_uri(path, read_only=True), uri=True)
        try:
            problems = [row[0] for row in conn.execute("PRAGMA integrity_check")]
            (version,) = conn.execute("PRAGMA user_version").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise BadCopy(f"{path}: not a readable SQLite database ({exc})") from exc
    if problems != ["ok"]:
        raise BadCopy(f"{path}: integrity check failed: {'; '.join(problems[:5])}")
    if version < 1:
        raise BadCopy(f"{path}: not a tierbot database (schema version 0)")
    if version > SCHEMA_VERSION:
        raise BadCopy(f"{path}: made by a newer tierbot (schema {version}, this one knows {SCHEMA_VERSION})")
    return int(version)


def copy_database(source: Path, out: Path) -> None:
    """A consistent copy of ``source`` at ``out``, readable by its owner only (0600), taken
    with SQLite's online backup API: all pages in one step, so in one read snapshot; in WAL
    mode a running bot goes on writing meanwhile. Written beside ``out`` and renamed, so
    ``out`` is never half a copy."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, part = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)  # mode 0600
    os.close(fd)
    try:
        src = sqlite3.connect(file_uri(source, read_only=True), uri=True)
        try:
            src.execute("PRAGMA busy_timeout=5000")
            dst = sqlite3.connect(part)
            try:
                src.backup(dst)
                dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
            finally:
                dst.close()
        finally:
            src.close()
        os.replace(part, out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(part)
        raise
    folder = os.open(out.parent, os.O_RDONLY)
    try:  # the rename itself survives a power cut
        os.fsync(folder)
    finally:
        os.close(folder)


def database_files(path: Path) -> list[Path]:
    """The database and the files SQLite keeps beside it."""
    return [path, *(path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal"))]
