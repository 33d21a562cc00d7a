"""SQLite's SQL in PostgreSQL's spelling (issue 17): the migrations and the queries.

The schema (bot/store/schema.py) and the queries (bot/store/queries.py) are written for
SQLite. Where the two dialects differ only in spelling, this module rewrites them
mechanically, so a new migration or query needs no PostgreSQL form of its own:

- types: INTEGER → BIGINT (Telegram's ids need 64 bits), REAL → DOUBLE PRECISION, BLOB →
  BYTEA; a column ``INTEGER PRIMARY KEY`` (SQLite's rowid) → an identity column; ``WITHOUT
  ROWID`` and ``AUTOINCREMENT`` dropped;
- parameters ``?`` → ``$1, $2, …``; ``INSERT OR IGNORE`` → ``… ON CONFLICT DO NOTHING``;
  ``INSERT OR REPLACE`` → ``… ON CONFLICT (key) DO UPDATE SET every column`` (the table's
  key from ``REPLACE_KEYS``); ``INDEXED BY`` (a SQLite planner hint) dropped;
  ``group_concat(x)`` → ``string_agg((x)::text, ',')``; ``a IS NOT b`` (any value, NULL-safe)
  → ``a IS DISTINCT FROM b``, ``a IS b`` → ``IS NOT DISTINCT FROM``; ``BEGIN IMMEDIATE`` → ``BEGIN`` and
  the one writers' lock (``WRITE_LOCK``), as SQLite has one writer at a time.

What cannot be rewritten by spelling alone is refused (``Untranslatable``), naming what,
rather than run with another meaning: PRAGMAs, SQLite's JSON functions, ``rowid``, date
functions, triggers. A migration with such a statement, or one that needs another shape on
PostgreSQL (a table rebuild, written there as ALTERs), has an explicit form in
``POSTGRES_FORMS``, found by a phrase only its SQLite text contains (so that renumbering the
migrations at a merge does not move it). A query with a known PostgreSQL form (the JSON paths
the views read, a broadcast's target order) has a rule in ``QUERY_FORMS``.

The issue's end state is the other way round: the queries written once in PostgreSQL's
style, rewritten for SQLite. ``postgres_query`` is the one place that knows the direction;
to flip it: respell queries.py's SQL with this module (``?`` → ``$n``, ``INSERT OR IGNORE`` →
``ON CONFLICT DO NOTHING``, both of which SQLite ≥ 3.35 accepts as they are once ``$n`` reads
``?n``), write ``RETURNING id`` where Tx reads ``cursor.lastrowid``, and let a ``sqlite_query``
turn ``$n`` into ``?n``; what stays different (JSON, rowid, IN lists vs ``= ANY($1)``,
``INSERT OR REPLACE``) becomes a branch in queries.py.
"""

from __future__ import annotations

import re
from functools import lru_cache

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

# INSERT OR REPLACE replaces the row with the same key: PostgreSQL must be told which key.
REPLACE_KEYS: dict[str, tuple[str, ...]] = {
    "prompts": ("chat_id", "user_id"),
}

# Queries whose PostgreSQL form is not a matter of spelling but is known: SQLite's JSON
# functions on the outbox's and views' ``data`` (TEXT holding JSON on both engines), each
# rule for one path whose values the code knows. Applied to the SQLite text (literals and all)
# before the mechanical rewrites.
_COLUMN = r"(\w+(?:\.\w+)?)"
QUERY_FORMS: list[tuple[re.Pattern[str], str]] = [
    # data.matters: the matter ids a notice names (bot/outbox.py), so bigint on PostgreSQL.
    (re.compile(rf"\bjson_each\({_COLUMN}, '\$\.matters'\) (\w+)"),
     r"LATERAL (SELECT e::bigint AS value FROM jsonb_array_elements_text(CASE WHEN jsonb_typeof((\1)::jsonb "
     r"-> 'matters') = 'array' THEN (\1)::jsonb -> 'matters' ELSE '[]' END) e) \2"),
    # json_type names an array 'array' on both (its other answers differ: 'text' vs 'string', …).
    (re.compile(rf"\bjson_type\({_COLUMN}, '\$\.(\w+)'\) = 'array'"), r"jsonb_typeof((\1)::jsonb -> '\2') = 'array'"),
    # A broadcast's targets in the order they were written: nothing updates or deletes
    # broadcast_targets, so its heap is append-only and ctid follows insertion as rowid does.
    # (A column of its own would say it on both engines: a migration for whoever owns one.)
    (re.compile(r"\bFROM broadcast_targets t (.*)ORDER BY t\.rowid\b"), r"FROM broadcast_targets t \1ORDER BY t.ctid"),
    # data.view: a view's key (text), as ->> gives it.
    (re.compile(rf"\bjson_extract\({_COLUMN}, '\$\.view'\)"), r"((\1)::jsonb ->> 'view')"),
]

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
    (re.compile(r"\bINSERT\s+OR\s+(ROLLBACK|ABORT|FAIL)\b", re.I), "an INSERT OR … other than IGNORE/REPLACE"),
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
# Every process migrating at once waits for the one that holds this (any constant of ours).
MIGRATION_LOCK = 0x7469657262  # "tierb"
# SQLite's BEGIN IMMEDIATE makes one writer at a time, across processes: the hourly limit
# counts every process's reports in its write transaction and relies on it. PostgreSQL's
# BEGIN does not, so a write transaction takes this lock first, in the same trip.
WRITE_LOCK = 0x746965727762  # "tierwb"

