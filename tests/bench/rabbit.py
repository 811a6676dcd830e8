"""Benchmark of scaled mode on the real RabbitMQ, against the broker's one-message-per-operation ceiling.

    python tests/bench/rabbit.py --objects 100000

In one run on the same broker (each part in a fresh virtual host):

* the whole pipeline, `roster engine --once` with one and then two `roster worker` processes, into a
  `noop` target: `one_worker_ops_per_s`, `two_workers_ops_per_s` (operations of the cycle divided by
  the cycle's wall time, source read to last result);
* the ceiling of one message per operation: a bare aio-pika loop publishing the same operations one
  per message with confirms (many in flight), then consuming them with a prefetch of 100 and an ack
  each: `ceiling_msgs_per_s` is the slower of the two rates;
* `batching_gain` = one_worker_ops_per_s / ceiling_msgs_per_s;
* `metrics_off_ops_per_s`, `metrics_on_ops_per_s`: the one-worker pipeline with `--no-metrics` on
  every process and without, in alternating pairs (`--overhead-pairs`, medians), and
  `metrics_overhead_pct`, what recording the metrics costs in throughput;
* `paced_p99_latency_ms`: operations fed at a steady 500 per second through the engine's publisher
  to a worker process and back through the result consumer; the p99 of emitted-to-result latency.

Prints one JSON object with those keys and `objects`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aio_pika
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from engine.mapping.base import attribute_hash  # noqa: E402
from engine.pipeline.publisher import Publisher, PublishSettings  # noqa: E402
from engine.pipeline.results import ResultConsumer  # noqa: E402
from engine.pipeline.tracker import Tracker  # noqa: E402
from engine.store.state import StateStore, state_url  # noqa: E402
from queues.contracts import Operation, encode_operations  # noqa: E402
from queues.rabbitmq import RabbitBroker  # noqa: E402
from tests.bench.pipeline import COLUMNS, config, write_people  # noqa: E402
from tests.integration.processes import Fleet  # noqa: E402
from tests.rabbit import vhost  # noqa: E402

PACED_RATE = 500
PACED_SECONDS = 10


def pipeline_rate(workdir: Path, objects: int, workers: int, *extra: str) -> float:
    """Ops/s of one initial cycle through `roster engine --once` and `workers` worker processes;
    `extra` arguments go to every process (`--no-metrics`)."""
    run_dir = Path(tempfile.mkdtemp(prefix=f"run-{workers}-", dir=workdir))
    raw = config(workdir, {"name": "noop", "type": "noop", "max_inflight": 4})
    raw["engine"] = {"state": str(run_dir / "state.db"), "batch_size": 500, "high_water": 64}
    file = run_dir / "roster.yaml"
    file.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with vhost() as url:
        fleet = Fleet(run_dir, url)
        try:
            started = [fleet.worker(file, *extra) for _ in range(workers)]
            for worker in started:
                worker.wait_healthy()
            engine = fleet.engine(file, "--once", *extra)
            if engine.wait(1800) != 0:
                raise SystemExit(f"the engine failed:\n{fleet.logs()}")
        finally:
            fleet.stop_all()
    with sqlite3.connect(run_dir / "state.db") as conn:
        (counts,) = conn.execute("SELECT counts FROM cycles WHERE status = 'succeeded'").fetchone()
    counts = json.loads(counts)
    assert counts["created"] == objects, counts
    return objects / counts["elapsed_s"]


def metrics_overhead(workdir: Path, objects: int, pairs: int) -> tuple[float, float]:
    """Median ops/s of one-worker cycles with metrics recording off and on, run in alternation so
    that drift of the machine falls on both alike."""
    off: list[float] = []
    on: list[float] = []
    for _ in range(pairs):
        off.append(pipeline_rate(workdir, objects, 1, "--no-metrics"))
        on.append(pipeline_rate(workdir, objects, 1))
    return statistics.median(off), statistics.median(on)


def operations(count: int) -> list[Operation]:
    now = time.time()
    ops = []
    for i in range(count):
        attributes = {c: f"{c}-{i}" for c in COLUMNS}
        ops.append(
            Operation(
                op_id=f"bench-{i}",
                job="bench",
                target="noop",
                cycle_id="bench",
                action="create",
                object_type="user",
                source_id=f"E{i:07d}",
                attributes=attributes,
                desired_hash=attribute_hash(attributes),
                matching=[("employee_id", f"E{i:07d}")],
                emitted_at=now,
            )
        )
    return ops


async def ceiling(url: str, bodies: list[bytes]) -> float:
    """The slower of: confirmed publishes of one message per operation, many in flight; and
    consuming them with prefetch 100 and an ack each."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(
            "bench.ceiling", durable=True, arguments={"x-queue-type": "quorum"}
        )
        window = asyncio.Semaphore(1000)

        async def publish(body: bytes) -> None:
            async with window:
                await channel.default_exchange.publish(aio_pika.Message(body), routing_key=queue.name)

        started = time.perf_counter()
        await asyncio.gather(*(publish(b) for b in bodies))
        publish_rate = len(bodies) / (time.perf_counter() - started)

        consume_channel = await connection.channel()
        await consume_channel.set_qos(prefetch_count=100)
        consume_queue = await consume_channel.get_queue(queue.name)
        done = asyncio.Event()
        received = 0

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal received
            await message.ack()
            received += 1
            if received == len(bodies):
                done.set()

        started = time.perf_counter()
        await consume_queue.consume(on_message)
        await done.wait()
        consume_rate = len(bodies) / (time.perf_counter() - started)
        await queue.delete(if_unused=False, if_empty=False)
    return min(publish_rate, consume_rate)


