"""``tierbot run`` as a process an operator (or systemd) can rely on.

Around the Application this adds what only the process level sees: one instance per
database (bot/lock.py), a database that cannot be used refused in one line instead of a
hang, a rejected token refused in one line with the token masked, Telegram unreachable at
start retried with backoff, another poller on the token (409 Conflict) reported once a
minute and once to the station, and a clean stop on SIGTERM whatever failed.

Exit statuses: 0 stopped by a signal, 1 fatal, 2 bad token or config (restarting will not
help), 3 another instance holds the database.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from telegram.error import Conflict, InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application

from bot import redact
from bot.config import WEBHOOK_SECRET_VARIABLE, Config, is_postgres, shown
from bot.lock import AlreadyRunning, DatabaseLock, PostgresGuard
from bot.outbox import OpsNotice, put
from bot.store import SchemaTooNew, Store

if TYPE_CHECKING:
    from bot.telegram.webhook import WebhookServer

log = logging.getLogger(__name__)

EXIT_FATAL, EXIT_CONFIG, EXIT_RUNNING = 1, 2, 3
ALLOWED_UPDATES = ["message", "callback_query", "poll"]  # poll: the counts of the bot's polls (issue 16)
MAX_BACKOFF = 60.0
CONFLICT_LOG_EVERY = 60.0


class Fatal(Exception):
    """Stop with ``code`` after printing the one line in the message."""

    def __init__(self, line: str, code: int = EXIT_FATAL) -> None:
        super().__init__(line)
        self.code = code


def run(config: Config, token: str, webhook_secret: str | None = None) -> int:
    """Run until SIGTERM/SIGINT or a fatal error; the process's exit status. In webhook mode
    (issue 18) ``webhook_secret`` is the secret token Telegram sends with each update."""
    redact.install(token)
    if config.telegram.mode == "webhook":
        if not webhook_secret:
            print(f"tierbot: telegram.mode is webhook: set the webhook's secret token in the environment variable "
                  f"{WEBHOOK_SECRET_VARIABLE} (1-256 of A-Z a-z 0-9 _ -); it is never read from the config file.",
                  file=sys.stderr)
            return EXIT_CONFIG
        redact.install(webhook_secret)
    # A SQLite file's guard is a flock beside it, taken here; PostgreSQL's is a connection, taken in _serve.
    lock = DatabaseLock(config.database) if config.database != ":memory:" and not is_postgres(config.database) else None
    try:
        if lock is not None:
            try:
                lock.acquire()
            except OSError as exc:
                raise Fatal(f"tierbot: cannot take the lock {lock.path} ({exc.strerror}); check that the database's "
                             "folder exists and that the user running tierbot may write there.") from None
        if not is_postgres(config.database):
            refuse_orphaned_log(config.database)
        return asyncio.run(_serve(config, token, webhook_secret or ""))
    except AlreadyRunning as exc:
        print(exc, file=sys.stderr)
        return EXIT_RUNNING
    except Fatal as exc:
        print(exc, file=sys.stderr)
        return exc.code
    except Exception:  # logged, not printed by Python, so that the token filter sees it
        log.critical("tierbot stopped by an unexpected error", exc_info=True)
        return EXIT_FATAL
    finally:
        if lock is not None:
            lock.release()


# ----------------------------------------------------------------------------- the database


def refuse_orphaned_log(path: str) -> None:
    """A missing database beside its -wal file was moved or deleted: starting empty would
    hide that (and SQLite could replay the stray log into the new file)."""
    db, wal = Path(path), Path(path + "-wal")
    if path != ":memory:" and not db.exists() and wal.exists():
        raise Fatal(
            f"tierbot: the database {db} is missing but its write-ahead log {wal} is there: the database "
            "was moved or deleted. Put it back or restore a backup; to really start empty, move the -wal "
            "file away first."
        )


async def open_database(path: str, now: Callable[[], float] = time.time, connections: int = 8) -> Store:
    """The Store, or Fatal with one line: which file, what is wrong, what to do."""
    try:
        store = await Store.open(path, now=now, connections=connections)
    except SchemaTooNew as exc:
        raise Fatal(f"tierbot: cannot use the database {shown(path)}: {exc}. Run the newer tierbot, or restore a "
                    "backup this version made.") from None
    except sqlite3.Error as exc:
        raise Fatal(_unusable(path, exc)) from None
    except Exception as exc:
        if is_postgres(path) and (unreachable := _postgres_unusable(path, exc)):
            raise Fatal(unreachable) from None
        raise
    try:
        problem = await store.quick_check()
    except sqlite3.Error as exc:
        await store.close()
        raise Fatal(_unusable(path, exc)) from None
    if problem is not None:
        await store.close()
        problem = " ".join(problem.replace("*** in database main ***", "").split())  # one line
        raise Fatal(_unusable(path, sqlite3.DatabaseError(problem)))
    return store


def _postgres_unusable(url: str, exc: BaseException) -> str | None:
    """One line for a PostgreSQL server that cannot be reached or refuses us; None for
    anything else (a bug: logged with its traceback)."""
    import asyncpg

    if isinstance(exc, OSError | TimeoutError | asyncpg.PostgresError | asyncpg.InterfaceError):
        said = " ".join(str(exc).split()) or type(exc).__name__
        return (f"tierbot: cannot use the database {shown(url)} ({said}); check that the server runs and "
                "that the URL's user, password and database are right.")
    return None


def single_instance(config: Config) -> bool:
    """Whether this process must be its database's only one: a poller must, as two pollers
    would handle every update twice. The one condition for issue 18: webhook workers share one
    PostgreSQL database by design (``telegram.mode: webhook``), and skip the guard."""
    return config.telegram.mode != "webhook"


async def hold_guard(config: Config, lost: Callable[[], None]) -> PostgresGuard | None:
    """PostgreSQL's single-instance guard (bot/lock.py), held until ``release``; None where
    none is needed. AlreadyRunning if another process holds it; Fatal if the server cannot be
    reached."""
    if not is_postgres(config.database) or not single_instance(config):
        return None
    guard = PostgresGuard(config.database)
    try:
        await guard.acquire(on_lost=lost)
    except AlreadyRunning:
        raise
    except Exception as exc:
        if (unreachable := _postgres_unusable(config.database, exc)) is not None:
            raise Fatal(unreachable) from None
        raise
    return guard


def _unusable(path: str, exc: sqlite3.Error) -> str:
    text = str(exc)
    if "not a database" in text:
        what = "not a SQLite database"
    elif isinstance(exc, sqlite3.OperationalError) and ("unable to open" in text or "readonly" in text):
        return (f"tierbot: cannot open the database {path} ({text}); check that its folder exists and that "
                "the user running tierbot may write there.")
    else:
        what = f"the file is damaged ({text})"
    return (f"tierbot: cannot use the database {path}: {what}. Restore a backup, or point `database` in the "
            "config at another file.")


# ----------------------------------------------------------------------------- Telegram


def token_refused(exc: InvalidToken, token: str) -> str:
    # PTB re-raises getMe's InvalidToken with the token in the message; the cause has Telegram's words.
    said = str(exc.__cause__ or exc)
    code = "401" if "Unauthorized" in said else "404" if "Not Found" in said else "401/404"
    hint = "check TELEGRAM_BOT_TOKEN" + (" and telegram.base_url" if code != "401" else "")
    return f"tierbot: Telegram refused the token {redact.masked(token)} ({code}); {hint}"


def backoff(attempt: int) -> float:
    """Seconds before the next start attempt: 1, 2, 4, ... up to a minute."""
    return min(MAX_BACKOFF, 2.0 ** (attempt - 1))


async def start_telegram(app: Application, token: str, retries: int | None, stop: asyncio.Event) -> bool:
    """getMe until Telegram answers (False: stopped while waiting). A rejected token is
    Fatal at once; an unreachable Telegram is retried ``retries`` times (None: forever)."""
    attempt = 0
    while True:
        attempt += 1
        try:
            await app.initialize()
            if attempt > 1:
                log.info("Telegram reached at attempt %d", attempt)
            return True
        except InvalidToken as exc:
            raise Fatal(token_refused(exc, token), EXIT_CONFIG) from None
        except RetryAfter as exc:
            delay = float(exc.retry_after if isinstance(exc.retry_after, int) else exc.retry_after.total_seconds())
            error: TelegramError = exc
        except NetworkError as exc:
            delay, error = backoff(attempt), exc
        if retries is not None and attempt > retries:
            raise Fatal(f"tierbot: cannot reach Telegram ({_describe(error)}); gave up after {attempt} attempt(s) "
                        "(telegram.start_retries)")
        log.warning("cannot reach Telegram (attempt %d%s): %s; next try in %g s",
                    attempt, f" of {retries + 1}" if retries is not None else "", _describe(error), delay)
        if await _stopped_within(stop, delay):
            return False


def _describe(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    return f"{exc}" + (f" ({type(cause).__name__}: {cause})" if cause and str(cause) not in str(exc) else "")


async def _stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    try:
        async with asyncio.timeout(seconds):  # not wait_for, which can lose a cancel (bot/telegram/delivery.py)
            await stop.wait()
    except TimeoutError:
        return False
    return True


class ConflictWatch:
    """409s on getUpdates (another process polls with this token): one log line a minute,
    with how many came since the last one, instead of one per poll."""

    def __init__(self, every: float = CONFLICT_LOG_EVERY, clock: Callable[[], float] = time.monotonic) -> None:
        self.every, self.clock = every, clock
        self.total = 0
        self._count = 0
        self._logged_at: float | None = None

    def seen(self) -> int | None:
        """Count one; the number to log now, or None to stay quiet."""
        self.total += 1
        self._count += 1
        now = self.clock()
        if self._logged_at is not None and now - self._logged_at < self.every:
            return None
        count, self._count, self._logged_at = self._count, 0, now
        return count


async def tell_station_of_conflict(app: Application) -> None:
    """Once a run, through the outbox: someone else is polling with this bot's token."""
    svc = app.bot_data.get("services")
    if svc is None:
        return
    chats = [chat for st in svc.tree.stations if (chat := svc.tree.chat_of(st.id)) is not None]  # every station's
    if not chats:
        return
    now = svc.clock.now()
    async with svc.store.transaction() as tx:
        await put(tx, *(OpsNotice("conflict", os.getpid(), now, chat) for chat in chats), now=now)


