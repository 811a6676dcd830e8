"""Which wire version the engine writes a target's messages in, and an operation made fit for it.

A build speaks its wire version and the previous one (`queues.versions.SPOKEN`), so during a rolling
upgrade the engine writes to a target in the newest version that every worker reading the target's
queue speaks. It knows those workers from presence (when a `PeerVersions` is fed by it) and from the
headers of their results and pages (`heard`). It writes the current version only when it knows as many
workers serving the target as the queue has consumers, and every one of them speaks it: a consumer it
has not heard of may be a worker of the previous build, which would dead-letter a message it cannot
read. Otherwise (nothing known yet, a reader unknown, or one that speaks the previous version only) it
writes the previous version, which every build in the fleet reads.

What the previous version cannot carry is deferred, never dropped: version 3 has no `members_groups`,
so a group operation that adds nested groups goes out without those members, its record (what the
state will hold as applied) without them, and its hash marked pending. The target then holds exactly
what the state records, and a later cycle plans the nested members again, to go out once every
worker speaks the current version. Nothing else differs between versions 3 and 4.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from engine.core.membership import PENDING_PREFIX, REMOVED_PREFIX
from queues.broker import Broker
from queues.contracts import VERSION, ListPage, Operation
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


def expressible(op: Operation, version: int) -> Operation:
    """`op` as `version` can carry it: in version 3, without the nested groups it adds (deferred: see
    the module doc)."""
    if version >= VERSION or not op.members_groups:
        return op
    groups = set(op.members_groups)
    members = op.members
    if members is not None:
        members = {m: t for m, t in members.items() if m.startswith(REMOVED_PREFIX) or t not in groups}
    desired_hash = op.desired_hash
    if not desired_hash.startswith(PENDING_PREFIX):
        desired_hash = PENDING_PREFIX + desired_hash
    log.info(
        "event=nested_members_deferred op=%s job=%s target=%s groups=%d version=%d",
        op.op_id,
        op.job,
        op.target,
        len(groups),
        version,
    )
    return dataclasses.replace(
        op,
        members_add=[m for m in op.members_add if m not in groups],
        members_groups=[],
        members=members,
        desired_hash=desired_hash,
    )