async def paced_latency(workdir: Path, url: str) -> float:
    """p99 emit-to-result latency (ms) of operations fed at PACED_RATE per second."""
    raw = {"targets": [{"name": "noop", "type": "noop"}]}
    file = workdir / "paced.yaml"
    file.write_text(yaml.safe_dump(raw), encoding="utf-8")
    fleet = Fleet(workdir, url)
    worker = fleet.worker(file)
    try:
        await asyncio.to_thread(worker.wait_healthy)
        async with RabbitBroker(url) as broker, StateStore(state_url(str(workdir / "paced.db"))) as state:
            tracker = Tracker()
            progress = tracker.start_cycle("bench", "bench")
            results = ResultConsumer(broker, state, tracker)
            await results.start()
            publisher = Publisher(broker, PublishSettings(batch_size=500, linger_ms=5, high_water=64))
            count = PACED_RATE * PACED_SECONDS
            started = time.perf_counter()
            for i, op in enumerate(operations(count)):
                delay = started + i / PACED_RATE - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                op = dataclasses.replace(op, emitted_at=time.time())
                tracker.register(op)
                await publisher.add(op)
            await publisher.flush()
            tracker.planning_done("bench")
            await results.wait_or_fail(progress.done)
            await results.aclose()
            await publisher.aclose()
        latencies = sorted(progress.latencies_s)
        return latencies[int(len(latencies) * 0.99)] * 1000.0
    finally:
        fleet.stop_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--overhead-pairs", type=int, default=3, help="metrics off/on runs for the overhead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="roster-rabbit-bench-") as tmp:
        workdir = Path(tmp)
        write_people(workdir / "people.csv", args.objects)
        one = pipeline_rate(workdir, args.objects, workers=1)
        two = pipeline_rate(workdir, args.objects, workers=2)
        metrics_off, metrics_on = metrics_overhead(workdir, args.objects, args.overhead_pairs)
        bodies = [encode_operations("noop", [op]) for op in operations(args.objects)]
        with vhost() as url:
            ceiling_rate = asyncio.run(ceiling(url, bodies))
        with vhost() as url:
            p99 = asyncio.run(paced_latency(workdir, url))
    print(
        json.dumps(
            {
                "objects": args.objects,
                "one_worker_ops_per_s": round(one),
                "two_workers_ops_per_s": round(two),
                "ceiling_msgs_per_s": round(ceiling_rate),
                "batching_gain": round(one / ceiling_rate, 2),
                "paced_p99_latency_ms": round(p99, 1),
                "metrics_off_ops_per_s": round(metrics_off),
                "metrics_on_ops_per_s": round(metrics_on),
                "metrics_overhead_pct": round((metrics_off - metrics_on) / metrics_off * 100, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