def _polling_errors(app: Application, watch: ConflictWatch) -> Callable[[TelegramError], None]:
    def on_error(exc: TelegramError) -> None:  # PTB's contract: must not raise
        if isinstance(exc, Conflict):
            count = watch.seen()
            if count is not None:
                log.error("Telegram answered getUpdates with 409 Conflict%s: another process is polling with this "
                          "bot's token, perhaps on another server or database; retrying. Stop the other one.",
                          f" ({count} times since the last such line)" if count > 1 else "")
            if watch.total == 1:
                app.create_task(tell_station_of_conflict(app))
        else:
            log.warning("getUpdates failed (%s); retrying", _describe(exc))

    return on_error


# ----------------------------------------------------------------------------- the run


async def _serve(config: Config, token: str, webhook_secret: str = "") -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    outcome: list[Fatal] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def guard_lost() -> None:  # the server restarted, say: another instance could start now
        outcome.append(Fatal(f"tierbot: lost the connection holding the single-instance guard on the database "
                             f"{shown(config.database)}; stopping (start it again)"))
        stop.set()

    guard = await hold_guard(config, guard_lost)
    try:
        return await _serve_guarded(config, token, stop, outcome, webhook_secret)
    finally:
        if guard is not None:
            await guard.release()


async def _serve_guarded(config: Config, token: str, stop: asyncio.Event, outcome: list[Fatal],
                         webhook_secret: str = "") -> int:
    from bot.app import _open, build_application
    from bot.telegram.webhook import WebhookServer

    app = build_application(config, token)
    store = await open_database(config.database, app.bot_data["clock"].now, config.telegram.connections)
    app.bot_data["store"] = store  # bot/app.py's _open takes it instead of opening another
    # Polling on PostgreSQL: this process holds the single-instance guard, so it is the only
    # sender, and a lease left by a killed predecessor is taken at once (bot/store/workers.py).
    app.bot_data["sole"] = is_postgres(config.database) and single_instance(config)
    reached: set[str] = set()
    try:
        if not await start_telegram(app, token, config.telegram.start_retries, stop):
            return 0
        reached.add("initialized")
        await _open(app)
        if app.updater is None:  # webhook mode (issue 18): Telegram posts, never a getUpdates
            server = app.bot_data["webhook"] = WebhookServer(app, config.telegram.webhook, webhook_secret)
            await app.start()
            reached.add("running")
            try:
                await server.start()
            except (OSError, SystemExit) as exc:  # uvicorn exits when it cannot bind
                raise Fatal(f"tierbot: cannot listen on {config.telegram.webhook.listen}:"
                            f"{config.telegram.webhook.port} for the webhook ({exc})") from None
            reached.add("webhook")
            assert server.stopped is not None
            _watch_server(server, outcome, stop)
        else:
            await app.updater.start_polling(
                poll_interval=0, timeout=config.telegram.poll_timeout, allowed_updates=ALLOWED_UPDATES,
                error_callback=_polling_errors(app, ConflictWatch()),
            )
            reached.add("polling")
            _watch_polling(app, outcome, stop)
            await app.start()
            reached.add("running")
        await stop.wait()
    finally:
        await _stop(app, store, reached)
    if outcome:
        raise outcome[0]
    return 0


