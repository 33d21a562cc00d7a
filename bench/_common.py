"""Shared by the benchmarks: the machine, a generated town, the fake server in its own
process, and databases full of history built in bulk.

The benchmarks print figures; they are run by hand or by ``make bench``, never by CI.
``--quick`` (or ``BENCH_QUICK=1``) runs smaller sizes, for checking that a script works.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import platform
import random
import resource
import shutil
import sqlite3
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import httpx
import telegram

from bot.config import Config, parse_config
from bot.store import SCHEMA_VERSION, Store
from escalation import policy
from escalation.policy import Rules, State

HERE = Path(__file__).resolve().parent
TOKEN = "123456:BENCH-NOT-A-REAL-TOKEN"
QUICK = "--quick" in sys.argv or os.environ.get("BENCH_QUICK", "") not in ("", "0")
CACHE = Path(os.environ.get("BENCH_CACHE") or Path(os.environ.get("TMPDIR") or "/tmp") / "tierbot-bench")

STATION_CHAT = -1000000000
STAFF = 100


def machine() -> str:
    """One line: what the figures were taken on."""
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}, "
        f"python-telegram-bot {telegram.__version__}, SQLite {sqlite3.sqlite_version}"
    )


def header(title: str) -> None:
    # Others may share the machine: the load average says how quiet it was.
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "?"
    print(f"{title}{' (quick)' if QUICK else ''}\n  machine: {machine()}; load average {load}", flush=True)


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile, p in [0, 100]."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))]


median = statistics.median


# --- a town of any size --------------------------------------------------------------
def unit_chat(index: int) -> int:
    return -3000000000 - index


def community_chat(index: int) -> int:
    return -2000000000 - index


def town(
    units: int,
    communities: int,
    database: str | Path,
    base_url: str | None = None,
    deadlines: dict[str, Any] | None = None,
    sweep_interval: str = "30s",
) -> dict[str, Any]:
    """A raw config: ``units`` units spread evenly over ``communities`` communities, every
    node with its chat; rate limits high enough that AIORateLimiter never waits."""
    per = -(-units // communities)
    raw_communities = []
    for c in range(communities):
        first, last = c * per, min(units, (c + 1) * per)
        raw_communities.append({
            "id": f"c{c}", "name": f"第{c + 1}社区", "kind": "village", "chat_id": community_chat(c),
            "police": [{"id": 200000 + c, "name": f"警官{c}"}],
            "secretaries": [{"id": 300000 + c, "name": f"书记{c}"}],
            "units": [
                {"id": f"u{u}", "name": f"第{u + 1}小组", "kind": "village", "chat_id": unit_chat(u),
                 "heads": [{"id": 400000 + u, "name": f"组长{u}"}]}
                for u in range(first, last)
            ],
        })
    raw: dict[str, Any] = {
        "language": "zh",
        "timezone": "Asia/Shanghai",
        "database": str(database),
        "sweep_interval": sweep_interval,
        "weekly_summary": "mon 09:00",
        "telegram": {
            "poll_timeout": 10,
            "rate_limit": {"overall_per_second": 1000000, "group_per_minute": 1000000, "max_retries": 3},
        },
        "deadlines": deadlines or {
            "unit": {"claim": "2h", "resolve": "2d"},
            "community": {"claim": "4h", "resolve": "3d"},
            "station": {"claim": "4h", "resolve": "3d", "repeat": "12h"},
        },
        "station": {
            "id": "st", "name": "苏溪派出所", "chat_id": STATION_CHAT,
            "staff": [{"id": STAFF, "name": "陈所长"}],
            "communities": [c for c in raw_communities if c["units"]],
        },
    }
    if base_url:
        raw["telegram"]["base_url"] = base_url + "/bot"
        raw["telegram"]["base_file_url"] = base_url + "/file/bot"
    return raw


def parse(raw: dict[str, Any]) -> Config:
    return parse_config(raw, source="bench")


def chats_of(raw: dict[str, Any]) -> list[tuple[int, str]]:
    st = raw["station"]
    nodes = [st, *st["communities"], *[u for c in st["communities"] for u in c["units"]]]
    return [(n["chat_id"], n["name"]) for n in nodes]


# --- the fake Bot API in its own process ---------------------------------------------
class FakeServer:
    """``async with FakeServer() as server``: bench/_fake_server.py in a child process."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.url = ""
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> Self:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, str(HERE / "_fake_server.py"),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        line = (await asyncio.wait_for(self.proc.stdout.readline(), 30)).decode()
        if not line.startswith("PORT "):
            raise RuntimeError(f"fake server did not start: {line!r}")
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"
        self._client = httpx.AsyncClient(timeout=900)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.aclose()
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()

    async def call(self, method: str, **params: Any) -> Any:
        assert self._client is not None
        answer = (await self._client.post(f"{self.url}/bot{TOKEN}/{method}", json=params)).json()
        if not answer.get("ok"):
            raise RuntimeError(f"{method}: {answer}")
        return answer["result"]


