"""bot/dev/fakeapi.py's FakeBotApi in a process of its own, for the benchmarks.

Run in-process, the fake server would share the bot's event loop and CPU, and its cost
would count against whichever bot is being measured. Here it gets its own interpreter
(and, on two cores, mostly its own core). It prints ``PORT <n>`` on its first line of
output, then serves until stdin closes or SIGTERM.

The benchmark drives it over the same HTTP port with a few extra methods (JSON bodies):
``benchAddChats``, ``benchPush``, ``benchSay``, ``benchWait``, ``benchSent``, ``benchStats``,
``benchLimits`` (enforce Telegram's flood limits) and ``benchTimes``.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from typing import Any

from bot.dev.fakeapi import FakeBotApi


class BenchApi(FakeBotApi):
    def __init__(self) -> None:
        super().__init__()
        # Every sendMessage answered with 200: (monotonic, wall clock, chat id, text).
        self.sent: list[tuple[float, float, int, str]] = []
        self.pushed_at = time.monotonic()
        self.pushed_cpu = time.process_time()
        # Every message taken (sendMessage or sendPhoto answered 200): monotonic time.
        self.taken: list[float] = []
        send, send_photo = self._methods["sendmessage"], self._methods["sendphoto"]

        def counting_send(p: dict[str, Any]) -> Any:
            result = send(p)
            self.sent.append((time.monotonic(), time.time(), int(p["chat_id"]), result.get("text") or ""))
            self.taken.append(time.monotonic())
            return result

        def counting_photo(p: dict[str, Any]) -> Any:
            result = send_photo(p)
            self.taken.append(time.monotonic())
            return result

        self._methods.update(
            sendmessage=counting_send,
            sendphoto=counting_photo,
            benchlimits=lambda p: self.enforce_limits(float(p.get("per_second") or 30),
                                                      float(p.get("group_per_minute") or 20)),
            benchtimes=lambda p: self.taken,
            benchaddchats=self._bench_add_chats,
            benchpush=self._bench_push,
            benchsay=self._bench_say,
            benchwait=self._bench_wait,
            benchsent=self._bench_sent,
            benchstats=self._bench_stats,
        )

    def _bench_add_chats(self, p: dict[str, Any]) -> int:
        for chat_id, title in p["chats"]:
            self.add_chat(int(chat_id), title)
        return len(p["chats"])

    def _bench_push(self, p: dict[str, Any]) -> dict[str, float]:
        """Queue ``n`` messages, round-robin over ``chats`` and ``users`` residents.

        Pushed in one go before answering, so the bot's long poll sees them only once all
        are queued: the clock starts when the last one is in."""
        chats: list[int] = p["chats"]
        users = [self.user(700000 + i, f"居民{i}") for i in range(int(p.get("users") or 100))]
        text: str = p["text"]
        for i in range(int(p["n"])):
            self.send_text(chats[i % len(chats)], users[i % len(users)], text.format(i=i))
        self.pushed_at = time.monotonic()
        self.pushed_cpu = time.process_time()
        return {"at": time.time()}

    def _bench_say(self, p: dict[str, Any]) -> int:
        """One message from one user: ``chat``, ``user``, ``name``, ``text``."""
        return int(self.send_text(int(p["chat"]), self.user(int(p["user"]), p["name"]), p["text"])["message_id"])

    async def _bench_wait(self, p: dict[str, Any]) -> dict[str, float]:
        """Wait for ``count`` sendMessage answers (to ``chats``, if given): how long after the
        push the last came, and the CPU seconds this server spent meanwhile."""
        count, chats = int(p["count"]), set(p.get("chats") or ())

        def sent() -> list[float]:  # in chats; only asked for small counts
            return [at for at, _, chat, _ in self.sent if chat in chats]

        if chats:
            await self.wait_for(lambda: len(sent()) >= count, float(p.get("timeout") or 600))
            last = sent()[count - 1]
        else:  # cheap enough to check after every request of a 10,000-message run
            await self.wait_for(lambda: len(self.sent) >= count, float(p.get("timeout") or 600))
            last = self.sent[count - 1][0]
        return {"elapsed": last - self.pushed_at, "sent": len(self.sent),
                "server_cpu": time.process_time() - self.pushed_cpu}

    def _bench_sent(self, p: dict[str, Any]) -> list[tuple[float, int, str]]:
        chats = set(p.get("chats") or ())
        return [(wall, chat, text) for _, wall, chat, text in self.sent if not chats or chat in chats]

    def _bench_stats(self, p: dict[str, Any]) -> dict[str, Any]:
        methods: dict[str, int] = {}
        for call in self.calls:
            methods[call.method] = methods.get(call.method, 0) + 1
        return {"sent": len(self.sent), "calls": len(self.calls), "pending_updates": len(self._updates),
                "methods": methods, "floods": len(self.flood_answers), "taken": len(self.taken)}


async def main() -> None:
    api = await BenchApi().start()
    print(f"PORT {api.port}", flush=True)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    loop.add_signal_handler(signal.SIGINT, done.set)
    loop.add_reader(sys.stdin.fileno(), done.set)  # stdin readable = the parent closed it (or died)
    await done.wait()
    await api.stop()


if __name__ == "__main__":
    asyncio.run(main())
