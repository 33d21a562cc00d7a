"""Issue 11, for the operator: event logs (text and JSON), ``tierbot status``, and
``tierbot backup`` / ``restore`` while the bot runs.

The bot is the real Application against the fake Bot API (in-process, or ``python -m bot
run`` as a subprocess); the commands run as ``python -m bot …`` subprocesses, as an
operator or a monitoring check would call them.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot import logs, ops
from bot.clock import ManualClock
from bot.dev.fakeapi import FakeBotApi
from bot.store import SCHEMA_VERSION, Store, Tx
from tests.conftest import (
    C1_CHAT,
    HEAD1,
    ROOT,
    STATION_CHAT,
    TOKEN,
    TZ,
    U1_CHAT,
    U2_CHAT,
    U3_CHAT,
    Running,
    add_chats,
    town,
)

H = 3600.0
SECRET = "隔壁家暴每晚打孩子"  # a report's text: never in a log
REPORTER = "张秘密"  # a reporter's name: never in a log
HEAD_NAME = "蒋建国"


def events_of(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == logs.events.name]


def event_fields(record: logging.LogRecord) -> dict[str, Any]:
    keys = ("event", "matter", "node", "tier", "from_tier", "to_tier", "reason")
    return {k: getattr(record, k) for k in keys if hasattr(record, k)}


async def report(bot: Running, chat: int, user: int, text: str, name: str = REPORTER) -> Any:
    sent = bot.api.send_text(chat, bot.api.user(user, name), f"/report {text}")
    return await bot.api.wait_for(
        lambda: next((m for m in bot.api.bot_messages(chat) if m.reply_to == sent["message_id"]), None)
    )


def write_config(tmp_path: Path, raw: dict[str, Any], name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def config_of(bot: Running, tmp_path: Path, name: str = "config.yaml") -> Path:
    """The running bot's config as a file, for the commands an operator runs beside it."""
    raw = town()
    raw["database"] = bot.config.database
    return write_config(tmp_path, raw, name)