# --- history, built in bulk --------------------------------------------------------------
HISTORY_VERSION = 2  # bump when the generated rows change, so cached copies are rebuilt


def history(
    raw: dict[str, Any], matters: int, now: float, *, span_days: float = 365, open_share: float = 0.01,
    due_now: int = 100, seed: int = 6, path: Path | None = None,
) -> Path:
    """A database of ``matters`` matters reported over the last ``span_days`` for the
    town ``raw``: ``open_share`` of them still open, ``due_now`` of those overdue at
    ``now``; the rest resolved, about one in ten after an escalation. Each matter has
    its timeline events and its sent outbox rows, as the bot would have left them.

    Built at ``path`` if given; otherwise once per set of arguments under CACHE, and
    callers copy it (``fresh_copy``) before changing it."""
    if path is None:
        units = len([u for c in raw["station"]["communities"] for u in c["units"]])
        key = (f"h{HISTORY_VERSION}-s{SCHEMA_VERSION}-{units}u-{matters}-{span_days:g}d-{open_share:g}-{due_now}"
               f"-{now:.0f}-{seed}")
        path = CACHE / f"{key}.sqlite3"
        if path.exists():
            return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    for leftover in path.parent.glob(f"{partial.name}*"):
        leftover.unlink()

    async def schema() -> None:  # the real schema and migrations, from the store itself
        store = await Store.open(partial)
        await store.close()

    asyncio.run(schema())
    rules = parse(raw).rules_for("other")
    conn = sqlite3.connect(partial, isolation_level=None)
    conn.execute("PRAGMA cache_size = -1000000")  # ~1 GB while building: the indexes stay in memory
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("BEGIN")
    rows = _matter_rows(raw, rules, matters, now, span_days, open_share, due_now, random.Random(seed))
    while chunk := list(itertools.islice(rows, 20000)):
        conn.executemany(
            f"INSERT INTO matters ({', '.join(MATTER_FIELDS)}) VALUES ({', '.join('?' * len(MATTER_FIELDS))})",
            (r.matter for r in chunk),
        )
        conn.executemany(
            "INSERT INTO events (matter_id, at, actor_id, actor_name, kind, tier, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (e for r in chunk for e in r.events),
        )
        conn.executemany(
            "INSERT INTO outbox (key, chat_id, kind, matter_id, text, state, not_before, created_at, sent_at, "
            "message_id) VALUES (?, ?, ?, ?, ?, 'sent', ?, ?, ?, ?)",
            (o for r in chunk for o in r.outbox),
        )
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    partial.rename(path)
    return path


