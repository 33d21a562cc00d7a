"""The SQL of both engines (issue 17): the queries in the canonical spelling, and the migrations.

The queries (bot/store/queries.py) are written once, in the spelling the two dialects share:
PostgreSQL's numbered ``$n`` parameters, ``INSERT … ON CONFLICT DO NOTHING`` / ``DO UPDATE``,
``RETURNING``. PostgreSQL reads them as they are (``postgres_query``); SQLite (≥ 3.35) reads
them once ``$n`` is its ``?n``, as mautrix-python's async_db does (``sqlite_query``). A list
compared with ``= ANY($n)`` is PostgreSQL's array; for SQLite, ``sqlite_form`` spreads it into
``IN (?a, …)``. Where the engines truly differ, Tx has a small branch (its ``_indexed_by``, the
JSON of ``data``, rowid/ctid, the schema version); the writers' lock is ``BEGIN IMMEDIATE``
on SQLite and an advisory lock taken with ``BEGIN`` on PostgreSQL (``WRITE_LOCK``).

SQL in the old spelling (SQLite's ``?``), from code not yet respelled or from the tests'
own looks (tests/postgres.py's rows), is still translated for PostgreSQL: ``?`` → ``$n``,
``INSERT OR IGNORE`` → ``ON CONFLICT DO NOTHING``. What cannot be rewritten by spelling alone
is refused (``Untranslatable``), naming what, rather than run with another meaning: PRAGMAs,
SQLite's JSON functions, ``rowid``, date functions, triggers, ``INSERT OR REPLACE``,
``INDEXED BY``, ``group_concat``, ``IS`` between values.

The schema (bot/store/schema.py) is written for SQLite, and its migrations are respelled for
PostgreSQL mechanically: types (INTEGER → BIGINT for Telegram's 64-bit ids, REAL → DOUBLE
PRECISION, BLOB → BYTEA, ``INTEGER PRIMARY KEY`` → an identity column, ``WITHOUT ROWID``
dropped) and the old spelling's rewrites above. A migration that needs another shape on
PostgreSQL (a table rebuild, written there as ALTERs) has an explicit form in
``POSTGRES_FORMS``, found by a phrase only its SQLite text contains (so that renumbering the
migrations at a merge does not move it).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from bot.store.schema import MIGRATIONS


class Untranslatable(ValueError):
    """SQL whose PostgreSQL form is not a matter of spelling: it needs a form of its own."""


# A migration's PostgreSQL form where the mechanical one is not enough, keyed by a phrase
# found in that migration's SQLite text and in no other.
POSTGRES_FORMS: dict[str, str] = {
    # 6 (issue 10/11): SQLite rebuilds the inbox to drop payload's NOT NULL; PostgreSQL alters it.
    "CREATE TABLE inbox_new": """
    ALTER TABLE inbox ALTER COLUMN payload DROP NOT NULL;
    ALTER TABLE inbox ADD COLUMN tries BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE inbox ADD COLUMN failed_at DOUBLE PRECISION;
    ALTER TABLE inbox ADD COLUMN error TEXT;
    UPDATE inbox SET payload = NULL WHERE done_at IS NOT NULL;
    CREATE INDEX inbox_failed ON inbox(failed_at) WHERE failed_at IS NOT NULL;

    ALTER TABLE matters ADD COLUMN purged_at DOUBLE PRECISION;
    CREATE INDEX matters_unpurged ON matters(closed_at) WHERE purged_at IS NULL;
    """,
    # issue 18: SQLite rebuilds the inbox to key it by (bot_id, update_id); PostgreSQL alters its key.
    "CREATE TABLE inbox_keyed": """
    ALTER TABLE inbox ADD COLUMN bot_id BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE inbox DROP CONSTRAINT inbox_pkey;
    ALTER TABLE inbox ADD PRIMARY KEY (bot_id, update_id);
    DROP INDEX inbox_pending;
    CREATE INDEX inbox_pending ON inbox(bot_id, update_id) WHERE done_at IS NULL;
    """,
}

# Constructs with no mechanical PostgreSQL spelling (checked outside string literals).
_REFUSED = [
    (re.compile(r"\bPRAGMA\b", re.I), "a PRAGMA"),
    (re.compile(r"\bjson_(each|extract|type|array_length|group_array|object|tree|set|insert|remove)\s*\(", re.I),
     "SQLite's JSON functions"),
    (re.compile(r"\browid\b", re.I), "rowid"),
    (re.compile(r"\b(strftime|julianday|unixepoch|datetime|date|time)\s*\(", re.I), "SQLite's date functions"),
    (re.compile(r"\b(ifnull|instr|printf|total|iif)\s*\(", re.I), "a SQLite-only function"),
    (re.compile(r"\bCREATE\s+(TEMP\s+)?TRIGGER\b", re.I), "a trigger"),
    (re.compile(r"\bCREATE\s+VIRTUAL\b", re.I), "a virtual table"),
    (re.compile(r"\bGLOB\b", re.I), "GLOB"),
    (re.compile(r"\bINSERT\s+OR\s+(REPLACE|ROLLBACK|ABORT|FAIL)\b", re.I),
     "an INSERT OR … other than IGNORE (write ON CONFLICT (key) DO UPDATE SET …)"),
    # What the canonical spelling writes as a branch in Tx (bot/store/queries.py), not translated any more.
    (re.compile(r"\bINDEXED\s+BY\b", re.I), "a planner hint (Tx._indexed_by)"),
    (re.compile(r"\bgroup_concat\s*\(", re.I), "group_concat (gather the rows in Python)"),
    # SQLite's IS / IS NOT compare any two values, NULL-safe; PostgreSQL's only take NULL, TRUE…
    (re.compile(r"\bIS\s+(NOT\s+)?(?!(?:NULL|TRUE|FALSE|UNKNOWN|DISTINCT|NOT|OF|DOCUMENT|NORMALIZED)\b)(?=[?\x00\w(])",
                re.I), "SQLite's IS between values (write x IS NULL OR x != $n)"),
]

_LITERAL = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*")
_MARK = "\x00{}\x00"
_MARKED = re.compile("\x00(\\d+)\x00")


def _masked(sql: str) -> tuple[str, list[str]]:
    """``sql`` with its string literals, quoted names and comments replaced by marks, so
    that the rewrites below never touch what is inside them."""
    kept: list[str] = []

    def keep(match: re.Match[str]) -> str:
        kept.append(match.group(0))
        return _MARK.format(len(kept) - 1)

    return _LITERAL.sub(keep, sql), kept


def _unmasked(sql: str, kept: list[str]) -> str:
    return _MARKED.sub(lambda m: kept[int(m.group(1))], sql)


def _refuse(code: str, where: str) -> None:
    for pattern, what in _REFUSED:
        if match := pattern.search(code):
            raise Untranslatable(f"{where}: {what} ({match.group(0).strip()!r}) has no mechanical PostgreSQL form")


# --- the schema --------------------------------------------------------------------------
_DDL = [
    (re.compile(r"\bINTEGER\s+PRIMARY\s+KEY(\s+AUTOINCREMENT)?\b", re.I),
     "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
    (re.compile(r"\bINTEGER\b", re.I), "BIGINT"),
    (re.compile(r"\bREAL\b", re.I), "DOUBLE PRECISION"),
    (re.compile(r"\bBLOB\b", re.I), "BYTEA"),
    (re.compile(r"\)\s*WITHOUT\s+ROWID\b", re.I), ")"),
    (re.compile(r"\)\s*STRICT\b", re.I), ")"),
]


def statements(script: str) -> list[str]:
    """A script's statements (split as bot/store/store.py splits SQLite's, but never inside a literal)."""
    code, kept = _masked(script)
    return [_unmasked(s, kept).strip() for s in code.split(";") if s.strip()]


def postgres_form(sqlite: str) -> str | None:
    """The explicit PostgreSQL form of this migration, if it has one."""
    forms = [form for phrase, form in POSTGRES_FORMS.items() if phrase in sqlite]
    if len(forms) > 1:
        raise Untranslatable("more than one PostgreSQL form matches one migration")
    return forms[0] if forms else None


def postgres_migration(sqlite: str, number: int = 0) -> list[str]:
    """One migration's statements for PostgreSQL: its explicit form, else its SQLite text
    respelled statement by statement."""
    if (form := postgres_form(sqlite)) is not None:
        return statements(form)
    out = []
    for statement in statements(sqlite):
        code, kept = _masked(statement)
        for pattern, spelling in _DDL:
            code = pattern.sub(spelling, code)
        _refuse(code, f"migration {number}" if number else "a migration")
        out.append(_unmasked(_rewrite_query(code, f"migration {number}"), kept))
    return out


def postgres_migrations() -> list[list[str]]:
    """Every migration of bot/store/schema.py, for PostgreSQL, in order (1 first)."""
    return [postgres_migration(sql, number) for number, sql in enumerate(MIGRATIONS, start=1)]


# The version table: PostgreSQL has no PRAGMA user_version.
VERSION_TABLE = "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)"
# Advisory locks are shared by every schema of a database, so ours are two-key locks: a class
# of ours and the schema's hash. Two towns (or two tests) in two schemas of one database never
# wait for each other; the single-instance guard (bot/store/postgres.py) has a class of its own.
# Every process migrating at once waits for the one that holds MIGRATION_LOCK.
MIGRATION_LOCK = 0x74626D67  # "tbmg"
# SQLite's BEGIN IMMEDIATE makes one writer at a time, across processes: the hourly limit
# counts every process's reports in its write transaction and relies on it. PostgreSQL's
# BEGIN does not, so a write transaction takes WRITE_LOCK first, in the same trip.
WRITE_LOCK = 0x7462776C  # "tbwl"
SCHEMA_KEY = "hashtext(current_schema())"

# --- the queries in the old spelling (SQLite's), until they are respelled ----------------
_INSERT_OR_IGNORE = re.compile(r"^\s*INSERT\s+OR\s+IGNORE\s+INTO\s+(\w+)", re.I)
_RETURNING = re.compile(r"\bRETURNING\b", re.I)
_BEGIN = re.compile(r"^\s*BEGIN\s+(IMMEDIATE|EXCLUSIVE)\s*$", re.I)
_BEGIN_DEFERRED = re.compile(r"^\s*BEGIN\s+DEFERRED\b", re.I)


def _rewrite_query(code: str, where: str) -> str:
    """The rewrites on masked SQL (no literals in it): what the migrations, the tests' own
    looks (tests/postgres.py's rows) and queries not yet respelled still need."""
    # The one writers' lock: SQLite's BEGIN IMMEDIATE makes one writer at a time, across processes.
    code = _BEGIN.sub(f"BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK}, {SCHEMA_KEY})", code)
    code = _BEGIN_DEFERRED.sub("BEGIN", code)
    if match := _INSERT_OR_IGNORE.match(code):
        code = code[: match.start()] + f"INSERT INTO {match.group(1)}" + code[match.end():]
        returning = list(_RETURNING.finditer(code))  # ON CONFLICT comes before RETURNING, which comes last
        at = returning[-1].start() if returning else len(code.rstrip())
        code = f"{code[:at].rstrip()} ON CONFLICT DO NOTHING {code[at:]}".rstrip()
    numbers = iter(range(1, 100_000))
    return re.sub(r"\?", lambda _: f"${next(numbers)}", code)


# --- the canonical spelling (PostgreSQL's, ``$n`` parameters) ----------------------------
_POSITIONAL = re.compile(r"\$(\d+)")


def canonical(code: str) -> bool:
    """Whether (masked) SQL is in the canonical spelling: numbered ``$n`` parameters. Old-style
    SQL (SQLite's ``?``) is translated for PostgreSQL as before, until it is respelled."""
    return _POSITIONAL.search(code) is not None


@lru_cache(maxsize=4096)
def is_canonical(sql: str) -> bool:
    """Whether a query is in the canonical spelling (cached)."""
    return canonical(_masked(sql)[0])


@lru_cache(maxsize=4096)
def sqlite_query(sql: str) -> str:
    """A query for SQLite: canonical ``$n`` read as SQLite's ``?n`` (as mautrix-python's
    async_db does); old-style SQL as it is. Cached, as postgres_query is."""
    code, kept = _masked(sql)
    if not canonical(code):
        return sql
    return _unmasked(_POSITIONAL.sub(r"?\1", code), kept)


# ``x = ANY($n)`` with a list: PostgreSQL binds the list as one array; SQLite has no arrays.
_ANY = re.compile(r"=\s*ANY\s*\(\s*\$(\d+)\s*\)", re.I)


@lru_cache(maxsize=4096)
def _list_parameters(sql: str) -> tuple[int, ...]:
    """The numbers of the parameters this query compares with ``= ANY($n)`` (0-based)."""
    return tuple(sorted({int(n) - 1 for n in _ANY.findall(_masked(sql)[0])}))


@lru_cache(maxsize=512)
def _expanded(sql: str, lists: tuple[tuple[int, int], ...], count: int) -> str:
    """The query with each ``= ANY($n)`` an ``IN (?a, …)`` of its list's length, and every
    parameter renumbered for the flattened values; ``lists``: (parameter, length)."""
    lengths = dict(lists)
    first: list[int] = []  # each parameter's first place (1-based) among the flattened values
    at = 1
    for n in range(count):
        first.append(at)
        at += lengths.get(n, 1)
    code, kept = _masked(sql)

    def listed(match: re.Match[str]) -> str:
        n = int(match.group(1)) - 1
        return "IN (" + ", ".join(f"?{first[n] + i}" for i in range(lengths[n])) + ")"

    code = _ANY.sub(listed, code)
    code = _POSITIONAL.sub(lambda m: f"?{first[int(m.group(1)) - 1]}", code)
    return _unmasked(code, kept)


def sqlite_form(sql: str, parameters: Sequence[Any]) -> tuple[str, Sequence[Any]]:
    """A query and its parameters for SQLite: as sqlite_query, and each list compared with
    ``= ANY($n)`` spread into ``IN (?, ?, …)`` (the one place the two engines bind a list
    differently; an empty list is ``IN ()``, false, as ``= ANY('{}')`` is)."""
    lists = _list_parameters(sql)
    if not lists:
        return sqlite_query(sql), parameters
    shape = tuple((n, len(parameters[n])) for n in lists)
    flat: list[Any] = []
    for n, value in enumerate(parameters):
        if n in lists:
            flat.extend(value)
        else:
            flat.append(value)
    return _expanded(sql, shape, len(parameters)), flat


@lru_cache(maxsize=4096)
def postgres_query(sql: str) -> str:
    """A query of bot/store/queries.py in PostgreSQL's spelling: canonical SQL as it is,
    old-style SQL translated; Untranslatable if it has no such form. Cached: the same few
    hundred queries come by the thousand."""
    code, kept = _masked(sql)
    if canonical(code):
        return sql
    _refuse(code, "query")
    return _unmasked(_rewrite_query(code, "query"), kept)
