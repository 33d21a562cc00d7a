"""Builds the Application: settings, rate limits, handlers, the sweep, and the resources
opened at start (database, delivery worker) and closed at stop."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from telegram import LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.ext import Application, ApplicationBuilder, ContextTypes, Defaults

import handlers
from bot import broadcasts, retention, visits
from bot.clock import Clock, SystemClock
from bot.config import Config, shown
from bot.matters import Matters
from bot.outbox import Kind
from bot.runner import ALLOWED_UPDATES
from bot.screening import Screenings
from bot.services import Services
from bot.store import LAST_SWEEP, Store
from bot.telegram.delivery import Delivery
from bot.telegram.http import ConnectionsRequest
from bot.telegram.inbox import InboxRequest, replay
from bot.telegram.menus import Menus, registered_commands
from bot.telegram.ratelimit import ChatRateLimiter
from bot.text import render
from bot.text.i18n import Languages
from bot.tree import Tree
from bot.village_notice import VillageNotices
from escalation import polls, sweep, weekly
from escalation.notify import Notifier
from escalation.officers import Targets

if TYPE_CHECKING:
    from bot.store.workers import Workers

log = logging.getLogger(__name__)

PRUNE_EVERY = 3600.0
KEEP_DONE = 30 * 86400.0  # sent messages are kept this long, for inquiries
# Handled updates leave their id this long, against duplicates. No longer: after a quiet
# week Telegram may number updates afresh, and an old id kept could make a new one look done.
KEEP_UPDATE_IDS = 7 * 86400.0


def build_application(config: Config, token: str, clock: Clock | None = None) -> Application:
    limits = config.telegram.rate_limit
    builder = (
        ApplicationBuilder()
        .token(token)
        .defaults(
            Defaults(
                parse_mode=ParseMode.HTML,
                tzinfo=config.tz,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
            )
        )
        .rate_limiter(
            ChatRateLimiter(
                overall_per_second=limits.overall_per_second,
                group_per_minute=limits.group_per_minute,
                max_retries=limits.max_retries,
            )
        )
        .request(ConnectionsRequest(config.telegram.connections))
        .get_updates_request(InboxRequest())
        .post_init(_open)
        .post_stop(_stop_workers)
        .post_shutdown(_close)
    )
    if config.telegram.base_url:
        builder = builder.base_url(config.telegram.base_url)
    if config.telegram.base_file_url:
        builder = builder.base_file_url(config.telegram.base_file_url)
    if config.telegram.mode == "webhook":  # no getUpdates: Telegram posts (bot/telegram/webhook.py)
        builder = builder.updater(None)
    app = builder.build()
    tree = Tree(config)
    app.bot_data["config"] = config
    app.bot_data["tree"] = tree
    app.bot_data["clock"] = clock or SystemClock()
    handlers.register(app, tree)
    assert app.job_queue is not None, "install python-telegram-bot[job-queue]"
    # The first sweep's time is fixed now (APScheduler would otherwise work it out when the
    # job queue starts and, if opening the database took longer than 0.1 s, skip to a whole
    # sweep_interval later), and it runs however late it comes.
    first = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=0.1)
    app.job_queue.run_repeating(_sweep_job, interval=config.sweep_interval, first=first, name="sweep",
                                job_kwargs={"next_run_time": first, "misfire_grace_time": None})
    return app


async def _open(app: Application) -> None:
    config: Config = app.bot_data["config"]
    tree: Tree = app.bot_data["tree"]
    clock: Clock = app.bot_data["clock"]
    # bot/runner.py opens it first, with the same clock and connections
    store = app.bot_data.pop("store", None) or await Store.open(config.database, now=clock.now,
                                                                connections=config.telegram.connections)
    store.bot_id = app.bot.id  # the inbox's key (issue 18); Telegram said who we are at initialize
    async with store.transaction() as tx:
        await tx.inbox_adopt()  # updates stored before the key had the bot's id (issue 18)
        tree.set_bindings(await tx.bindings())
        first_started = await tx.first_started(clock.now())
        if len(tree.stations) == 1:  # a town's rows from before stations are its one station's (issue 17)
            await tx.adopt_town_rows(tree.stations[0].id, (weekly.SCHEDULE, weekly.MONTHLY))
        if store.engine != "postgres":  # one process: it is the sender; on PostgreSQL, whoever takes the lease
            await tx.outbox_retry_now(clock.now())
    langs = Languages(config.language, config.tz, {c.key: (c.zh, c.en) for c in config.categories})
    async with store.read() as tx:
        langs.load(await tx.chat_languages())
    # Several workers on one PostgreSQL (issue 18): a side connection for the sender's lease and
    # for what the others say; on SQLite (one process) none.
    workers = None
    if store.engine == "postgres":
        from bot.store.workers import Workers

        # bot/runner.py says when this process holds the single-instance guard (polling): the only sender.
        workers = await Workers.connect(config.database, config.delivery.lease, sole=app.bot_data.get("sole", False))
        app.bot_data["workers"] = workers
        if isinstance(limiter := app.bot.rate_limiter, ChatRateLimiter):  # a 429 is the token's: kept for all
            limiter.on_flood = workers.note_flood
    # The worker is woken through the store's signals (bot/store/store.py's Signals), made with the
    # store: neither is wired to the other after it is built.
    delivery = Delivery(app.bot, store, tree, langs, clock, round(config.telegram.rate_limit.overall_per_second),
                        settle={Kind.BROADCAST: broadcasts.settled,
                                Kind.SAFETY_POLL: polls.settled, Kind.STOP_POLL: polls.settled}, lease=workers)
    notifier = Notifier(tree, langs, config)
    app.bot_data["services"] = Services(
        config=config,
        tree=tree,
        texts=langs.for_chat(None),
        langs=langs,
        clock=clock,
        store=store,
        matters=Matters(store, tree, langs, clock, config, notifier),
        notifier=notifier,
        delivery=delivery,
        weekly_trigger=config.weekly_trigger(),
        first_started=first_started,
    )
    await app.bot_data["services"].matters.load_limits()
    if workers is not None:
        _share_copies(app, workers)
    # Command menus per scope and language, in the background: a failure is logged, never fatal.
    # Set once per deployment, not once per worker: by the sender, as it takes the lease (a new
    # one finishes what a dead one left, the meta table saying what was set).
    menus = Menus(app.bot, store, tree, langs, registered_commands(app))
    app.bot_data["menus"] = menus
    if workers is None:
        menus.start()
    else:
        delivery.on_gained = menus.start
    delivery.start()
    request = app.bot._request[0]  # PTB keeps (getUpdates request, other requests)
    if isinstance(request, InboxRequest):
        request.store, request.tree = store, tree
    # Webhook mode on PostgreSQL (several workers): what was never answered, Telegram posts again;
    # replayed here it could be an update another worker has in hand.
    await replay(app, store, queue=not (config.telegram.mode == "webhook" and store.engine == "postgres"))
    log.info("tierbot started: %d units, database %s", sum(1 for _ in tree.units()), shown(config.database))


def _share_copies(app: Application, workers: Workers) -> None:
    """The in-memory copies other workers change: reloaded when they say so (a commit that
    changed one NOTIFYs, bot/store/store.py), and all of them after the side connection was
    lost. Messages queued elsewhere wake the sender. Duty overrides and the hourly report
    limits need nothing: they are read from the database where they are used."""
    svc: Services = app.bot_data["services"]
    reloads: set[asyncio.Task[None]] = set()

    async def reload(what: str) -> None:
        async with svc.store.read() as tx:
            if what == "bindings":
                svc.tree.set_bindings(await tx.bindings())
            else:
                svc.langs.load(await tx.chat_languages())

    def later(what: str) -> None:
        task = asyncio.get_running_loop().create_task(reload(what), name=f"tierbot-reload-{what}")
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    def username(words: str) -> None:  # a station staff member's @name, seen by another worker (/duty @name)
        name, _, user_id = words.partition(" ")
        if name and user_id.isdecimal():
            svc.usernames[name] = int(user_id)

    def everything() -> None:
        later("bindings")
        later("languages")
        svc.store.signals.queued.set()

    workers.on("queued", lambda _: svc.store.signals.queued.set(), reconnected=everything)
    workers.on("bindings", lambda _: later("bindings"))
    workers.on("languages", lambda _: later("languages"))
    workers.on("username", username)
    app.bot_data["reloads"] = reloads  # kept referenced while they run


async def _stop_workers(app: Application) -> None:
    menus: Menus | None = app.bot_data.get("menus")
    if menus is not None:
        await menus.stop()
    svc: Services | None = app.bot_data.get("services")
    if svc is not None:
        await svc.delivery.stop()


async def _close(app: Application) -> None:
    svc: Services | None = app.bot_data.pop("services", None)
    if svc is not None:
        await svc.store.close()  # the last sends marked (fenced) while the lease is still held
    workers: Workers | None = app.bot_data.pop("workers", None)
    if workers is not None:
        await workers.close()  # and given up: another worker sends at once


async def _sweep_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    svc = context.application.bot_data.get("services")
    if svc is None:
        return
    now = svc.clock.now()
    await sweep.sweep(svc.store, svc.notifier, now)
    await visits.expire(svc.store, now)  # visit log entries left unfinished for 24 h (issue 16)
    words = render.BulletinWords(svc.langs, svc.tree)  # the bulletins' words are composed when sent
    targets = Targets(svc.config.visits.days_per_week, svc.config.visits.households_per_visit)
    await weekly.send_due(svc.store, svc.tree, words, svc.weekly_trigger, now, since=svc.first_started,
                          targets=targets)
    await VillageNotices(svc.store, svc.tree, svc.clock, svc.config.notice).draft_due(
        svc.config.notice_trigger(), now, svc.config.tz,
        lambda chat, figures: render.village_notice_body(svc.langs.for_chat(chat), figures, svc.config.notice.closing),
        since=svc.first_started,
    )
    await Screenings(svc.store, svc.tree, svc.clock, svc.config.screening, svc.matters).due_work(
        svc.config.screening_trigger(), now
    )
    if now - svc.last_prune > PRUNE_EVERY:  # keep the tables to what is still useful
        async with svc.store.transaction() as tx:
            await tx.inbox_prune(now - KEEP_UPDATE_IDS)
            await tx.outbox_prune(now - KEEP_DONE)
        await retention.purge(svc.store, now - svc.config.retention.personal_data, now)
        svc.last_prune = now
    await weekly.send_monthly_due(
        svc.store, svc.tree, words, svc.config.monthly_trigger(), now, since=svc.first_started,
        weekly_trigger=svc.weekly_trigger,
        safety_min_answers=svc.config.safety_poll.min_answers if svc.config.safety_poll.enabled else None,
        targets=targets,
    )
    # 群众安全感 (issue 16): the month's poll to every unit group, and each closed when its time is up.
    await polls.open_due(svc.store, svc.tree, svc.config.safety_poll, svc.config.safety_poll_trigger(),
                         svc.config.tz, now, since=svc.first_started)
    await polls.close_due(svc.store, now)
    async with svc.store.transaction() as tx:  # for `tierbot status`: a sweep that stopped is a bot that stopped
        await tx.set_meta(LAST_SWEEP, repr(now))


@asynccontextmanager
async def running(app: Application, poll_timeout: int | None = None,
                  polling: bool = True, webhook_secret: str = "") -> AsyncIterator[Application]:
    """Start and stop the Application in the order ``run_polling`` does, inside an event
    loop the caller owns (tests, the demo); ``polling=False``: a worker that takes no
    updates (tests of several workers, whose updates go to one of them). In webhook mode its
    server listens on a port the system chooses (``app.bot_data["webhook"].port``)."""
    from bot.telegram.webhook import WebhookServer

    config: Config = app.bot_data["config"]
    await app.initialize()
    await _open(app)
    server: WebhookServer | None = None
    if polling and app.updater is not None:
        await app.updater.start_polling(  # asking for what `tierbot run` asks for (bot/runner.py)
            poll_interval=0, timeout=config.telegram.poll_timeout if poll_timeout is None else poll_timeout,
            allowed_updates=ALLOWED_UPDATES,
        )
    await app.start()
    if app.updater is None:
        server = app.bot_data["webhook"] = WebhookServer(app, config.telegram.webhook, webhook_secret, port=0)
        await server.start()
    try:
        yield app
    finally:
        if server is not None:
            await server.stop()
        if polling and app.updater is not None:
            await app.updater.stop()
        await app.stop()
        await _stop_workers(app)
        await app.shutdown()
        await _close(app)
