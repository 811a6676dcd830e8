"""Runs `roster engine` and `roster worker` as real processes for scaled-mode tests.

Each test gets its own RabbitMQ virtual host, so queues (and the shared `roster.results`) never leak
between tests; every process started here is killed and reaped when the test ends.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Process:
    """One roster process with its HTTP port and its log file."""

    name: str
    args: list[str]
    port: int
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    def start(self) -> Process:
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "common.process.launcher",
                "--log-level",
                "info",
                *self.args,
                "--listen",
                f"127.0.0.1:{self.port}",
            ],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
        )
        log.close()
        return self

    def wait_healthy(self, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.popen is not None and self.popen.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.popen.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{self.name} never became healthy:\n{self.log()}")

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples of `name` whose labels include `labels` (0 if none)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as r:
                text = r.read().decode()
        except OSError:
            return 0.0
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return total

    def signal(self, sig: signal.Signals) -> None:
        assert self.popen is not None
        self.popen.send_signal(sig)

    def wait(self, timeout_s: float = 60) -> int:
        assert self.popen is not None
        try:
            return self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} did not exit within {timeout_s} s:\n{self.log()}") from None

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:] if self.log_path.exists() else ""


class Fleet:
    """Starts engine and worker processes for one test and stops every one of them after it."""

    def __init__(self, tmp_path: Path, broker_url: str) -> None:
        self.tmp_path = tmp_path
        self.broker_url = broker_url
        self.processes: list[Process] = []

    def engine(self, config: Path, *extra: str, env: dict[str, str] | None = None) -> Process:
        """An engine whose admin API takes a free port unless `extra` gives `--api-listen`."""
        args = ["engine", str(config), "--broker", self.broker_url, "--api-listen", "127.0.0.1:0", *extra]
        return self._start("engine", args, env)

    def worker(self, config: Path, *extra: str, env: dict[str, str] | None = None) -> Process:
        return self._start("worker", ["worker", str(config), "--broker", self.broker_url, *extra], env)

    def _start(self, kind: str, args: list[str], env: dict[str, str] | None = None) -> Process:
        name = f"{kind}-{len(self.processes)}"
        process = Process(name, args, free_port(), self.tmp_path / f"{name}.log", env=env or {}).start()
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.processes:
            process.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.log()}" for p in self.processes)


def wait_until(predicate, timeout_s: float, what: str, fleet: Fleet | None = None) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}\n{fleet.logs() if fleet else ''}")
