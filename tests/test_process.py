"""``tierbot run`` as an operator meets it: one instance per database, clear refusals
(exit 2: token or config, 3: another instance, 1: anything else), retries at start, and
the token in no output at all.

Like tests/test_crash.py, the bot runs as its own process (`python -m bot run`) against
the fake Bot API server; its stdout and stderr go to a file the test reads.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot import logs, redact
from bot.dev.fakeapi import FakeBotApi
from bot.runner import ConflictWatch
from bot.store import SCHEMA_VERSION, Store
from tests.conftest import ROOT, STATION_CHAT, TOKEN, U1_CHAT, add_chats, town

SECRET_TOKEN = "987654321:AAH-very-secret-0123456789"
SECRET = SECRET_TOKEN.split(":", 1)[1]

# Every logger at DEBUG whatever the bot's own logging setup asks for: "no log line at any
# level" includes httpx's request lines, which carry the token in their URLs.
DEBUG_EVERYTHING = (
    "import logging, sys\n"
    "logging.basicConfig(level=logging.DEBUG, format='%(levelname)s %(name)s: %(message)s')\n"
    "logging.Logger.setLevel = lambda self, level: None\n"
    "from bot.cli import main\n"
    "raise SystemExit(main(sys.argv[1:]))\n"
)


def write_config(tmp_path: Path, base_url: str, **telegram: Any) -> Path:
    raw = town(sweep_interval="0.5s")
    raw["database"] = str(tmp_path / "bot.sqlite3")
    raw["telegram"].update(base_url=base_url, base_file_url=base_url.replace("/bot", "/file/bot"), poll_timeout=1,
                           **telegram)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


class Bot:
    """One ``tierbot run`` process, its output in a file."""

    started: list[asyncio.subprocess.Process] = []

    def __init__(self, process: asyncio.subprocess.Process, log: Path) -> None:
        self.process, self.log = process, log
        Bot.started.append(process)

    @classmethod
    async def start(cls, config: Path, *, token: str = TOKEN, debug: bool = False, name: str = "bot") -> Bot:
        log = config.parent / f"{name}.log"
        prefix = ["-c", DEBUG_EVERYTHING] if debug else ["-m", "bot"]
        with log.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                sys.executable, *prefix, "run", "--config", str(config),
                cwd=ROOT, env={**os.environ, "TELEGRAM_BOT_TOKEN": token}, stdout=out, stderr=subprocess.STDOUT,
            )
        return cls(process, log)

    @property
    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    @property
    def lines(self) -> list[str]:
        # APScheduler's INFO chatter ("Adding job tentatively") is another point of issue 11 (its logger at WARNING).
        return [line for line in self.output.splitlines() if line.strip() and " apscheduler." not in line]

    async def exit_code(self, within: float = 30) -> int:
        return await asyncio.wait_for(self.process.wait(), within)

    async def stop(self) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        return await self.exit_code(20)

    async def wait_output(self, text: str, within: float = 20) -> None:
        for _ in range(int(within / 0.05)):
            if text in self.output:
                return
            assert self.process.returncode is None, self.output
            await asyncio.sleep(0.05)
        raise AssertionError(f"{text!r} not in the output:\n{self.output}")


@pytest.fixture(autouse=True)
async def no_process_left() -> AsyncIterator[None]:
    """A bot that hung (the failures this file is about) is killed, not left behind."""
    yield
    while Bot.started:
        process = Bot.started.pop()
        if process.returncode is None:
            process.kill()
            await process.wait()


async def card_for_a_report(api: FakeBotApi, text: str) -> None:
    """The bot is up and handling updates: a report in a unit group gets its card."""
    api.send_text(U1_CHAT, api.user(901, "居民"), f"/report {text}")
    def card() -> bool:
        return any(text in (m.text or "") and "📋" in (m.text or "") for m in api.bot_messages(U1_CHAT))

    await api.wait_for(card, timeout=20)


# ----------------------------------------------------------------------------- one instance


async def test_a_second_instance_on_the_same_database_exits_3_naming_it_and_the_holder(
    api: FakeBotApi, tmp_path: Path
) -> None:
    config = write_config(tmp_path, api.base_url)
    add_chats(api, town())
    first = await Bot.start(config, name="first")
    try:
        await card_for_a_report(api, "楼道堆物")
        second = await Bot.start(config, name="second")
        assert await second.exit_code() == 3
        database = str(tmp_path / "bot.sqlite3")
        assert second.lines == [
            f"tierbot: another tierbot (pid {first.process.pid}) is already running on the database {database}; "
            "stop it first, or give this one its own database"
        ]
        # The lock is beside the database, not on it: readers (export, status) still read.
        with sqlite3.connect(database) as db:
            assert db.execute("SELECT count(*) FROM matters").fetchone()[0] == 1
        await card_for_a_report(api, "路灯坏了")  # the first one polls on, alone
    finally:
        assert await first.stop() == 0
    with sqlite3.connect(tmp_path / "bot.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM matters").fetchone()[0] == 2


async def test_a_409_conflict_is_logged_once_a_minute_and_told_to_the_station_once(
    api: FakeBotApi, tmp_path: Path
) -> None:
    config = write_config(tmp_path, api.base_url)
    add_chats(api, town())
    api.fail("getUpdates", status=409, times=3,
             description="Conflict: terminated by other getUpdates request; make sure that only one bot instance "
                         "is running")
    bot = await Bot.start(config)
    try:
        await card_for_a_report(api, "楼道堆物")  # it kept retrying and got through
        assert sum(c.status == 409 for c in api.calls_to("getUpdates")) == 3
        await asyncio.sleep(0.5)  # a second notice would arrive by now
    finally:
        assert await bot.stop() == 0
    conflict_lines = [line for line in bot.lines if "409 Conflict" in line]
    assert len(conflict_lines) == 1 and " ERROR " in conflict_lines[0], bot.output
    assert "another process is polling with this bot's token" in conflict_lines[0]
    notices = [m.text for m in api.bot_messages(STATION_CHAT) if "409" in (m.text or "")]
    assert len(notices) == 1 and "另有一个程序正在用本机器人的令牌接收消息" in (notices[0] or "")


def test_the_conflict_watch_speaks_once_a_minute_with_the_count() -> None:
    now = [0.0]
    watch = ConflictWatch(every=60, clock=lambda: now[0])
    said = []
    for t in (0, 1, 2.5, 30, 59, 61, 62, 200):
        now[0] = t
        said.append(watch.seen())
    assert said == [1, None, None, None, None, 5, None, 2]
    assert watch.total == 8


# ----------------------------------------------------------------------------- the database


def _damaged(path: Path, how: str) -> None:
    if how == "random bytes":
        path.write_bytes(random.Random(11).randbytes(8192))
    elif how == "truncated":
        async def fill() -> None:
            store = await Store.open(path)
            await store.close()
        asyncio.run(fill())
        with closing(sqlite3.connect(path)) as db, db:
            db.execute("CREATE TABLE filler (x TEXT)")
            db.executemany("INSERT INTO filler VALUES (?)", [("x" * 500,) for _ in range(2000)])
        with path.open("r+b") as f:
            f.truncate(path.stat().st_size // 2)
    else:  # as a newer tierbot leaves it: WAL, a schema version this one does not know
        with closing(sqlite3.connect(path)) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA user_version = 99")


@pytest.mark.parametrize(("how", "says"), [
    ("random bytes", "not a SQLite database"),
    ("truncated", "the file is damaged ("),
    ("newer", f"made by a newer tierbot: schema 99, this one knows {SCHEMA_VERSION}"),
])
async def test_an_unusable_database_exits_1_with_one_line_instead_of_hanging(
    api: FakeBotApi, tmp_path: Path, how: str, says: str
) -> None:
    config = write_config(tmp_path, api.base_url)
    add_chats(api, town())
    database = tmp_path / "bot.sqlite3"
    await asyncio.to_thread(_damaged, database, how)
    before = database.read_bytes()
    bot = await Bot.start(config)
    assert await bot.exit_code() == 1
    [line] = bot.lines
    assert line.startswith(f"tierbot: cannot use the database {database}: {says}")
    assert "Restore a backup" in line or "Run the newer tierbot" in line
    assert database.read_bytes() == before, "the file is left as it was"
    assert not api.calls_to("getUpdates"), "it never polled"


async def test_a_missing_database_beside_its_wal_file_is_refused_not_recreated(api: FakeBotApi, tmp_path: Path) -> None:
    config = write_config(tmp_path, api.base_url)
    database = tmp_path / "bot.sqlite3"
    wal = tmp_path / "bot.sqlite3-wal"
    wal.write_bytes(b"\x37\x7f\x06\x82" + bytes(28))  # what is left after the file was moved away
    bot = await Bot.start(config)
    assert await bot.exit_code() == 1
    [line] = bot.lines
    assert f"the database {database} is missing but its write-ahead log {wal} is there" in line
    assert not database.exists()


# ----------------------------------------------------------------------------- the token


@pytest.mark.parametrize("answer", [401, 404])
async def test_a_refused_token_is_one_masked_line_and_exit_2(api: FakeBotApi, tmp_path: Path, answer: int) -> None:
    if answer == 401:
        api.fail("getMe", status=401, description="Unauthorized")
        config = write_config(tmp_path, api.base_url)
        hint = "check TELEGRAM_BOT_TOKEN"
    else:  # a wrong telegram.base_url: the server answers 404 to everything
        config = write_config(tmp_path, api.base_url.replace("/bot", "/nothing-here"))
        hint = "check TELEGRAM_BOT_TOKEN and telegram.base_url"
    bot = await Bot.start(config, token=SECRET_TOKEN)
    assert await bot.exit_code() == 2
    assert bot.lines == [f"tierbot: Telegram refused the token 987654321:*** ({answer}); {hint}"]


async def test_the_token_is_in_no_output_at_debug_level(api: FakeBotApi, tmp_path: Path) -> None:
    """A full run, a failed start, a token revoked while running (the process stops) and
    a crash, every logger at DEBUG."""
    config = write_config(tmp_path, api.base_url)
    add_chats(api, town())

    full = await Bot.start(config, token=SECRET_TOKEN, debug=True, name="full")
    try:
        await card_for_a_report(api, "楼道堆物")
    finally:
        assert await full.stop() == 0
    assert "/bot987654321:***/getUpdates" in full.output, "httpx logged its requests, masked"

    api.fail("getMe", status=401, description="Unauthorized")
    failed = await Bot.start(config, token=SECRET_TOKEN, debug=True, name="failed")
    assert await failed.exit_code() == 2

    revoked = await Bot.start(config, token=SECRET_TOKEN, debug=True, name="revoked")
    await revoked.wait_output("tierbot started")
    api.fail("getUpdates", status=401, description="Unauthorized", times=1000)
    assert await revoked.exit_code() == 2, "a bot that can no longer poll stops instead of running deaf"
    assert "tierbot: Telegram refused the token 987654321:*** (401); check TELEGRAM_BOT_TOKEN" in revoked.lines

    api.bot_user = {"is_bot": True}  # a getMe answer PTB cannot read: an unexpected error, with its traceback
    crashed = await Bot.start(config, token=SECRET_TOKEN, debug=True, name="crashed")
    assert await crashed.exit_code() == 1
    assert "CRITICAL bot.runner: tierbot stopped by an unexpected error" in crashed.output
    assert "Traceback (most recent call last)" in crashed.output

    for bot in (full, failed, revoked, crashed):
        assert SECRET not in bot.output, bot.log.name
    assert "987654321:***" in failed.output


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_the_token_filter_masks_messages_arguments_and_tracebacks(fmt: str) -> None:
    stream = io.StringIO()
    handler = logs.setup("INFO", fmt, stream)
    redact.install(SECRET_TOKEN)
    log = logging.getLogger("tests.redact")
    try:
        log.warning("HTTP Request: POST %s", f"https://api.telegram.org/bot{SECRET_TOKEN}/getMe")
        try:
            raise RuntimeError(f"The token `{SECRET_TOKEN}` was rejected")
        except RuntimeError:
            log.exception("failed")
    finally:
        logs.reset(handler)
    out = stream.getvalue()
    assert SECRET not in out
    assert "/bot987654321:***/getMe" in out and "The token `987654321:***` was rejected" in out
    assert "Traceback (most recent call last)" in out
    assert redact.masked(SECRET_TOKEN) == "987654321:***"


# ----------------------------------------------------------------------------- no network at start


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_no_network_at_start_is_retried_until_telegram_answers(tmp_path: Path) -> None:
    port = _closed_port()
    config = write_config(tmp_path, f"http://127.0.0.1:{port}/bot")
    bot = await Bot.start(config)
    api = FakeBotApi()
    try:
        await bot.wait_output("cannot reach Telegram (attempt 1)")
        await api.start(port=port)
        add_chats(api, town())
        await card_for_a_report(api, "楼道堆物")
        assert "Traceback" not in bot.output
        attempts = [line for line in bot.lines if "cannot reach Telegram" in line]
        assert attempts and all(" WARNING " in line and "next try in" in line for line in attempts)
    finally:
        assert await bot.stop() == 0
        await api.stop()


async def test_a_stop_while_waiting_for_telegram_is_prompt_and_clean(tmp_path: Path) -> None:
    config = write_config(tmp_path, f"http://127.0.0.1:{_closed_port()}/bot")
    bot = await Bot.start(config)
    await bot.wait_output("cannot reach Telegram (attempt 2)")  # now waiting 2 s before the next
    bot.process.send_signal(signal.SIGTERM)
    assert await bot.exit_code(within=1.5) == 0
    assert "Traceback" not in bot.output


async def test_start_gives_up_after_start_retries_with_exit_1(tmp_path: Path) -> None:
    config = write_config(tmp_path, f"http://127.0.0.1:{_closed_port()}/bot", start_retries=1)
    bot = await Bot.start(config)
    assert await bot.exit_code() == 1
    assert "Traceback" not in bot.output
    warnings = [line for line in bot.lines if " WARNING " in line]
    assert len(warnings) == 1 and "cannot reach Telegram (attempt 1 of 2)" in warnings[0], bot.output
    assert bot.lines[-1].startswith("tierbot: cannot reach Telegram (")
    assert bot.lines[-1].endswith("gave up after 2 attempt(s) (telegram.start_retries)")


# ----------------------------------------------------------------------------- deployment


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    unit = ROOT / "deploy" / "tierbot.service"
    text = unit.read_text(encoding="utf-8")
    for setting in ("Restart=on-failure", "RestartPreventExitStatus=2 3", "StateDirectoryMode=0700",
                    "ProtectSystem=strict", "NoNewPrivileges=yes"):
        assert setting in text.splitlines(), setting
    # verify checks that ExecStart's program exists: point it at one that does.
    local = tmp_path / "tierbot.service"
    local.write_text(text.replace("/opt/tierbot/.venv/bin/tierbot", sys.executable), encoding="utf-8")
    done = subprocess.run(["systemd-analyze", "verify", str(local)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    problems = [line for line in done.stderr.splitlines() if "tierbot.service" in line]
    assert problems == [], done.stderr
    # The hardening, as systemd rates it (0 best, 10 worst); offline rating needs systemd 250+.
    rated = subprocess.run(["systemd-analyze", "security", "--offline=true", str(local)],
                           capture_output=True, text=True, timeout=60)
    score = re.search(r"Overall exposure level for tierbot.service: ([\d.]+)", rated.stdout)
    if score is not None:
        assert float(score[1]) <= 2.0, rated.stdout