def fresh_copy(source: Path, target: Path) -> Path:
    """A private copy of a cached database, to run a bot or a sweep on."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(source, target)
    return target


MATTER_FIELDS = (
    "id", "unit_id", "chat_id", "report_message_id", "reporter_id", "reporter_name", "text", "state", "tier",
    "top_tier", "tier_since", "last_ping_at", "next_due", "rules", "created_at", "first_claimed_at", "claimed_by",
    "claimed_by_name", "claimed_at", "escalated_at", "resolved_at", "resolved_by", "resolved_by_name", "resolution",
    "card_chat_id", "card_message_id", "category", "closed_at", "claim_since",
)

TEXTS = (
    "楼道堆放大量纸箱杂物，有消防隐患", "楼上邻居连续一周深夜装修，协商无果", "小区门口电动车乱停，堵住消防通道",
    "商铺占道经营，行人无法通行", "两户因宅基地边界发生争执", "路灯损坏多日无人修理",
    "车间噪音扰民，晚上十点后仍在生产", "垃圾清运不及时，气味很大",
)


class _Row:
    __slots__ = ("events", "matter", "outbox")

    def __init__(self, matter: tuple[Any, ...], events: list[tuple[Any, ...]], outbox: list[tuple[Any, ...]]) -> None:
        self.matter, self.events, self.outbox = matter, events, outbox


def _matter_rows(
    raw: dict[str, Any], rules: Rules, count: int, now: float, span_days: float, open_share: float, due_now: int,
    rnd: random.Random,
) -> Iterator[_Row]:
    """Rows in report order (ids grow with time, as in a real database)."""
    units = [(u["id"], u["chat_id"], u["heads"][0]) for c in raw["station"]["communities"] for u in c["units"]]
    rules_json = rules.to_json()
    claim3, resolve3 = rules.tiers[3].claim, rules.tiers[3].resolve
    span = span_days * 86400
    opened = max(due_now, round(count * open_share))
    # Which matters are still open: the most recent ones mostly, as in life; the due ones among them.
    open_ids = set(range(count - opened + 1, count + 1))
    due_ids = set(rnd.sample(sorted(open_ids), due_now)) if due_now else set()
    starts = sorted(now - rnd.random() * span for _ in range(count))
    for matter_id, created in enumerate(starts, 1):
        unit_id, chat, head = units[rnd.randrange(len(units))]
        reporter = 700000 + rnd.randrange(5000)
        text = f"{TEXTS[matter_id % len(TEXTS)]}（{matter_id}）"
        claimed_at = resolved_at = escalated_at = next_due = last_ping = None
        tier = top_tier = 3
        later: list[tuple[Any, ...]] = []
        if matter_id in due_ids:  # overdue now: unclaimed past the unit's claim window
            state = State.OPEN
            created = now - claim3 - rnd.random() * 600
        elif matter_id in open_ids:  # open, its next deadline still ahead
            if rnd.random() < 0.5:
                state = State.CLAIMED
                created = now - rnd.random() * resolve3 * 0.9
                claimed_at = created + min(claim3, now - created) * rnd.random()
                later.append((matter_id, claimed_at, head["id"], head["name"], "claimed", 3, None))
            else:
                state = State.OPEN
                created = now - rnd.random() * claim3 * 0.9
        else:
            state = State.RESOLVED
            if rnd.random() < 0.1 and created + claim3 < now - 3600:  # it climbed to the community first
                escalated_at = created + claim3
                tier = top_tier = 2
                later.append((matter_id, escalated_at, None, None, "escalated", 2, "认领超时"))
            claimed_at = (escalated_at or created) + rnd.random() * 3600
            resolved_at = min(now - 1, claimed_at + rnd.random() * 86400)
            claimed_at = min(claimed_at, resolved_at)
            later.append((matter_id, claimed_at, head["id"], head["name"], "claimed", tier, None))
            later.append((matter_id, resolved_at, head["id"], head["name"], "resolved", tier, "已处理"))
        tier_since = escalated_at or created
        if state != State.RESOLVED:
            next_due = policy.next_check(policy.Clock(state, 3, tier_since), rules)
        events = [(matter_id, created, reporter, f"居民{reporter}", "reported", 3, None), *later]
        outbox: list[tuple[Any, ...]] = []
        card_id = 2 * matter_id
        outbox.append((f"card:{matter_id}:new", chat, "card", matter_id, None, created, created, created + 1, card_id))
        if resolved_at is not None:
            outbox.append((f"card:{matter_id}:e-resolved", chat, "card", matter_id, None, resolved_at, resolved_at,
                           resolved_at + 1, card_id))
        matter = (
            matter_id, unit_id, chat, 2 * matter_id - 1, reporter, f"居民{reporter}", text, state.value, tier,
            top_tier, tier_since, last_ping, next_due, rules_json, created, claimed_at,
            head["id"] if claimed_at else None, head["name"] if claimed_at else None, claimed_at, escalated_at,
            resolved_at, head["id"] if resolved_at else None, head["name"] if resolved_at else None,
            "已处理" if resolved_at else None, chat, card_id, "other", resolved_at, tier_since,
        )
        yield _Row(matter, events, outbox)


def write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, ensure_ascii=False, indent=1), encoding="utf-8")


# --- PostgreSQL (issue 17) ------------------------------------------------------------------
POSTGRES = os.environ.get("TIERBOT_BENCH_POSTGRES") or os.environ.get("TIERBOT_TEST_POSTGRES") or ""


class PostgresSchema:
    """``async with PostgresSchema() as url``: a fresh, empty schema on the server at
    TIERBOT_BENCH_POSTGRES (else TIERBOT_TEST_POSTGRES), as a URL whose connections see only
    it; dropped afterwards."""

    def __init__(self, server: str = "") -> None:
        self.server = server or POSTGRES
        self.schema = f"bench_{os.getpid()}_{random.randrange(1 << 30)}"

    async def __aenter__(self) -> str:
        from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

        import asyncpg

        conn = await asyncpg.connect(self.server)
        try:
            await conn.execute(f"CREATE SCHEMA {self.schema}")
        finally:
            await conn.close()
        parts = urlsplit(self.server)
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "search_path"] + [("search_path", self.schema)]
        return urlunsplit(parts._replace(query=urlencode(query)))

    async def __aexit__(self, *exc: object) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.server)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        finally:
            await conn.close()


@asynccontextmanager
async def postgres_schema(url: str) -> AsyncIterator[str]:
    """A fresh schema on the PostgreSQL server at ``url`` for one bench round, dropped after;
    the URL given back points every connection at it (asyncpg passes search_path on)."""
    name = f"bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(url)
    try:
        await admin.execute(f"CREATE SCHEMA {name}")
        parts = urlsplit(url)
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "search_path"] + [("search_path", name)]
        yield urlunsplit(parts._replace(query=urlencode(query)))
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        await admin.close()


class RunningClock:
    """The system clock, moved to ``start``: time runs (so retries fall due), from a chosen day."""

    def __init__(self, start: float) -> None:
        self._offset = start - time.time()

    def now(self) -> float:
        return time.time() + self._offset


async def poll(check: Callable[[], Awaitable[bool]], every: float) -> None:
    """Ask ``check`` every ``every`` seconds until it says yes (the state is in another process)."""
    while True:
        if await check():
            return
        await asyncio.sleep(every)


# --- the intake benches (bench/intake.py, bench/webhook_intake.py) ------------------------
REPORT_UNITS = 100  # unit chats the reports are spread over
REPORT_RESIDENTS = 1_000  # residents who send them
REPORT_TEXT = "/report 楼道堆放大量纸箱杂物，有消防隐患 {i}"


def process_cpu() -> float:
    """CPU seconds this process has spent (all threads, user and system)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def push_reports(server: FakeServer, n: int, wait_up_to: float) -> tuple[float, float, float]:
    """Have the fake send n reports over the unit chats (by long polling or by webhook, as the
    bot set it up): seconds until the n-th answer, and the CPU seconds this process and the
    server spent meanwhile."""
    chats = [unit_chat(i) for i in range(REPORT_UNITS)]
    cpu = process_cpu()
    await server.call("benchPush", chats=chats, n=n, text=REPORT_TEXT, users=REPORT_RESIDENTS)
    done = await server.call("benchWait", count=n, timeout=wait_up_to)
    cpu = process_cpu() - cpu
    stats = await server.call("benchStats")
    assert stats["sent"] == n, f"expected {n} answers, the server saw {stats['sent']}"
    return done["elapsed"], cpu, done["server_cpu"]


def show_rate(name: str, unit: str, n: int, seconds: float, cpu: float, server_cpu: float, width: int = 37) -> None:
    """One intake bench line: updates a second, and the CPU each took in the bot and the fake."""
    print(f"  {name + ':':{width}} {n / seconds:5.0f} {unit}/s  ({seconds:4.1f} s; CPU per update: bot "
          f"{cpu / n * 1e3:.2f} ms, fake server {server_cpu / n * 1e3:.2f} ms)", flush=True)
