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
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

import aiohttp

from engine.core.references import ReferenceMapping
from engine.model import CycleSummary
from engine.notify import outbox, senders
from engine.notify.events import Event, EventFilter, account_created, worker_gone
from engine.notify.settings import MailList, NotificationSettings, Route, ToManager, Webhook, one_address
from engine.pipeline.cycles import CycleRunner
from engine.pipeline.fleet import Fleet, Member
from engine.store.state import StateStore
from queues.contracts import Result

log = logging.getLogger("roster.engine.notify")

PARALLEL = 4
"""Deliveries tried at once."""
JOINERS_PER_HOUR = 100
"""`account_created` events said per job and hour, at most."""


class Notifier:
    """See the module doc. `clock` gives Unix seconds (tests move it instead of sleeping)."""

    def __init__(
        self,
        settings: NotificationSettings,
        state: StateStore,
        *,
        clock: Callable[[], float] = time.time,
        references: Mapping[tuple[str, str], str] | None = None,
        joiners: Callable[[str], bool] = lambda job: True,
    ) -> None:
        """`references`: (job, reference target attribute) -> the job it names, for `to_manager`;
        `joiners(job)`: whether the job's creates now are joiners (not a first load)."""
        self.settings = settings
        self.state = state
        self.clock = clock
        self._references = dict(references or {})
        self._joiners = joiners
        self._said_joiners: dict[str, tuple[float, int]] = {}
        """Per job: when its hour of joiners began, and how many were said in it."""
        self._untold: dict[str, int] = {}
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

    def created(self, results: list[Result]) -> None:
        """Results came in (a `ResultConsumer` observer): the accounts created, but those of a job's
        first load (a new hire is a joiner; the thousands of a first cycle are not), and at most
        `JOINERS_PER_HOUR` a job an hour (an identity provider's first push is a first load too): the
        rest are counted in the log, not said one by one."""
        now = self.clock()
        for r in results:
            if r.action != "create" or r.status != "succeeded" or not self._joiners(r.job):
                continue
            hour, said = self._said_joiners.get(r.job, (now, 0))
            if now - hour >= 3600:
                hour, said = now, 0
            if said >= JOINERS_PER_HOUR:
                self._untold[r.job] = self._untold.get(r.job, 0) + 1
                log.warning(
                    "event=account_created_not_said job=%s source_id=%s untold=%d reason=%r",
                    r.job,
                    r.source_id,
                    self._untold[r.job],
                    f"more than {JOINERS_PER_HOUR} accounts created within the hour",
                )
                continue
            self._said_joiners[r.job] = (hour, said + 1)
            self.say(account_created(r.job, r.source_id, r.target_id))

    def say(self, event: Event) -> None:
        """Record the event's deliveries to the routes that take it, then have them tried."""
        routes = [route for route in self.settings.routes if route.takes(event.type, event.job)]
        if not routes:
            return
        task = asyncio.ensure_future(self._add(event, routes))
        self._adding.add(task)
        task.add_done_callback(self._adding.discard)

    async def _add(self, event: Event, routes: list[Route]) -> None:
        deliveries: list[tuple[str, str, str | None]] = []
        for route in routes:
            if isinstance(route, Webhook):
                deliveries.append((route.name, "webhook", None))
            elif isinstance(route, MailList) and route.to_manager is None:
                deliveries.append((route.name, "mail", None))
            elif isinstance(route, MailList) and route.to_manager is not None:
                address = await self._manager_address(route.to_manager, event)
                if address is not None:
                    deliveries.append((route.name, "mail", address))
        if not deliveries:
            return
        try:
            ids = await outbox.add(self.state, event, deliveries, now=self.clock())
        except Exception:
            log.exception("event=notification_not_recorded type=%s job=%s", event.type, event.job)
            return
        log.info("event=notification type=%s job=%s deliveries=%s", event.type, event.job, ids)
        self._wake.set()

    async def _manager_address(self, to: ToManager, event: Event) -> str | None:
        """The address of the manager of the person `event` is about: the manager's target id as the
        person's `to.reference` was last applied, the manager that holds it in the reference's job,
        and their `to.address` as last applied there. None, said in the log, where a step finds
        nothing (no manager, or one without an address)."""
        job, source_id = event.job, event.details.get("source_id")
        reference = self._references.get((job or "", to.reference))
        if job is None or source_id is None or reference is None:
            return None
        applied = (await self.state.applied_attributes(job, [source_id])).get(source_id) or {}
        manager_target_id = applied.get(to.reference)
        manager = address = None
        if isinstance(manager_target_id, str):
            manager = (await self.state.holders(reference, [manager_target_id])).get(manager_target_id)
        if manager is not None:
            found = (await self.state.applied_attributes(reference, [manager])).get(manager) or {}
            address = found.get(to.address)
            if isinstance(address, list):
                address = address[0] if address else None
        if not isinstance(address, str) or not one_address(address):
            log.info(
                "event=notification_no_manager_address job=%s source_id=%s manager=%s",
                job,
                source_id,
                manager or "none",
            )
            return None
        return address

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
            to = (delivery.recipient,) if delivery.recipient is not None else route.to
            await senders.send(self.settings.smtp, to, delivery.subject, delivery.body)


@asynccontextmanager
async def notifying(runner: CycleRunner, fleet: Fleet | None = None) -> AsyncIterator[Notifier | None]:
    """While the engine works: its cycles' (and its fleet's) events said, if it has `notifications`."""
    settings = runner.config.notifications
    if settings is None:
        yield None
        return
    references = {
        (job.name, m.target): m.job
        for job in runner.config.jobs
        for m in job.mappings
        if isinstance(m, ReferenceMapping)
    }
    users = {job.name for job in runner.config.jobs if job.object_type == "user"}
    joiners = lambda job: job in users and not runner.results.loading_from_empty(job)  # noqa: E731
    async with Notifier(settings, runner.state, references=references, joiners=joiners) as notifier:
        runner.cycle_observers.append(notifier.observe)
        runner.results.observers.append(notifier.created)
        if fleet is not None:
            fleet.gone_observers.append(notifier.gone)
        try:
            yield notifier
        finally:
            runner.cycle_observers.remove(notifier.observe)
            runner.results.observers.remove(notifier.created)
            if fleet is not None:
                fleet.gone_observers.remove(notifier.gone)