# --- the queries -------------------------------------------------------------------------
_INSERT_OR = re.compile(r"^\s*INSERT\s+OR\s+(IGNORE|REPLACE)\s+INTO\s+(\w+)", re.I)
_INSERT_COLUMNS = re.compile(r"^\s*INSERT\s+INTO\s+\w+\s*\(([^)]*)\)", re.I)
_RETURNING = re.compile(r"\bRETURNING\b", re.I)
_INDEXED_BY = re.compile(r"\s+INDEXED\s+BY\s+\w+", re.I)
_GROUP_CONCAT = re.compile(r"\bgroup_concat\s*\(([^()]*)\)", re.I)
# SQLite's IS / IS NOT compare any two values, NULL-safe; PostgreSQL's only take NULL, TRUE…
_IS_VALUE = re.compile(
    r"\bIS\s+(NOT\s+)?(?!(?:NULL|TRUE|FALSE|UNKNOWN|DISTINCT|NOT|OF|DOCUMENT|NORMALIZED)\b)(?=[?\x00\w(])", re.I)
_BEGIN = re.compile(r"^\s*BEGIN\s+(IMMEDIATE|EXCLUSIVE)\s*$", re.I)
_BEGIN_DEFERRED = re.compile(r"^\s*BEGIN\s+DEFERRED\b", re.I)


def _rewrite_query(code: str, where: str) -> str:
    """The rewrites on masked SQL (no literals in it)."""
    code = _BEGIN.sub(f"BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK})", code)
    code = _BEGIN_DEFERRED.sub("BEGIN", code)
    code = _INDEXED_BY.sub("", code)
    code = _IS_VALUE.sub(lambda m: "IS DISTINCT FROM " if m.group(1) else "IS NOT DISTINCT FROM ", code)
    code = _GROUP_CONCAT.sub(lambda m: f"string_agg(({m.group(1).strip()})::text, ',')", code)
    conflict = ""
    if match := _INSERT_OR.match(code):
        verb, table = match.group(1).upper(), match.group(2)
        code = code[: match.start()] + f"INSERT INTO {table}" + code[match.end():]
        if verb == "IGNORE":
            conflict = " ON CONFLICT DO NOTHING"
        else:
            key = REPLACE_KEYS.get(table)
            if key is None:
                raise Untranslatable(f"{where}: INSERT OR REPLACE INTO {table} needs its key in REPLACE_KEYS")
            columns = _INSERT_COLUMNS.match(code)
            if columns is None:
                raise Untranslatable(f"{where}: INSERT OR REPLACE INTO {table} without its columns named")
            names = [c.strip() for c in columns.group(1).split(",")]
            updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in names if c not in key)
            conflict = f" ON CONFLICT ({', '.join(key)}) " + (f"DO UPDATE SET {updates}" if updates else "DO NOTHING")
    if conflict:  # before RETURNING, which comes last
        returning = list(_RETURNING.finditer(code))
        at = returning[-1].start() if returning else len(code.rstrip())
        code = f"{code[:at].rstrip()}{conflict} {code[at:]}".rstrip()
    numbers = iter(range(1, 100_000))
    return re.sub(r"\?", lambda _: f"${next(numbers)}", code)


@lru_cache(maxsize=4096)
def postgres_query(sql: str) -> str:
    """A query of bot/store/queries.py in PostgreSQL's spelling; Untranslatable if it has
    none. Cached: the same few hundred queries come by the thousand."""
    for pattern, form in QUERY_FORMS:
        sql = pattern.sub(form, sql)
    code, kept = _masked(sql)
    _refuse(code, "query")
    return _unmasked(_rewrite_query(code, "query"), kept)
