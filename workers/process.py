"""`roster worker`: a worker process that drains the queues of the targets it holds credentials for.

It needs only outbound connections: to the broker and to its targets. Shutdown follows the house
order: say it is draining (`workers.presence`), stop consuming, let in-flight batches finish within
the grace period (their results are published and they are acked), close the connectors, say it is
leaving, close the HTTP server, then the broker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from prometheus_client import CollectorRegistry

from common.process.signals import install_stop_handlers
from common.process.status_server import StatusServer
from queues.broker import Broker
from queues.versions import SPOKEN
from workers.config import TargetConfig
from workers.metrics import WorkerMetrics
from workers.presence import PresenceSettings, WorkerPresence
from workers.worker import Worker

log = logging.getLogger("roster.worker.process")


async def run_worker(
    broker: Broker,
    targets: Sequence[TargetConfig],
    *,
    host: str,
    port: int,
    concurrency: int | None = None,
    prefetch: int | None = None,
    grace_s: float = 30.0,
    record_metrics: bool = True,
    wire_versions: Sequence[int] = SPOKEN,
    presence: PresenceSettings | None = None,
) -> int:
    """Run until SIGTERM or SIGINT, then stop gracefully; returns the exit code. The worker decodes
    the `wire_versions` (fewer than this build speaks only by `ROSTER_WIRE_VERSIONS`)."""
    stop = asyncio.Event()
    install_stop_handlers(stop.set)
    registry = CollectorRegistry()
    runtimes = []
    for target in targets:
        runtime = target.runtime()
        if concurrency is not None:
            runtime.max_inflight = concurrency
        if prefetch is not None:
            runtime.prefetch = prefetch
        runtimes.append(runtime)
    metrics = WorkerMetrics(registry, recording=record_metrics)
    metrics.start_at_zero(runtime.name for runtime in runtimes)
    for runtime in runtimes:
        if runtime.connector.gate is not None:
            metrics.watch_pause(runtime.name, runtime.connector.gate.pause)
    async with broker:
        worker = Worker(broker, runtimes, metrics=metrics, spoken=wire_versions)
        server = StatusServer(registry, lambda: _health(worker, stop), host=host, port=port)
        heartbeat = WorkerPresence(broker, worker, presence)
        await server.start()
        try:
            await worker.start()
            await heartbeat.start()
            log.info(
                "event=worker_started id=%s targets=%s wire_versions=%s",
                heartbeat.id,
                ",".join(t.name for t in targets),
                ",".join(map(str, wire_versions)),
            )
            await stop.wait()
            await heartbeat.draining()
            await worker.stop(grace_s=grace_s)
        finally:
            await heartbeat.aclose()
            await server.aclose()
    log.info("event=worker_stopped batches=%d", worker.batches_handled)
    return 0


def _health(worker: Worker, stop: asyncio.Event) -> tuple[bool, dict[str, object]]:
    healthy = worker.started and not stop.is_set()
    return healthy, {"role": "worker", "batches": worker.batches_handled}
