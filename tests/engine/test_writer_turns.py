"""The state store's writers on SQLite take turns (`engine.store.writers`): one at a time, urgent ones
before the others that wait, and a waiter cancelled, even as its turn comes, never keeps the others
waiting."""

from __future__ import annotations

import asyncio

from engine.store.writers import WriterTurns


async def test_urgent_waiters_go_before_the_others_but_after_the_one_writing() -> None:
    turns = WriterTurns()
    order: list[str] = []
    writing = asyncio.Event()
    go_on = asyncio.Event()

    async def writer(name: str, *, urgent: bool = False, hold: asyncio.Event | None = None) -> None:
        async with turns.turn(urgent=urgent):
            order.append(name)
            if hold is not None:
                writing.set()
                await hold.wait()

    first = asyncio.ensure_future(writer("first", hold=go_on))
    await writing.wait()
    waiting = [
        asyncio.ensure_future(writer("cycle 1")),
        asyncio.ensure_future(writer("cycle 2")),
        asyncio.ensure_future(writer("mirror 1", urgent=True)),
        asyncio.ensure_future(writer("mirror 2", urgent=True)),
    ]
    await asyncio.sleep(0)
    go_on.set()
    await asyncio.gather(first, *waiting)
    assert order == ["first", "mirror 1", "mirror 2", "cycle 1", "cycle 2"]


async def test_a_cancelled_waiter_passes_the_turn_on() -> None:
    turns = WriterTurns()
    done: list[str] = []
    release = asyncio.Event()

    async def holder() -> None:
        async with turns.turn():
            await release.wait()

    async def writer(name: str) -> None:
        async with turns.turn():
            done.append(name)

    held = asyncio.ensure_future(holder())
    await asyncio.sleep(0)
    cancelled, later = asyncio.ensure_future(writer("cancelled")), asyncio.ensure_future(writer("later"))
    await asyncio.sleep(0)
    release.set()  # the turn is handed to `cancelled`...
    await asyncio.sleep(0)
    cancelled.cancel()  # ...which is cancelled before it runs
    await asyncio.gather(held, later)
    assert done in (["later"], ["cancelled", "later"])
    async with asyncio.timeout(1):  # free again
        async with turns.turn():
            pass
