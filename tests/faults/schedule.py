"""The faults of a run, drawn from its seed: which kind, on which hosts, for how long.

Hosts 1 to 3 run replicas 1 to 3; hosts 4 and 5 run clients. One fault is
in force at a time; each lasts ``hold`` seconds and is then healed.

- ``split``: the replicas split 1 | 2, each client on a random side;
  blackhole routes both ways between the sides;
- ``isolate``: one replica cut off from the other two (blackhole, both ways)
  while the clients still reach it: the caller of its quorum calls is alone;
- ``isolate-client``: one client host cut off from every replica;
- ``one-way``: one replica's packets to another dropped (a blackhole route on
  one side only): the other's requests still arrive and are never acknowledged;
- ``prohibit``: as ``isolate``, with ``prohibit`` routes: sends fail at once;
- ``link-down``: any host's ``eth0`` down, off the bridge;
- ``kill``: a replica process killed with SIGKILL, then started again (its
  data file kept);
- ``restart``: a replica process stopped cleanly (SIGTERM), then started again;
- ``stop``: a replica process paused (SIGSTOP): its sockets stay open and
  nothing answers, then resumed (SIGCONT).

Cuts are healed by removing the routes, links by bringing them up.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

REPLICAS = (1, 2, 3)
"""Host indexes (and node IDs) of the replicas."""
CLIENTS = (4, 5)
"""Host indexes of the client processes."""
KINDS = (
    "split",
    "isolate",
    "isolate-client",
    "one-way",
    "prohibit",
    "link-down",
    "kill",
    "restart",
    "stop",
)
HOLD = (0.5, 4.5)
"""Seconds a fault lasts, drawn uniformly: about half outlast the replicas' keepalive
bound (2 s), so peers are dropped and dialed again, and half do not."""


@dataclass(frozen=True)
class Fault:
    """One fault: ``kind`` on the hosts ``side`` (against ``other``, for a cut), for ``hold`` s."""

    kind: str
    side: tuple[int, ...]
    """The hosts the fault is on: the minority of a split, the cut-off host, the one
    whose link goes down, the replica whose process is hit, the sender of a one-way cut."""
    other: tuple[int, ...]
    """The hosts ``side`` is cut off from (empty for faults of one host)."""
    hold: float

    def disturbs(self, client: int, replica: int) -> bool:
        """Whether the fault cuts client host ``client`` off from ``replica``, or halts it.

        The faults between replicas (``isolate``, ``prohibit``, ``one-way``)
        disturb no client's path: a call through a replica they touch must
        still end within the replica's quorum-call timeouts.
        """
        if self.kind == "split":
            return (client in self.side) != (replica in self.side)
        if self.kind == "isolate-client":
            return client in self.side
        if self.kind == "link-down":
            return client in self.side or replica in self.side
        return self.kind in ("kill", "restart", "stop") and replica in self.side

    def alone(self) -> int | None:
        """The replica the fault cuts off from both others while clients reach it, if any."""
        return self.side[0] if self.kind in ("split", "isolate", "prohibit") else None

    def __str__(self) -> str:
        hosts = ",".join(map(str, self.side))
        if self.other:
            hosts += " | " + ",".join(map(str, self.other))
        return f"{self.kind} {hosts} for {self.hold:.1f} s"


def plan(seed: int, count: int) -> list[Fault]:
    """``count`` faults drawn from ``seed`` (the same seed gives the same faults)."""
    rng = random.Random(seed)
    return [_draw(rng, rng.choice(KINDS)) for _ in range(count)]


def _draw(rng: random.Random, kind: str) -> Fault:
    """A fault of ``kind`` on random hosts."""
    replica = rng.choice(REPLICAS)
    rest = tuple(r for r in REPLICAS if r != replica)
    hold = round(rng.uniform(*HOLD), 2)
    if kind == "split":
        minority = [client for client in CLIENTS if rng.random() < 0.5]
        majority = [client for client in CLIENTS if client not in minority]
        return Fault(kind, (replica, *minority), (*rest, *majority), hold)
    if kind in ("isolate", "prohibit"):
        return Fault(kind, (replica,), rest, hold)
    if kind == "isolate-client":
        return Fault(kind, (rng.choice(CLIENTS),), REPLICAS, hold)
    if kind == "one-way":
        return Fault(kind, (replica,), (rng.choice(rest),), hold)
    if kind == "link-down":
        return Fault(kind, (rng.choice(REPLICAS + CLIENTS),), (), hold)
    return Fault(kind, (replica,), (), hold)