async def tierbot(*args: str) -> tuple[int, str, str]:
    """``python -m bot …`` as a separate process: exit status, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


# --- logs --------------------------------------------------------------------------------
@pytest.fixture
def operator_log() -> Iterator[io.StringIO]:
    """What an operator running ``tierbot run --log-level DEBUG`` would read."""
    stream = io.StringIO()
    handler = logs.setup("DEBUG", "text", stream=stream)
    try:
        yield stream
    finally:
        logs.reset(handler)


async def test_each_event_is_one_info_line_with_numbers_and_never_text_or_names(
    make_bot: Any, caplog: pytest.LogCaptureFixture, operator_log: io.StringIO
) -> None:
    async with make_bot() as bot:
        # Report → claim → resolve.
        await report(bot, U1_CHAT, 901, SECRET)
        await bot.done(U1_CHAT, bot.api.send_text(U1_CHAT, bot.api.user(HEAD1, HEAD_NAME), "/claim 1"))
        bot.api.send_text(U1_CHAT, bot.api.user(HEAD1, HEAD_NAME), "/resolve 1 已上门调解，双方和好")
        await bot.wait_bot(U1_CHAT, "双方和好")
        # Another, left alone, climbs to the community and the station.
        await report(bot, U2_CHAT, 902, SECRET + "二")
        bot.clock.advance(1 * H)
        await bot.wait_bot(C1_CHAT, "事项 #2 上报至社区")
        bot.clock.advance(2 * H)
        await bot.wait_bot(STATION_CHAT, "事项 #2 上报至派出所")
        await bot.settle()

    seen = [event_fields(r) for r in events_of(caplog)]
    assert seen == [
        {"event": "reported", "matter": 1, "node": "u1"},
        {"event": "claimed", "matter": 1, "node": "u1", "tier": 3},
        {"event": "resolved", "matter": 1, "node": "u1", "tier": 3},
        {"event": "reported", "matter": 2, "node": "u2"},
        {"event": "escalated", "matter": 2, "node": "u2", "from_tier": 3, "to_tier": 2, "reason": "unclaimed"},
        {"event": "escalated", "matter": 2, "node": "u2", "from_tier": 2, "to_tier": 1, "reason": "unclaimed"},
    ]
    assert all(r.levelno == logging.INFO for r in events_of(caplog))
    lines = [r.getMessage() for r in events_of(caplog)]
    assert lines[4] == "matter 2 escalated from tier 3 to tier 2 (u2, unclaimed)"
    assert lines[1] == "matter 1 claimed at tier 3 (u1)"
    # Even at DEBUG, nothing in the log carries what residents wrote or who they are.
    everything = operator_log.getvalue()
    assert "matter 2 escalated from tier 2 to tier 1 (u2, unclaimed)" in everything
    for private in (SECRET, "已上门调解", REPORTER, HEAD_NAME):
        assert private not in everything


async def test_moves_by_hand_and_a_released_claim_are_logged(make_bot: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    police = (C1_CHAT, 21, "王警官")
    async with make_bot(town(idle={"remind_after": "1h", "release_after": "1h"})) as bot:
        await report(bot, U1_CHAT, 901, SECRET)
        for chat, user, name, command, answer in (
            (U1_CHAT, HEAD1, HEAD_NAME, "/escalate 1 涉及多户", "已提请"),
            (*police, "/return 1 请先上门了解", "已退回"),
            (*police, "/takeover 1", "已接手事项 #1"),
            (*police, "/refer 1 转交法院", "👍"),
            (*police, "/reopen 1 问题再次出现", "已重新打开"),  # back to the tier that closed it
            (*police, "/claim 1", "👍"),  # acknowledged by a reaction (issue 14)
        ):
            sent = bot.api.send_text(chat, bot.api.user(user, name), command)
            await (bot.done(chat, sent) if answer == "👍" else bot.wait_bot(chat, answer))
        bot.clock.advance(1 * H)
        await bot.wait_bot(C1_CHAT, "认领后无进展")  # the claimer is asked for news…
        bot.clock.advance(1 * H)
        await bot.api.wait_for(lambda: any(r.getMessage().endswith("(u1)") and "released" in r.getMessage()
                                           for r in events_of(caplog)))
    assert [r.getMessage() for r in events_of(caplog)][1:] == [
        "matter 1 escalated from tier 3 to tier 2 (u1, by hand)",
        "matter 1 returned from tier 2 to tier 3 (u1)",
        "matter 1 taken over from tier 3 by tier 2 (u1)",
        "matter 1 closed as referred at tier 2 (u1)",
        "matter 1 reopened (u1)",
        "matter 1 claimed at tier 2 (u1)",
        "matter 1 released: no news from its claimer at tier 2 (u1)",
    ]


async def test_a_change_rolled_back_is_not_logged(
    make_bot: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO)
    async with make_bot() as bot:
        await report(bot, U1_CHAT, 901, SECRET)
        await bot.settle()
        real = Tx.outbox_insert

        async def fail_late(self: Tx, rows: list[tuple], *args: Any, **kw: Any) -> None:
            if any(row[0].startswith("reaction:") for row in rows):  # after the claim is written and its event noted
                raise sqlite3.OperationalError("disk I/O error")
            return await real(self, rows, *args, **kw)

        monkeypatch.setattr(Tx, "outbox_insert", fail_late)
        bot.api.send_text(U1_CHAT, bot.api.user(HEAD1, HEAD_NAME), "/claim 1")
        await bot.wait_bot(U1_CHAT, "抱歉")  # the bot apologises; the claim was rolled back
        async with bot.svc.store.read() as tx:
            matter = await tx.matter(1)
        assert matter is not None and matter.claimed_by is None
        monkeypatch.setattr(Tx, "outbox_insert", real)
        await bot.done(U1_CHAT, bot.api.send_text(U1_CHAT, bot.api.user(HEAD1, HEAD_NAME), "/claim 1"))
    assert [r.event for r in events_of(caplog)] == ["reported", "claimed"]  # type: ignore[attr-defined]


async def test_broadcast_and_unreachable_chat_are_logged(make_bot: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with make_bot() as bot:
        bot.api.remove_bot_from(U2_CHAT)
        bot.api.send_text(C1_CHAT, bot.api.user(21, "王警官"), "/broadcast 近期电信诈骗高发，请勿转账")
        await bot.wait_bot(C1_CHAT, "送达 1")
        await bot.settle()
    records = {r.event: r for r in events_of(caplog)}  # type: ignore[attr-defined]
    assert records["broadcast_queued"].getMessage() == "broadcast 1 queued from c1 to 2 group(s)"
    assert records["broadcast_settled"].getMessage() == "broadcast 1 settled: 1 delivered, 1 failed"
    unreachable = records["unreachable"]
    assert unreachable.levelno == logging.WARNING and (unreachable.chat, unreachable.node) == (U2_CHAT, "u2")  # type: ignore[attr-defined]
    assert sum(r.event == "unreachable" for r in events_of(caplog)) == 1  # type: ignore[attr-defined]
    assert "诈骗" not in "\n".join(r.getMessage() for r in caplog.records)


def test_json_lines_carry_time_level_logger_message_and_fields() -> None:
    stream = io.StringIO()
    handler = logs.setup("INFO", "json", stream=stream)
    try:
        logs.event("escalated", matter=7, node="u3", from_tier=2, to_tier=1, reason="unresolved")
        logging.getLogger("apscheduler.executors.default").info("Running job")  # quiet: not shown
        logging.getLogger("httpx").info("HTTP Request: POST …")
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("bot.telegram.delivery").exception("delivery batch failed")
    finally:
        logs.reset(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 2
    first = lines[0]
    assert first["level"] == "INFO" and first["logger"] == "tierbot.events"
    assert first["message"] == "matter 7 escalated from tier 2 to tier 1 (u3, unresolved)"
    assert (first["event"], first["matter"], first["node"], first["from_tier"], first["to_tier"]) == (
        "escalated", 7, "u3", 2, 1)
    assert first["time"].endswith("+00:00") and "T" in first["time"]
    assert lines[1]["level"] == "ERROR" and "RuntimeError: boom" in lines[1]["traceback"]


def test_log_level_and_format_come_from_options_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(logs.LEVEL_VARIABLE, raising=False)
    monkeypatch.delenv(logs.FORMAT_VARIABLE, raising=False)
    assert logs.choose(None, None) == ("INFO", "text")
    monkeypatch.setenv(logs.LEVEL_VARIABLE, "warning")
    monkeypatch.setenv(logs.FORMAT_VARIABLE, "JSON")
    assert logs.choose(None, None) == ("WARNING", "json")
    assert logs.choose("DEBUG", "text") == ("DEBUG", "text")
    monkeypatch.setenv(logs.LEVEL_VARIABLE, "chatty")
    with pytest.raises(ValueError, match="TIERBOT_LOG_LEVEL"):
        logs.choose(None, None)


async def test_tierbot_run_logs_json_events_and_no_scheduler_chatter(api: FakeBotApi, tmp_path: Path) -> None:
    raw = town(sweep_interval="0.2s")
    raw["database"] = str(tmp_path / "run.sqlite3")
    raw["telegram"].update(base_url=api.base_url, base_file_url=api.base_file_url, poll_timeout=1)
    add_chats(api, raw)
    config = write_config(tmp_path, raw)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", "--config", str(config), "--log-format", "json",
        cwd=ROOT, env={**os.environ, "TELEGRAM_BOT_TOKEN": TOKEN, logs.LEVEL_VARIABLE: "info"},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        api.send_text(U3_CHAT, api.user(903, REPORTER), f"/report {SECRET}")
        await api.wait_for(lambda: any("事项 #1" in (m.text or "") for m in api.bot_messages(U3_CHAT)), 20)
        claim = api.send_text(U3_CHAT, api.user(33, HEAD_NAME), "/claim 1")
        await api.wait_for(lambda: "👍" in api.reactions(U3_CHAT, claim["message_id"]), 10)
        api.send_text(U3_CHAT, api.user(33, HEAD_NAME), "/resolve 1 已处理完毕")
        await api.wait_for(lambda: any("已处理完毕" in (m.text or "") for m in api.bot_messages(U3_CHAT)), 10)
        await asyncio.sleep(1.5)  # several sweeps: none of them may log at INFO
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.stderr is not None
        err = (await asyncio.wait_for(process.stderr.read(), 20)).decode()
        await asyncio.wait_for(process.wait(), 20)
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    events = [(line["event"], line["matter"], line["node"]) for line in lines if line["logger"] == "tierbot.events"]
    assert events == [("reported", 1, "u3"), ("claimed", 1, "u3"), ("resolved", 1, "u3")]
    assert not [line for line in lines if line["logger"].startswith(("apscheduler", "httpx"))]
    for private in (SECRET, "已处理完毕", REPORTER, HEAD_NAME, TOKEN):
        assert private not in err


# --- status ------------------------------------------------------------------------------
@pytest.mark.sqlite_only(reason="its PostgreSQL twin: test_postgres_ops.py, test_status_on_postgresql_says_…")
async def test_status_of_a_running_bot(make_bot: Any, tmp_path: Path) -> None:
    now = time.time()
    # No bulletin falls due while the bot's clock runs the 5 hours up to now (on a Monday
    # morning the weekly one did, and its chart was the oldest message waiting): their next
    # times are an hour ahead.
    ahead = datetime.fromtimestamp(now + H, TZ)
    raw = town(weekly_summary=ahead.strftime("%a %H:%M").lower(), monthly_bulletin=ahead.strftime("%H:%M"))
    async with make_bot(raw, clock=ManualClock(now - 5 * H)) as bot:
        await report(bot, U1_CHAT, 901, SECRET)  # left alone: it climbs to the station
        await report(bot, U2_CHAT, 902, "二")
        await bot.done(U2_CHAT, bot.api.send_text(U2_CHAT, bot.api.user(32, "周明"), "/claim 2"))
        await report(bot, U3_CHAT, 903, "三")
        bot.api.send_text(U3_CHAT, bot.api.user(33, "吴楼长"), "/resolve 3 好了")
        await bot.wait_bot(U3_CHAT, "好了")
        bot.clock.set(now - 4 * H)  # #1: 1 h at the unit, 2 h at the community, then the station's 3 h
        await bot.wait_bot(C1_CHAT, "事项 #1 上报至社区")
        bot.clock.set(now - 2 * H)
        await bot.wait_bot(STATION_CHAT, "事项 #1 上报至派出所")
        bot.clock.set(now)
        bot.api.remove_bot_from(U2_CHAT)
        bot.api.fail("sendMessage", chat_id=U3_CHAT, status=500)  # a card left waiting for its retry
        bot.api.send_text(U3_CHAT, bot.api.user(904, "居民"), "/report 四")
        await bot.api.wait_for(lambda: bot.api.calls_to("sendMessage")[-1].status == 500)
        bot.api.send_text(U2_CHAT, bot.api.user(32, "周明"), "/note 2 在处理")  # its 👍 finds the bot gone
        await bot.api.wait_for(lambda: bot.api.calls_to("setMessageReaction")[-1].status == 403)
        await bot.settle()
        config = config_of(bot, tmp_path)

        # The command as a monitoring check runs it, beside the running bot.
        code, out, err = await tierbot("status", "--config", str(config))
        assert (code, err) == (0, ""), out + err
        assert f"schema version: {SCHEMA_VERSION}" in out
        assert "open matters: 3 (tier 3 units: 2, tier 2 communities: 0, tier 1 station: 1)" in out
        assert "oldest overdue: none" in out  # the station's 3 h are not over yet
        assert re.search(r"outbox backlog: 1 message\(s\), the oldest queued \d s ago \(card:4:new\)", out)
        assert f"unreachable chats: 1: {U2_CHAT} (u2)" in out
        assert "failed inbox updates: 0" in out
        assert re.search(r"last sweep: \d s ago", out)
        assert "next bulletin: weekly " in out and "monthly " in out
        assert out.rstrip().endswith("OK")

        status = await ops.status(bot.config, now + 3 * H, max_backlog_age=15 * 60, max_sweep_age=300)
        text = "\n".join(status.lines)
        assert "oldest overdue: matter 1 at tier 1 (u1), 2 h past its claim deadline" in text
        assert status.problems == ["the oldest message waiting was queued 3 h ago (limit 15 min)",
                                   "the last sweep ran 3 h ago (limit 5 min)"]
        code, out, _ = await tierbot("status", "--config", str(config), "--max-backlog-age", "0.1s")
        assert code == 1 and "PROBLEM: the oldest message waiting was queued" in out


async def test_status_fails_when_no_sweep_ran_or_the_database_is_missing(tmp_path: Path) -> None:
    raw = town()
    raw["database"] = str(tmp_path / "fresh.sqlite3")
    config = write_config(tmp_path, raw)
    code, _, err = await tierbot("status", "--config", str(config))
    assert code == 1 and "no database at" in err
    store = await Store.open(raw["database"])
    await store.close()
    code, out, _ = await tierbot("status", "--config", str(config))
    assert code == 1 and "last sweep: never" in out and "PROBLEM: no sweep has run" in out


async def test_inbox_failed_count_counts_updates_given_up_on(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "inbox.sqlite3")
    try:
        async with store.read() as tx:
            assert await tx.inbox_failed_count() == 0
        async with store.transaction() as tx:  # the inbox of issue 11: failed after the third try
            await tx.inbox_add([(1, "{}"), (2, "{}")])
            for _ in range(3):
                await tx.inbox_try_failed(2, "RuntimeError at x.py:1", 1.0)
        async with store.read() as tx:
            assert await tx.inbox_failed_count() == 1
            assert await tx.inbox_failed(10) == [(2, 1.0, "RuntimeError at x.py:1")]
    finally:
        await store.close()


# --- backup and restore ----------------------------------------------------------------
@pytest.mark.sqlite_only(reason="tierbot backup copies a SQLite file; PostgreSQL's is pg_dump")
async def test_backup_during_a_stream_of_reports_restores_every_committed_one(
    make_bot: Any, tmp_path: Path
) -> None:
    async with make_bot() as bot:
        config = config_of(bot, tmp_path)
        sent = 0

        async def stream() -> None:
            nonlocal sent
            while True:
                chat = (U1_CHAT, U2_CHAT, U3_CHAT)[sent % 3]
                # A resident each: limits.reports_per_hour would hold the eleventh report of one.
                bot.api.send_text(chat, bot.api.user(5000 + sent, f"居民{sent}"), f"/report 第{sent}件")
                sent += 1
                await asyncio.sleep(0.005)

        streaming = asyncio.create_task(stream())
        try:
            await bot.api.wait_for(lambda: sent >= 100, 10)
            with sqlite3.connect(bot.config.database) as db:  # what is committed before the backup starts
                before = db.execute("SELECT id, text FROM matters ORDER BY id").fetchall()
            backup = tmp_path / "backups" / "tierbot.sqlite3"
            code, out, err = await tierbot("backup", "--config", str(config), "--out", str(backup))
            assert code == 0, err
            await bot.api.wait_for(lambda: sent >= len(before) + 100, 10)  # the stream went on meanwhile
        finally:
            streaming.cancel()
        await bot.settle()
        with sqlite3.connect(bot.config.database) as db:
            after = db.execute("SELECT count(*) FROM matters").fetchone()[0]

    assert len(before) >= 50 and after > len(before)
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert await asyncio.to_thread(os.listdir, backup.parent) == [backup.name]  # one self-contained file

    raw = town()
    raw["database"] = str(tmp_path / "restored" / "tierbot.sqlite3")
    restored_config = write_config(tmp_path, raw, "restored.yaml")
    code, out, err = await tierbot("restore", "--config", str(restored_config), "--from", str(backup))
    assert code == 0, err
    assert "restored from" in out
    with sqlite3.connect(raw["database"]) as db:
        rows = db.execute("SELECT id, text FROM matters ORDER BY id").fetchall()
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        # The copy is one moment: every matter it has comes with its "reported" event and its card.
        orphans = db.execute(
            "SELECT count(*) FROM matters m WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.matter_id = m.id) "
            "OR NOT EXISTS (SELECT 1 FROM outbox o WHERE o.key = 'card:' || m.id || ':new')"
        ).fetchone()[0]
    assert rows[: len(before)] == before  # every report committed before the backup
    assert [i for i, _ in rows] == list(range(1, len(rows) + 1)) and len(rows) <= after
    assert orphans == 0
    # The restored database serves a bot again.
    store = await Store.open(raw["database"])
    await store.close()


def hold_lock(database: Path) -> subprocess.Popen[str]:
    """Another process holding the database's lock as a running bot does (bot/lock.py)."""
    code = (
        "import sys, time\n"
        "from bot.lock import DatabaseLock\n"
        f"DatabaseLock({str(database)!r}).acquire()\n"
        "print('locked', flush=True)\n"
        "time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


async def test_restore_refuses_while_the_bot_holds_its_lock(tmp_path: Path) -> None:
    database = tmp_path / "live.sqlite3"
    store = await Store.open(database)
    async with store.transaction() as tx:
        await tx.set_meta("marker", "live")
    await store.close()
    backup = tmp_path / "old.sqlite3"
    ops.backup(database, backup)
    raw = town()
    raw["database"] = str(database)
    config = write_config(tmp_path, raw)
    holder = hold_lock(database)
    try:
        code, _, err = await tierbot("restore", "--config", str(config), "--from", str(backup))
    finally:
        holder.kill()
        holder.wait()
    assert code == 3 and f"pid {holder.pid}" in err and "stop it first" in err
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'marker'").fetchone() == ("live",)
    assert not [n for n in os.listdir(tmp_path) if "before-restore" in n]


async def test_restore_checks_the_copy_and_keeps_the_database_it_replaces(tmp_path: Path) -> None:
    database = tmp_path / "db" / "tierbot.sqlite3"
    store = await Store.open(database)
    async with store.transaction() as tx:
        await tx.set_meta("marker", "old")
    await store.close()
    backup = tmp_path / "backup.sqlite3"
    assert ops.backup(database, backup) == SCHEMA_VERSION
    store = await Store.open(database)
    async with store.transaction() as tx:
        await tx.set_meta("marker", "new")
    await store.close()
    raw = town()
    raw["database"] = str(database)
    config = write_config(tmp_path, raw)

    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(os.urandom(8192))
    newer = tmp_path / "newer.sqlite3"
    with sqlite3.connect(newer) as db:
        db.execute("CREATE TABLE t (x)")
        db.execute("PRAGMA user_version = 99")
    for bad, says in ((garbage, "not a readable SQLite database"), (newer, "made by a newer tierbot (schema 99"),
                      (tmp_path / "missing.sqlite3", "not a readable SQLite database"),
                      (database, "is the database itself")):
        code, _, err = await tierbot("restore", "--config", str(config), "--from", str(bad))
        assert code == 1 and says in err and "nothing was changed" in err, err
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'marker'").fetchone() == ("new",)

    code, out, err = await tierbot("restore", "--config", str(config), "--from", str(backup))
    assert code == 0, err
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'marker'").fetchone() == ("old",)
    [kept] = database.parent.glob("tierbot.sqlite3.before-restore-*")
    assert str(kept) in out and stat.S_IMODE(kept.stat().st_mode) == 0o600
    with sqlite3.connect(kept) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'marker'").fetchone() == ("new",)