async def _stop(app: Application, store: Store, reached: set[str]) -> None:
    """Stop what was started, in run_polling's order; a step that fails (polling that died
    on a revoked token re-raises) must not leave the database open: its thread would keep
    the process alive."""
    from bot.app import _close, _stop_workers

    steps: list[tuple[str | None, Callable[[], Awaitable[object]]]] = [
        ("running", app.stop), (None, lambda: _stop_workers(app)), ("initialized", app.shutdown),
    ]
    if app.updater is not None:
        steps.insert(0, ("polling", app.updater.stop))
    if "webhook" in app.bot_data:  # first: the requests in hand are answered, their updates committed
        steps.insert(0, ("webhook", app.bot_data["webhook"].stop))
    for needed, step in steps:
        if needed is None or needed in reached:
            try:
                await step()
            except Exception:
                log.debug("a step failed while stopping", exc_info=True)
    if "services" in app.bot_data:
        await _close(app)
    else:
        await store.close()


def _watch_server(server: WebhookServer, outcome: list[Fatal], stop: asyncio.Event) -> None:
    """The webhook's server ending of itself (not asked to): stop the process instead of running deaf."""
    assert server.stopped is not None

    def done(task: asyncio.Task[None]) -> None:
        if not server.stopping:
            what = "" if task.cancelled() or task.exception() is None else f": {_describe(task.exception())}"  # type: ignore[arg-type]
            outcome.append(Fatal(f"tierbot: the webhook's server stopped{what}"))
        stop.set()

    server.stopped.add_done_callback(done)


def _watch_polling(app: Application, outcome: list[Fatal], stop: asyncio.Event) -> None:
    """PTB's polling loop ends for good on a rejected token (revoked while running) and
    nothing else notices: stop the process instead of running deaf."""
    task: asyncio.Task[None] | None = getattr(app.updater, "_Updater__polling_task", None)
    if task is None:
        return
    token = app.bot.token

    def done(task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        if isinstance(exc, InvalidToken):
            outcome.append(Fatal(token_refused(exc, token), EXIT_CONFIG))
        else:
            outcome.append(Fatal(f"tierbot: polling Telegram stopped: {_describe(exc)}"))  # type: ignore[arg-type]
        stop.set()

    task.add_done_callback(done)
