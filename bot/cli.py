"""The ``tierbot`` command: run, check-config, demo, export, status, backup, restore, migrate-db, inbox, purge."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.config import WEBHOOK_SECRET_VARIABLE, Config, ConfigError, is_postgres, load_config, shown
from bot.text.i18n import Texts
from bot.tree import Tree

TOKEN_VARIABLE = "TELEGRAM_BOT_TOKEN"
_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")  # what Telegram takes as a webhook's secret token


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tierbot", description="Three-tier community governance bot.")
    parser.add_argument("--version", action="version", version=f"tierbot {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run", help="run the bot (long polling, or webhook mode)",
        description=f"Run the bot (long polling, or in webhook mode a worker Telegram posts to). The token from "
                    f"@BotFather is read from the environment variable {TOKEN_VARIABLE}, never from the config file.",
        epilog=f"example: {TOKEN_VARIABLE}=123456:ABC... tierbot run --config config.yaml",
    )
    run.add_argument("--config", default="config.yaml", help="path to config.yaml")
    check = commands.add_parser("check-config", help="validate a config file and print the tree")
    check.add_argument("path", nargs="?", default="config.yaml")
    demo = commands.add_parser("demo", help="play a short scenario against a local fake Telegram, no token needed")
    demo.add_argument("--config", default=None, help="config to take the town from (default: the bundled sample)")
    export = commands.add_parser("export", help="write the ledger (台账) of a period to .xlsx or .csv")
    export.add_argument("--config", default="config.yaml", help="path to config.yaml")
    export.add_argument("--from", dest="first", required=True, metavar="DATE", help="first day, YYYY-MM-DD")
    export.add_argument("--to", dest="last", required=True, metavar="DATE", help="last day, YYYY-MM-DD")
    export.add_argument("--out", required=True, metavar="FILE", help="FILE.xlsx or FILE.csv (UTF-8 with BOM)")
    export.add_argument("--node", default=None,
                        help="a station, community or unit id (default: the whole town; a city's first station)")
    _add_log_options(run)
    _add_operations(commands)
    inbox = commands.add_parser("inbox", help="updates waiting in the inbox; --failed lists those given up on")
    inbox.add_argument("--config", default="config.yaml", help="path to config.yaml")
    inbox.add_argument("--failed", action="store_true", help="list the failed updates: id, when, error")
    inbox.add_argument("--limit", type=int, default=50, help="list at most this many (default 50)")
    set_webhook = commands.add_parser(
        "set-webhook", help="register the webhook with Telegram (webhook mode)",
        description=f"Register telegram.webhook.url with Telegram, with the secret token from "
                    f"{WEBHOOK_SECRET_VARIABLE}, max_connections and allowed_updates. The bot token is read "
                    f"from {TOKEN_VARIABLE}.",
    )
    set_webhook.add_argument("--config", default="config.yaml", help="path to config.yaml")
    purge = commands.add_parser("purge", help="clear personal data of matters closed before a day, now")
    purge.add_argument("--config", default="config.yaml", help="path to config.yaml")
    purge.add_argument("--before", required=True, metavar="DATE", help="matters closed before this day, YYYY-MM-DD")
    args = parser.parse_args(argv)

    if args.command == "check-config":
        return _check_config(args.path)
    if args.command == "run":
        if not _setup_logging(args):
            return 2
        return _run(args.config)
    if args.command in OPERATIONS:
        return OPERATIONS[args.command](args)
    if args.command == "export":
        return _export(args)
    if args.command == "inbox":
        return _inbox(args)
    if args.command == "purge":
        return _purge(args)
    if args.command == "set-webhook":
        return _set_webhook(args)
    from bot.dev import demo as demo_module

    return asyncio.run(demo_module.main(args.config))


def _version() -> str:
    """The installed package's version (pyproject.toml), so it cannot drift from a constant."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tierbot")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _load(path: str) -> Config | None:
    """The config at ``path``, or None after printing what is wrong with it (one place, so
    every command words a bad config alike; each chooses its own exit status)."""
    try:
        return load_config(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None


def _check_config(path: str) -> int:
    config = _load(path)
    if config is None:
        return 1
    print(describe_tree(Tree(config)))
    d, say = config.deadlines, Texts("en", config.tz).duration
    print(
        f"\ndeadlines (claim / resolve): unit {say(d.unit.claim)} / {say(d.unit.resolve)} · "
        f"community {say(d.community.claim)} / {say(d.community.resolve)} · "
        f"station {say(d.station.claim)} / {say(d.station.resolve)}, re-ping every {say(d.station.repeat)}"
    )
    urgent = [c.zh for c in config.categories if c.urgent]
    print(f"categories: {', '.join(c.zh for c in config.categories)} (urgent: {', '.join(urgent) or 'none'})")
    print(f"weekly bulletin: {config.weekly_summary} · monthly bulletin: the 1st at {config.monthly_bulletin} "
          f"({config.timezone}) · language: {config.language}")
    print(f"quiet hours: {config.quiet_hours or 'none'} · duty shifts: {sum(len(st.duty) for st in config.stations)}")
    print("config OK")
    return 0


def describe_tree(tree: Tree) -> str:
    def line(node_id: str, depth: int) -> list[str]:
        node = tree.nodes[node_id]
        chat = tree.chat_of(node.id)
        people = ", ".join(p.name or str(p.id) for p in node.leaders)
        kind = f" [{node.kind}]" if node.kind else ""
        where = f" chat {chat}" if chat else " (no chat yet: /bind)"
        branch = "  " * depth + ("└ " if depth else "")
        out = [f"{branch}{node.name} ({node.id}, tier {node.tier}){kind}{where} · {people}"]
        for child in node.children:
            out += line(child, depth + 1)
        return out

    return "\n".join(x for st in tree.stations for x in line(st.id, 0))


def describe_ids(tree: Tree) -> str:
    """Every node's id and name, indented as the tree: what ``--node`` accepts."""
    def line(node_id: str, depth: int) -> list[str]:
        node = tree.nodes[node_id]
        return [f"{'  ' * (depth + 1)}{node.id}  {node.name}", *(x for c in node.children for x in line(c, depth + 1))]

    return "\n".join(x for st in tree.stations for x in line(st.id, 0))


def _run(config_path: str) -> int:
    token = os.environ.get(TOKEN_VARIABLE, "").strip()
    if not token:
        print(
            f"tierbot: set the bot token in the environment variable {TOKEN_VARIABLE} "
            "(from @BotFather); it is never read from the config file.",
            file=sys.stderr,
        )
        return 2
    config = _load(config_path)
    if config is None:
        return 2  # restarting will not help (systemd: RestartPreventExitStatus=2 3)
    from bot.runner import run

    secret = os.environ.get(WEBHOOK_SECRET_VARIABLE, "").strip() or None
    if config.telegram.mode == "webhook" and secret is not None and not _SECRET.fullmatch(secret):
        print(f"tierbot: {WEBHOOK_SECRET_VARIABLE} must be 1-256 of A-Z a-z 0-9 _ - (as Telegram takes it)",
              file=sys.stderr)
        return 2
    return run(config, token, secret)


def _set_webhook(args: argparse.Namespace) -> int:
    """``tierbot set-webhook``: tell Telegram where to post updates (issue 18), with the secret
    token it sends back with each, ``max_connections`` and ``allowed_updates``. One line out,
    never the token, the secret or the URL's path."""
    from urllib.parse import urlsplit

    from telegram import Bot
    from telegram.error import TelegramError

    from bot import redact

    token = os.environ.get(TOKEN_VARIABLE, "").strip()
    secret = os.environ.get(WEBHOOK_SECRET_VARIABLE, "").strip()
    if not token or not secret:
        print(f"tierbot: set-webhook needs the bot token in {TOKEN_VARIABLE} and the webhook's secret token in "
              f"{WEBHOOK_SECRET_VARIABLE}; neither is read from the config file.", file=sys.stderr)
        return 2
    if not _SECRET.fullmatch(secret):
        print(f"tierbot: {WEBHOOK_SECRET_VARIABLE} must be 1-256 of A-Z a-z 0-9 _ - (as Telegram takes it)",
              file=sys.stderr)
        return 2
    config = _load(args.config)
    if config is None:
        return 2
    hook = config.telegram.webhook
    if not hook.url:
        print("tierbot: set telegram.webhook.url in the config: the public https URL Telegram posts to",
              file=sys.stderr)
        return 2
    redact.install(token)
    redact.install(secret)
    where = urlsplit(hook.url)
    shown = f"{where.scheme}://{where.netloc}/…"  # the path is a secret of its own

    async def call() -> bool:
        bot = Bot(token, base_url=config.telegram.base_url or "https://api.telegram.org/bot")
        async with bot:
            return await bot.set_webhook(hook.url, secret_token=secret, max_connections=hook.max_connections,
                                         allowed_updates=list(hook.allowed_updates))

    try:
        asyncio.run(call())
    except TelegramError as exc:
        said = str(exc).replace(token, redact.masked(token)).replace(secret, "***")
        print(f"tierbot: Telegram refused the webhook for {shown}: {said}", file=sys.stderr)
        return 1
    print(f"webhook set: {shown} · max_connections {hook.max_connections} · "
          f"allowed_updates {', '.join(hook.allowed_updates)}")
    return 0


def _export(args: argparse.Namespace) -> int:
    """``tierbot export``: the same ledger /export sends, from the database on disk."""
    from pathlib import Path

    from escalation.reports import ledger, service

    config = _load(args.config)
    if config is None:
        return 1
    out = Path(args.out)
    if out.suffix.lower() not in (".xlsx", ".csv"):
        print("tierbot export: --out must end in .xlsx or .csv", file=sys.stderr)
        return 2
    try:
        start, end = ledger.date_range(args.first, args.last, config.tz)
    except ValueError as exc:
        print(f"tierbot export: {exc}", file=sys.stderr)
        return 2
    node_id = args.node or config.stations[0].id
    tree = Tree(config)
    if node_id not in tree.nodes:
        print(f"tierbot export: no node {node_id!r} in {args.config}; the nodes are:", file=sys.stderr)
        print(describe_ids(tree), file=sys.stderr)
        return 2
    if not is_postgres(config.database) and not Path(config.database).is_file():
        print(f"tierbot export: no database at {config.database}", file=sys.stderr)
        return 1
    content, count = asyncio.run(service.export_file(config, node_id, start, end, csv=out.suffix.lower() == ".csv"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(content)
    print(f"{out}: {count} matter(s), {args.first} to {args.last} ({config.timezone})")
    return 0


def _open_database(config_path: str, command: str) -> tuple[Config, Any] | int:
    """The config and the path of an existing database, or an exit status."""
    config = _load(config_path)
    if config is None:
        return 1
    if not is_postgres(config.database) and not Path(config.database).is_file():
        print(f"tierbot {command}: no database at {config.database}", file=sys.stderr)
        return 1
    return config, config.database


def _inbox(args: argparse.Namespace) -> int:
    """``tierbot inbox [--failed]``: what waits in the inbox, and what was given up on (ids,
    times and errors only: never what an update said)."""
    from datetime import datetime

    from bot.store import Store

    opened = _open_database(args.config, "inbox")
    if isinstance(opened, int):
        return opened
    config, database = opened

    async def read() -> tuple[int, int, list[tuple[int, float, str]]]:
        store = await Store.open(database)
        try:
            async with store.read() as tx:
                pending = len(await tx.inbox_pending())
                failed = await tx.inbox_failed_count()
                rows = await tx.inbox_failed(max(args.limit, 0)) if args.failed else []
        finally:
            await store.close()
        return pending, failed, rows

    pending, failed, rows = asyncio.run(read())
    if not args.failed:
        print(f"inbox: {pending} update(s) waiting, {failed} failed (list them with --failed)")
        return 0
    if not rows:
        print("no failed updates")
    for update_id, at, error in rows:
        when = datetime.fromtimestamp(at, config.tz).strftime("%Y-%m-%d %H:%M:%S")
        print(f"{update_id}\t{when}\t{error}")
    return 0


def _purge(args: argparse.Namespace) -> int:
    """``tierbot purge --before DATE``: the retention sweep, by hand, for an earlier day."""
    from datetime import date, datetime, time

    from bot import logs, retention

    try:
        day = date.fromisoformat(args.before)
    except ValueError:
        print("tierbot purge: --before must be a date, YYYY-MM-DD", file=sys.stderr)
        return 2
    opened = _open_database(args.config, "purge")
    if isinstance(opened, int):
        return opened
    config, _ = opened
    before = datetime.combine(day, time(0), config.tz)
    if before > datetime.now(config.tz):
        print("tierbot purge: --before must not be after today", file=sys.stderr)
        return 2
    if not logging.getLogger().handlers:  # the count line goes to the log, as the sweep's does
        logs.setup()
    counts = asyncio.run(retention.purge_file(config, before.timestamp(), by_hand=True))
    print(f"cleared the personal data of {counts.matters} matter(s) closed before {day} ({config.timezone}): "
          f"{counts.events} event(s), {counts.attachments} attachment(s), {counts.messages} message(s), "
          f"{counts.prompts} prompt(s), {counts.users} name(s), {counts.held} held report(s)")
    return 0


# --- logging, status, backup and restore (issue 11) -------------------------------------
def _add_log_options(run: argparse.ArgumentParser) -> None:
    from bot import logs

    run.add_argument("--log-level", choices=logs.LEVELS, type=str.upper, default=None,
                     help=f"INFO (default) logs one line per report, claim, escalation…; also {logs.LEVEL_VARIABLE}")
    run.add_argument("--log-format", choices=logs.FORMATS, default=None,
                     help=f"text (default), or json: one object a line for log shippers; also {logs.FORMAT_VARIABLE}")


def _setup_logging(args: argparse.Namespace) -> bool:
    from bot import logs

    try:
        level, fmt = logs.choose(args.log_level, args.log_format)
    except ValueError as exc:
        print(f"tierbot: {exc}", file=sys.stderr)
        return False
    logs.setup(level, fmt)
    return True


def _add_operations(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    status = commands.add_parser(
        "status", help="what the database says (also while the bot runs); exit 1 if delivery or the sweep is stuck"
    )
    status.add_argument("--config", default="config.yaml", help="path to config.yaml")
    status.add_argument("--max-backlog-age", default="15m", metavar="DURATION",
                        help="exit 1 if the oldest message waiting to be sent is older (default 15m)")
    status.add_argument("--max-sweep-age", default=None, metavar="DURATION",
                        help="exit 1 if the last sweep is older (default: 5m, or 3 sweep intervals if longer)")
    backup = commands.add_parser("backup", help="a consistent copy of the database, also while the bot runs")
    backup.add_argument("--config", default="config.yaml", help="path to config.yaml")
    backup.add_argument("--out", required=True, metavar="FILE", help="where to write the copy (mode 0600)")
    move = commands.add_parser(
        "migrate-db", help="copy a town's SQLite database into an empty PostgreSQL database (both bots stopped)",
        description="Copy every table of a SQLite database into an empty PostgreSQL database, in one transaction, "
                    "and check the counts. Then point `database` in the config at the URL.",
        epilog="example: tierbot migrate-db --from data/tierbot.sqlite3 --to postgresql://tierbot@db:5432/city",
    )
    move.add_argument("--from", dest="source", required=True, metavar="FILE", help="the SQLite database")
    move.add_argument("--to", dest="target", required=True, metavar="URL", help="postgresql://user@host:port/db")
    restore = commands.add_parser("restore", help="put a backup in place of the database (the bot stopped)")
    restore.add_argument("--config", default="config.yaml", help="path to config.yaml")
    restore.add_argument("--from", dest="source", required=True, metavar="FILE", help="a copy made by tierbot backup")


def _status(args: argparse.Namespace) -> int:
    from bot import ops
    from bot.config import parse_duration

    try:
        config = load_config(args.config)
        max_backlog = parse_duration(args.max_backlog_age)
        max_sweep = parse_duration(args.max_sweep_age) if args.max_sweep_age else max(300.0, 3 * config.sweep_interval)
    except (ConfigError, ValueError) as exc:
        print(f"tierbot status: {exc}", file=sys.stderr)
        return 2
    if not is_postgres(config.database) and not Path(config.database).is_file():
        print(f"tierbot status: no database at {config.database}", file=sys.stderr)
        return 1
    try:
        report = asyncio.run(ops.status(config, time.time(), max_backlog, max_sweep))
    except Exception as exc:  # unreadable database, say: a monitoring check needs the line and the status
        said = " ".join(str(exc).split()) or type(exc).__name__
        print(f"tierbot status: cannot read {shown(config.database)}: {said}", file=sys.stderr)
        return 1
    print("\n".join(report.lines))
    if report.problems:
        print("PROBLEM: " + "; ".join(report.problems))
        return 1
    print("OK")
    return 0


def _backup(args: argparse.Namespace) -> int:
    from bot import ops
    from bot.store import BadCopy

    config = _load(args.config)
    if config is None:
        return 2
    if is_postgres(config.database):
        return _postgres_backup_advice("backup", config.database)
    out = Path(args.out)
    try:
        version = ops.backup(Path(config.database), out)
    except (BadCopy, OSError, sqlite3.Error) as exc:
        print(f"tierbot backup: {exc}", file=sys.stderr)
        return 1
    print(f"{out}: a copy of {config.database} (schema {version}, {out.stat().st_size:,} bytes, mode 0600)")
    return 0


def _restore(args: argparse.Namespace) -> int:
    from bot import ops
    from bot.lock import AlreadyRunning
    from bot.store import BadCopy

    config = _load(args.config)
    if config is None:
        return 2
    if is_postgres(config.database):
        return _postgres_backup_advice("restore", config.database)
    try:
        version, kept = ops.restore(Path(config.database), Path(args.source))
    except AlreadyRunning as exc:
        print(exc, file=sys.stderr)
        return 3
    except BadCopy as exc:
        print(f"tierbot restore: {exc}; nothing was changed", file=sys.stderr)
        return 1
    except (OSError, sqlite3.Error) as exc:
        print(f"tierbot restore: {exc}", file=sys.stderr)
        return 1
    print(f"{config.database}: restored from {args.source} (schema {version})"
          + (f"; the database it replaced is kept as {kept}" if kept else ""))
    return 0


def _postgres_backup_advice(command: str, database: str) -> int:
    """backup/restore copy SQLite files; a PostgreSQL database has the server's own tools
    (and no file whose mode tierbot could set: pg_dump's output is the operator's to keep)."""
    from urllib.parse import parse_qs, urlsplit

    url = pg_tool_url(database)
    schema = parse_qs(urlsplit(database).query).get("search_path", [""])[0]
    only = f"-n {schema} " if schema else ""
    advice = (f"pg_dump -Fc {only}-f tierbot.dump '{url}'" if command == "backup"
              else f"pg_restore --clean --if-exists {only}-d '{url}' tierbot.dump (the bot stopped)")
    print(f"tierbot {command}: `database` is a PostgreSQL URL; tierbot {command} copies SQLite files only. "
          f"Use PostgreSQL's own tool: {advice}", file=sys.stderr)
    return 2


def pg_tool_url(database: str) -> str:
    """The URL as pg_dump/pg_restore take it: without the password (they read PGPASSWORD or
    ~/.pgpass) and without asyncpg's server settings, which libpq refuses in a URL (a schema
    named by search_path goes as -n NAME)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(database)
    host = parts.netloc.rpartition("@")[2]
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=user + host, query="", fragment=""))


def _migrate_db(args: argparse.Namespace) -> int:
    """``tierbot migrate-db --from FILE --to URL`` (issue 17): a town moving to PostgreSQL."""
    from bot import ops
    from bot.lock import AlreadyRunning
    from bot.runner import _postgres_unusable
    from bot.store import BadCopy, SchemaTooNew
    from bot.store.move import CannotMove

    source, target = Path(args.source), args.target
    if is_postgres(args.source) or not is_postgres(target):
        print("tierbot migrate-db: --from is a SQLite file, --to a URL postgresql://user@host:port/db",
              file=sys.stderr)
        return 2
    if not source.is_file():
        print(f"tierbot migrate-db: no database at {source}", file=sys.stderr)
        return 1
    try:
        moved = asyncio.run(ops.migrate_db(source, target))
    except AlreadyRunning as exc:
        print(f"{exc} (migrate-db needs the bot stopped)", file=sys.stderr)
        return 3
    except (CannotMove, BadCopy, SchemaTooNew, sqlite3.Error) as exc:
        print(f"tierbot migrate-db: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        if (line := _postgres_unusable(target, exc)) is None:
            raise
        print(line.replace("tierbot:", "tierbot migrate-db:", 1), file=sys.stderr)
        return 1
    width = max(len(table) for table, _ in moved.counts)
    for table, count in moved.counts:
        print(f"{table:<{width}}  {count:>10,}")
    print(f"copied {len(moved.counts)} tables, {sum(c for _, c in moved.counts):,} rows from {source} into "
          f"{shown(target)} (schema {moved.version}); counts checked. Point `database` in the config at it.")
    return 0


OPERATIONS: dict[str, Callable[[argparse.Namespace], int]] = {
    "status": _status, "backup": _backup, "restore": _restore, "migrate-db": _migrate_db,
}
