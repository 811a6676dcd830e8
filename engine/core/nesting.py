"""Nested groups of one job: the order in which a cycle plans them, member groups first, and the loops.

A group job whose members may be its own groups (`members.groups` names the job itself) holds back,
while it reads the source, each group that names a member the user job does not know: that member may
be one of its groups. Once the read is complete, those groups are planned in levels: a level holds the
groups whose member groups are all in earlier levels (or were planned while reading), and the cycle
waits for the results of what it sent before it plans the next level, so each group is sent with its
member groups' target ids and nesting of any depth lands in one cycle.

Groups that contain themselves, directly (A contains A) or through others (A contains B contains A),
cannot be ordered: each group of such a loop is refused with the loop in its error, never planned, and
a group that merely contains one is planned after the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from common.errors import RosterError
from engine.model import SourceObject


class NestingLoop(RosterError):
    """A group is among its own members, directly or through other groups."""

    def __init__(self, loop: tuple[str, ...]) -> None:
        self.loop = loop
        super().__init__(
            f"nested groups form a loop: {' contains '.join(loop)}; a group cannot be a member of itself, "
            "so this group is not provisioned until one of these memberships leaves the source"
        )


@dataclass(frozen=True, slots=True)
class Order:
    """Groups in planning order: `levels`, each after all its member groups; `loops`: the groups that
    are in a loop, with the loop (a path that starts and ends with the same group)."""

    levels: list[list[str]]
    loops: dict[str, tuple[str, ...]]


def nesting_order(edges: Mapping[str, Iterable[str]]) -> Order:
    """Order the groups that are `edges`' keys, each group's value naming its member ids; a member that
    is no key is taken as planned already (a user, or a group without nested members)."""
    graph = {group: [m for m in dict.fromkeys(members) if m in edges] for group, members in edges.items()}
    loops: dict[str, tuple[str, ...]] = {}
    level: dict[str, int] = {}
    # Tarjan's strongly connected components, iteratively: each component comes out after every
    # component it reaches, so a group's member groups have their level before the group itself.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    for root in graph:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            members = graph[node]
            if i < len(members):
                work.append((node, i + 1))
                member = members[i]
                if member not in index:
                    work.append((member, 0))
                elif member in on_stack:
                    low[node] = min(low[node], index[member])
                continue
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] != index[node]:
                continue
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1 or node in graph[node]:
                inside = set(component)
                for group in component:
                    loops[group] = _loop(graph, group, inside)
            else:
                below = [level[m] for m in graph[node] if m in level]
                level[node] = 1 + max(below) if below else 0
    levels: list[list[str]] = [[] for _ in range(1 + max(level.values(), default=-1))]
    for group in graph:  # in the order given, within a level
        if group in level:
            levels[level[group]].append(group)
    return Order(levels, loops)


def _loop(graph: Mapping[str, list[str]], start: str, inside: set[str]) -> tuple[str, ...]:
    """A shortest path from `start` back to itself through the groups `inside` its component."""
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for member in graph[node]:
                if member == start:
                    path = [start, node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return tuple(reversed(path))
                if member in inside and member not in came_from:
                    came_from[member] = node
                    following.append(member)
        frontier = following
    return (start, start)  # not reached: every group of a component reaches itself


class NestedGroups:
    """What a cycle of a self-nesting group job holds back while it reads (see the module doc)."""

    __slots__ = ("_held", "_members", "_seen")

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._held: dict[str, SourceObject] = {}
        self._members: dict[str, list[str]] = {}

    def __len__(self) -> int:
        return len(self._held)

    def see(self, source_id: str) -> None:
        """A group of the job was read."""
        self._seen.add(source_id)

    def hold(self, obj: SourceObject, members: list[str]) -> None:
        """Plan `obj` after the read: `members` may be groups of the job."""
        self._held[obj.source_id] = obj
        self._members[obj.source_id] = members

    def order(self) -> tuple[list[list[SourceObject]], list[tuple[SourceObject, tuple[str, ...]]]]:
        """The groups held, in levels to plan one after the other, and those in loops with their loop."""
        seen = self._seen
        edges = {g: [m for m in members if m in seen] for g, members in self._members.items()}
        order = nesting_order(edges)
        held = self._held
        levels = [[held[g] for g in level] for level in order.levels]
        return levels, [(held[g], loop) for g, loop in order.loops.items()]
