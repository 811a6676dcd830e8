"""Ending the peers the tests start as children in a session of their own (Samba, glewlwyd)."""

from __future__ import annotations

import os
import signal
import subprocess


def end_group(process: subprocess.Popen[bytes] | None, wait_s: float) -> None:
    """SIGTERM to the child's whole process group, SIGKILL if it outlives `wait_s`; safe to call twice."""
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(wait_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(wait_s)
