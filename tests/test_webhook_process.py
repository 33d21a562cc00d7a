"""Webhook mode at the process level (issue 18): `tierbot set-webhook` and `tierbot run`
as subprocesses against the fake Bot API, which posts updates the way Telegram does, and a
worker killed with SIGKILL before it answered: the update is posted again after the restart
and its effect is logged once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import yaml

from bot.dev.fakeapi import Call, FakeBotApi
from tests.conftest import HEAD1, ROOT, TOKEN, U1_CHAT, add_chats
from tests.postgres import rows
from tests.test_crash import UNIT_CHATS, crash_town, mentions, outbox_drained, report_all

SECRET = "Wh-secret_0123456789"
PATH = "/telegram/Kd83hQ"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def webhook_town(database: str | Path, api: FakeBotApi, port: int) -> dict[str, Any]:
    raw = crash_town(str(database), api)
    raw["deadlines"]["unit"] = {"claim": "1h", "resolve": "2h"}  # a head's claim stays the head's to make
    raw["telegram"].update(mode="webhook", webhook={
        "url": f"http://127.0.0.1:{port}{PATH}", "listen": "127.0.0.1", "port": port, "path": PATH,
        "max_connections": 5})
    return raw


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET")}
    return {**env, **extra}


async def tierbot(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def start_worker(config: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", "--config", str(config), cwd=ROOT,
        env=environment(TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_WEBHOOK_SECRET=SECRET),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


async def test_set_webhook_registers_url_secret_and_limits_and_prints_neither_secret(
    api: FakeBotApi, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(webhook_town(tmp_path / "db.sqlite3", api, 8443), allow_unicode=True))
    code, out, err = await tierbot("set-webhook", "--config", str(config),
                                   env=environment(TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_WEBHOOK_SECRET=SECRET))
    assert code == 0, err
    assert api.webhook == {"url": f"http://127.0.0.1:8443{PATH}", "secret_token": SECRET, "max_connections": 5,
                           "allowed_updates": ["message", "callback_query", "poll"]}
    assert len(out.strip().splitlines()) == 1 and out.startswith("webhook set: http://127.0.0.1:8443/")
    for secret in (TOKEN.split(":")[1], SECRET, PATH):
        assert secret not in out + err
    # without the secret in the environment: refused, nothing set
    api.webhook = None
    code, out, err = await tierbot("set-webhook", "--config", str(config), env=environment(TELEGRAM_BOT_TOKEN=TOKEN))
    assert code == 2 and "TELEGRAM_WEBHOOK_SECRET" in err and api.webhook is None


async def test_run_in_webhook_mode_without_a_secret_is_refused(api: FakeBotApi, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(webhook_town(tmp_path / "db.sqlite3", api, free_port()), allow_unicode=True))
    code, _, err = await tierbot("run", "--config", str(config), env=environment(TELEGRAM_BOT_TOKEN=TOKEN))
    assert code == 2 and "TELEGRAM_WEBHOOK_SECRET" in err


async def test_a_worker_killed_before_answering_gets_the_update_again_and_logs_it_once(
    api: FakeBotApi, database_url: str, tmp_path: Path
) -> None:
    database = database_url
    port = free_port()
    raw = webhook_town(database, api, port)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    add_chats(api, raw)
    env = environment(TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_WEBHOOK_SECRET=SECRET)
    assert (await tierbot("set-webhook", "--config", str(config), env=env))[0] == 0
    reports: list[str] = []
    pressed: list[int] = []
    started: list[asyncio.subprocess.Process] = []
    try:
        await kill_and_restart(api, config, database, reports, pressed, started)
    finally:  # a failed wait leaves no worker behind
        for process in started:
            if process.returncode is None:
                process.kill()
                await process.wait()


async def kill_and_restart(api: FakeBotApi, config: Path, database: str, reports: list[str], pressed: list[int],
                           started: list[asyncio.subprocess.Process]) -> None:
    def kill_at(process: asyncio.subprocess.Process, killed: asyncio.Event, point: str) -> None:
        """SIGKILL at ``point``: the first card (reports in flight), or the answer to a button
        press (its claim committed, the post not yet answered). Nothing more reaches Telegram."""
        dead = False

        def hook(call: Call) -> bool:
            nonlocal dead
            if dead:
                return True
            if point == "card" and not (call.method == "sendMessage" and "📋" in str(call.params.get("text", ""))):
                return False
            if point == "press" and call.method != "answerCallbackQuery":
                return False
            dead = True
            if point == "press":
                kill()  # before the worker hears back, so before it could answer the post
            else:
                asyncio.get_running_loop().call_later(0.3, kill)
            return True

        def kill() -> None:
            process.send_signal(signal.SIGKILL)
            killed.set()

        api.on_call = hook

    # 1: killed mid-stream, at the first card; 2: killed after a claim committed, before its 200
    for point in ("card", "press"):
        process = await start_worker(config)
        started.append(process)
        killed = asyncio.Event()
        kill_at(process, killed, point)
        if point == "card":
            report_all(api, 0, reports)
        else:
            card = await api.wait_for(lambda: next(
                (m for m in api.bot_messages(U1_CHAT) if m.text and m.text.startswith("📋")), None), timeout=30)
            # the cards sent and recorded first: a kill in the instant after Telegram took a message
            # repeats it (tests/test_crash.py), which is not what this kill is about
            await outbox_drained(database, 30)
            number = mentions(api, U1_CHAT, r"^📋 事项 #(\d+) ·")[0]
            api.press_button(U1_CHAT, api.user(HEAD1, "蒋建国"), card.message_id, f"v1:claim:{number}")
            pressed.append(api.pending_updates()[-1]["update_id"])
        await asyncio.wait_for(killed.wait(), 30)
        assert await asyncio.wait_for(process.wait(), 10) == -signal.SIGKILL
        api.on_call = None

    process = await start_worker(config)
    started.append(process)
    try:
        await api.wait_for(lambda: not api.pending_updates(), timeout=30)
        await outbox_drained(database, 30)
        await asyncio.sleep(0.5)
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 20) == 0

    texts = [row[0] for row in await rows(database, "SELECT text FROM matters ORDER BY id")]
    ((claims,),) = await rows(database, "SELECT count(*) FROM events WHERE kind = 'claimed'")
    ((pending,),) = await rows(database, "SELECT count(*) FROM inbox WHERE done_at IS NULL")
    assert sorted(texts) == sorted(reports), "every report exactly once"
    assert claims == 1 and pending == 0
    cards: list[int] = []
    for chat in UNIT_CHATS:
        cards += mentions(api, chat, r"^📋 事项 #(\d+) ·")
    assert sorted(cards) == list(range(1, len(reports) + 1)), "every card exactly once"
    statuses = [p.status for p in api.webhook_posts if p.update_id == pressed[0]]
    assert statuses[0] != 200 and statuses[-1] == 200, "the press was posted again after the kill"
    assert api.calls_to("getUpdates") == []


async def test_webhook_workers_share_a_postgresql_database_where_pollers_are_one_at_a_time(
    api: FakeBotApi, postgres_url: str, tmp_path: Path
) -> None:
    """The single-instance guard is for pollers: webhook workers on PostgreSQL run side by side
    (issue 18), each serving its port; on SQLite one process per file, in either mode."""
    ports = [free_port(), free_port()]
    configs = []
    for i, port in enumerate(ports):
        raw = webhook_town(tmp_path / "unused.sqlite3", api, port)
        raw["database"] = postgres_url
        configs.append(tmp_path / f"worker{i}.yaml")
        configs[-1].write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    add_chats(api, raw)
    workers = [await start_worker(config) for config in configs]
    try:
        async with httpx.AsyncClient() as client:
            for port in ports:  # both up, each sweeping: healthy
                for _ in range(150):
                    with contextlib.suppress(httpx.HTTPError):
                        if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                            break
                    await asyncio.sleep(0.1)
                else:
                    raise AssertionError(f"the worker on port {port} never became healthy")
        assert all(worker.returncode is None for worker in workers)
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        codes = [await asyncio.wait_for(worker.wait(), 20) for worker in workers]
    assert codes == [0, 0]
    # on SQLite a second worker is refused, as a second poller is
    raw = webhook_town(tmp_path / "one.sqlite3", api, ports[0])
    configs[0].write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    raw["telegram"]["webhook"]["port"] = ports[1]
    configs[1].write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    first = await start_worker(configs[0])
    try:
        for _ in range(150):
            if (tmp_path / "one.sqlite3").exists():
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        second = await start_worker(configs[1])
        assert await asyncio.wait_for(second.wait(), 30) == 3
    finally:
        first.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(first.wait(), 20) == 0
