"""Which wire version the engine writes a target's messages in, and what it keeps back for it.

A build speaks its wire version and the previous one (`queues.versions.SPOKEN`), so during a rolling
upgrade the engine writes to a target in the newest version that every worker reading the target's
queue speaks. It knows those workers from presence (when a `PeerVersions` is fed by it) and from the
headers of their results and pages (`heard`). It writes the current version only when it knows as many
workers serving the target as the queue has consumers, and every one of them speaks it: a consumer it
has not heard of may be a worker of the previous build, which would dead-letter a message it cannot
read. Otherwise (nothing known yet, a reader unknown, or one that speaks the previous version only) it
writes the previous version, which every build in the fleet reads.

What the previous version cannot carry is kept back, never sent wrong nor dropped: version 4 has no
`disabled`, and a create or update that leaves its account disabled (a prehire before the start date)
would go out as one that enables it. Such an operation is not sent: it gets a failed result whose error
says why, so the state does not take it as applied and a later cycle plans it again, to go out once
every worker serving the target speaks the current version. Nothing else differs between versions 4
and 5.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from queues.broker import Broker
from queues.contracts import VERSION, ListPage, Operation, Result, result_of
from queues.topology import ops_queue
from queues.versions import OLDEST, PeerVersions, speaker_of
from queues.wire import Reports

log = logging.getLogger("roster.engine.wire")


class WireVersions:
    """The version of each target's next message: the current one without `peers` (one build, as
    embedded), else as `PeerVersions` and the queue's consumers allow (see the module doc)."""

    def __init__(self, broker: Broker, peers: PeerVersions | None = None) -> None:
        self._broker = broker
        self.peers = peers
        self._last: dict[str, int] = {}

    async def for_target(self, target: str) -> int:
        peers = self.peers
        if peers is None:
            return VERSION
        version = peers.publish_version("worker", target=target)
        if version > OLDEST:
            # Everyone known speaks it: asked again with the number of readers, whom it must all know.
            consumers = await self._broker.consumers(ops_queue(target))
            version = peers.publish_version("worker", target=target, consumers=consumers)
        if self._last.get(target) != version:
            self._last[target] = version
            log.info("event=wire_version target=%s version=%d", target, version)
        return version

    def heard(self, headers: Mapping[str, Any], version: int, reports: Reports) -> None:
        """A worker's results or page, in `version`, with its headers: what it speaks and serves. A
        message without the headers is from a build before them, which speaks its version only."""
        if self.peers is None:
            return
        target = reports.target if isinstance(reports, ListPage) else (reports[0].target if reports else None)
        speaker = speaker_of(headers)
        if speaker is None:
            self.peers.heard(f"unnamed-v{version}", "worker", (version,), target=target)
        else:
            self.peers.heard(speaker[0], "worker", speaker[1], target=target)


def expressible(ops: list[Operation], version: int) -> tuple[list[Operation], list[Result]]:
    """`ops` split into those `version` carries and a failed result for each it cannot: in version 4,
    one that leaves its account disabled (kept back: see the module doc)."""
    if version >= VERSION or not any(op.disabled for op in ops):
        return ops, []
    now = time.time()
    kept = [op for op in ops if op.disabled]
    reason = (
        f"a worker of the previous build (wire version {version}) may serve this target, and it cannot "
        "carry a disabled create or update (it would apply it enabled): planned again once every worker "
        f"serving the target speaks version {VERSION}"
    )
    log.warning(
        "event=disabled_ops_kept_back target=%s ops=%d version=%d", kept[0].target, len(kept), version
    )
    failed = [
        result_of(
            op,
            "failed",
            completed_at=now,
            attempts=0,
            error_class="WireVersionError",
            error_message=reason,
        )
        for op in kept
    ]
    return [op for op in ops if not op.disabled], failed
