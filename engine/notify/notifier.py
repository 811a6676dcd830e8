"""The notifier: turns what the engine sees into events (`engine.notify.events`), records a delivery
per route that takes each (`engine.notify.outbox`), and delivers them in the background with retries.

It runs in the active engine only (the one holding the engine lock): a standby neither says nor
delivers anything, so two engines on one store never send a delivery twice. Deliveries still pending
when the engine stops (not tried, or waiting for a retry) are tried by the next engine that starts on
the store.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aiohttp

from engine.model import CycleSummary
from engine.notify import outbox, senders
from engine.notify.events import Event, EventFilter, worker_gone
from engine.notify.settings import MailList, NotificationSettings, Webhook
from engine.pipeline.cycles import CycleRunner
from engine.pipeline.fleet import Fleet, Member
from engine.store.state import StateStore

log = logging.getLogger("roster.engine.notify")

PARALLEL = 4
"""Deliveries tried at once."""


class Notifier:
    """See the module doc. `clock` gives Unix seconds (tests move it instead of sleeping)."""

    def __init__(
        self,
        settings: NotificationSettings,
        state: StateStore,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.state = state
        self.clock = clock
        self.events = EventFilter()
        self._wake = asyncio.Event()
        self._adding: set[asyncio.Task[None]] = set()
        self._loop: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        self._loop = asyncio.create_task(self._deliver(), name="roster-notify")

    async def aclose(self) -> None:
        """Record the events said so far, then stop delivering (what is pending stays for later)."""
        if self._adding:
            await asyncio.gather(*self._adding, return_exceptions=True)
        if self._loop is not None:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> Notifier:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def tried(self, *, timeout_s: float) -> bool:
        """Wait until each delivery said so far was tried once (sent, or waiting for a retry that a
        later engine or run makes), at most `timeout_s`; whether it came to that."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self._adding or await outbox.untried(self.state):
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    def observe(self, summary: CycleSummary) -> None:
        """A cycle ended (a `CycleRunner.cycle_observers` entry)."""
        for event in self.events.of_cycle(summary):
            self.say(event)

    def gone(self, member: Member) -> None:
        """A peer stopped answering (a `Fleet.gone_observers` entry): said of workers only."""
        a = member.last
        if a.kind == "worker":
            self.say(worker_gone(a.id, a.host, [t.name for t in a.targets], member.gone_reason or "gone"))

    def say(self, event: Event) -> None:
        """Record the event's deliveries to the routes that take it, then have them tried."""
        routes = [
            (route.name, "webhook" if isinstance(route, Webhook) else "mail")
            for route in self.settings.routes
            if route.takes(event.type, event.job)
        ]
        if not routes:
            return
        task = asyncio.ensure_future(self._add(event, routes))
        self._adding.add(task)
        task.add_done_callback(self._adding.discard)

    async def _add(self, event: Event, routes: list[tuple[str, str]]) -> None:
        try:
            ids = await outbox.add(self.state, event, routes, now=self.clock())
        except Exception:
            log.exception("event=notification_not_recorded type=%s job=%s", event.type, event.job)
            return
        log.info("event=notification type=%s job=%s deliveries=%s", event.type, event.job, ids)
        self._wake.set()

    async def _deliver(self) -> None:
        gate = asyncio.Semaphore(PARALLEL)
        while True:
            self._wake.clear()
            try:
                due = await outbox.due(self.state, self.clock())
                await asyncio.gather(*(self._try(d, gate) for d in due))
                later = await outbox.next_due(self.state)
            except asyncio.CancelledError:
                raise
            except Exception:  # the store is away a moment: try again shortly
                log.exception("event=notifications_not_read")
                later = self.clock() + 5
            if due and later is not None and later <= self.clock():
                continue  # more were due than one round takes
            wait_s = None if later is None else max(0.0, later - self.clock())
            try:
                await asyncio.wait_for(self._wake.wait(), wait_s)
            except TimeoutError:
                pass

    async def _try(self, delivery: outbox.Delivery, gate: asyncio.Semaphore) -> None:
        route = self.settings.route(delivery.route)
        error: str | None = None
        async with gate:
            try:
                if route is None:
                    raise senders.DeliveryError("no route of that name is configured any more")
                await self._send(route, delivery)
            except senders.DeliveryError as exc:
                error = str(exc)
        attempts = delivery.attempts + 1
        retry = self.settings.retry
        retry_in_s = (
            retry.delay_s(attempts) if error is not None and attempts < retry.attempts and route else None
        )
        await outbox.settle(self.state, delivery, error, retry_in_s, now=self.clock())
        if error is None:
            log.info(
                "event=notification_sent id=%d route=%s attempts=%d", delivery.id, delivery.route, attempts
            )
        elif retry_in_s is not None:
            log.warning(
                "event=notification_retry id=%d route=%s attempts=%d in_s=%g error=%r",
                delivery.id,
                delivery.route,
                attempts,
                retry_in_s,
                error,
            )
        else:
            log.error(
                "event=notification_given_up id=%d route=%s attempts=%d error=%r",
                delivery.id,
                delivery.route,
                attempts,
                error,
            )

    async def _send(self, route: object, delivery: outbox.Delivery) -> None:
        if isinstance(route, Webhook):
            assert self._session is not None
            await senders.post(self._session, route, delivery.body)
        elif isinstance(route, MailList):
            assert self.settings.smtp is not None  # the settings refuse mail without smtp
            await senders.send(self.settings.smtp, route, delivery.subject, delivery.body)


@asynccontextmanager
async def notifying(runner: CycleRunner, fleet: Fleet | None = None) -> AsyncIterator[Notifier | None]:
    """While the engine works: its cycles' (and its fleet's) events said, if it has `notifications`."""
    settings = runner.config.notifications
    if settings is None:
        yield None
        return
    async with Notifier(settings, runner.state) as notifier:
        runner.cycle_observers.append(notifier.observe)
        if fleet is not None:
            fleet.gone_observers.append(notifier.gone)
        try:
            yield notifier
        finally:
            runner.cycle_observers.remove(notifier.observe)
            if fleet is not None:
                fleet.gone_observers.remove(notifier.gone)
