"""One fault run: a fresh network and cluster, faults one after another, then the checks.

Every fault is held for its ``hold`` (the experiment's parameter, not a
wait for anything), healed, and followed by a wait (bounded by
``REJOIN_BOUND``) until every replica has every replica in its configuration
again; the time that took is the fault's rejoin time. Between faults the
clients run for ``GAP`` seconds with nothing broken.

The checks, on every run:

- every key's history is linearizable (``tests.faults.linearizability``);
- every client call ended within its deadline plus ``SLACK``;
- every call on a path no fault touched (client host to replica, nor the
  replica halted) ended within the replica's two quorum-call timeouts plus
  ``SLACK``: a quorum call that outlived its ``timeout=`` shows here;
- every replica was back in every configuration within ``REJOIN_BOUND`` of
  each heal (of a restarted replica's listening, for ``kill`` and
  ``restart``).
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.faults import schedule
from tests.faults.cluster import CLIENT_TIMEOUT, Cluster
from tests.faults.history import Record, read_records, to_ops
from tests.faults.linearizability import check
from tests.faults.schedule import Fault
from tests.multihost.netns import Network

CALL_TIMEOUT = 2.0
"""The storage replica's timeout for each of its quorum calls (``StorageReplica``'s default);
an operation makes at most two in a row."""
SLACK = 1.5
"""Seconds a call may run past its bound: scheduling on a shared, loaded 2-core machine
(five processes of the run and whatever else runs). Measured overruns in the long run were
below this; see RELIABILITY.md."""
SETTLE = 5.0
"""Seconds after a heal during which a path still counts as disturbed: the keepalive bound
(2 s) to drop a connection that died silently, plus a reconnect backoff and the TCP
retransmission that carries a request sent into the cut."""
REJOIN_BOUND = 10.0
"""Seconds after a heal within which every replica must have all three again: the keepalive
bound (2 s), the System's reconnect backoff (at most 2 s), a connect, and slack."""
GAP = 1.0
"""Seconds the clients run between one fault's rejoin and the next fault."""


@dataclass
class RunResult:
    """What one run did and found."""

    seed: int
    faults: list[Fault] = field(default_factory=list)
    """The faults made (and healed), in order."""
    rejoins: list[tuple[str, float]] = field(default_factory=list)
    """(fault kind, seconds from its heal until every replica had all three), for the
    faults after which some replica had left a configuration."""
    survived: int = 0
    """Faults healed with every replica back within ``REJOIN_BOUND``."""
    outcomes: Counter[str] = field(default_factory=Counter)
    """Operations by outcome (ok, fail, unknown)."""
    violations: list[str] = field(default_factory=list)
    """Every failed check, one line each."""
    overruns: int = 0
    """Calls that ended later than their bound (also listed in ``violations``)."""
    keys: int = 0
    """Key histories checked."""
    longest: dict[bool, float] = field(default_factory=lambda: {True: 0.0, False: 0.0})
    """The longest call on an undisturbed path (True) and on a disturbed one (False)."""
    seconds: float = 0.0

    @property
    def ops(self) -> int:
        """Operations recorded."""
        return sum(self.outcomes.values())

    def summary(self) -> str:
        """One line: what the run did and found."""
        kinds = Counter(fault.kind for fault in self.faults)
        by_kind = ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items()))
        seconds = [rejoin for _, rejoin in self.rejoins]
        rejoin = (
            f"rejoin p50 {statistics.median(seconds):.2f} s max {max(seconds):.2f} s"
            if seconds
            else "no replica left"
        )
        outcomes = ", ".join(f"{self.outcomes[o]} {o}" for o in ("ok", "fail", "unknown"))
        return (
            f"seed {self.seed}: {len(self.faults)} faults ({by_kind}); {self.ops} ops ({outcomes});"
            f" {rejoin}; {len(self.violations)} violations; {self.seconds:.0f} s"
        )


async def run(seed: int, count: int, workdir: Path, deadline: float | None = None) -> RunResult:
    """Make ``count`` faults drawn from ``seed`` on a fresh cluster; check what happened.

    ``deadline`` (a ``time.monotonic()`` instant) stops the run from starting
    another fault after it. The network and every process are gone when
    this returns or raises.
    """
    result = RunResult(seed)
    started = time.monotonic()
    disturbed: list[tuple[Fault, float, float]] = []  # (fault, made, healed + SETTLE)
    async with Network(5) as net:
        cluster = Cluster(net, workdir, seed)
        try:
            await cluster.start()
            await asyncio.sleep(GAP)
            for fault in schedule.plan(seed, count):
                if deadline is not None and time.monotonic() > deadline:
                    break
                made = time.monotonic()
                await cluster.inject(fault)
                await asyncio.sleep(fault.hold)  # the fault's length, not a wait for anything
                left = not cluster.full()
                healed = await cluster.heal(fault)
                result.faults.append(fault)
                disturbed.append((fault, made, healed + SETTLE))
                try:
                    back = await cluster.wait_full(REJOIN_BOUND)
                except TimeoutError:
                    result.violations.append(
                        f"{fault}: replicas not back within {REJOIN_BOUND} s of the heal:"
                        f" {cluster.configs()}"
                    )
                    break
                result.survived += 1
                if left or back - healed > 0.05:
                    result.rejoins.append((fault.kind, back - healed))
                await asyncio.sleep(GAP)
            await cluster.stop_clients()
        finally:
            await cluster.aclose()
    records = [record for path in cluster.histories() for record in _read(path)]
    _check(records, disturbed, result)
    result.seconds = time.monotonic() - started
    return result


def _read(path: Path) -> list[Record]:
    """A client's records (none if it never wrote its file)."""
    with contextlib.suppress(FileNotFoundError):
        return read_records(path)
    return []


def _check(
    records: list[Record], disturbed: list[tuple[Fault, float, float]], result: RunResult
) -> None:
    """Check the histories and call durations; add what fails to ``result``."""
    result.outcomes.update(record.outcome for record in records)
    ops = to_ops(records)
    result.keys = len({op.key for op in ops})
    result.violations += [str(violation) for violation in check(ops)]
    for record in records:
        clean = undisturbed(record, disturbed)
        took = record.complete - record.invoke
        result.longest[clean] = max(result.longest[clean], took)
    overruns = late_calls(records, disturbed)
    result.overruns += len(overruns)
    result.violations += overruns


def undisturbed(record: Record, disturbed: list[tuple[Fault, float, float]]) -> bool:
    """Whether no fault disturbed the record's path while it ran.

    ``disturbed`` holds each fault with when it was made and until when its
    effects may last (its heal plus ``SETTLE``).
    """
    client = int(record.client.removeprefix("c"))
    return not any(
        fault.disturbs(client, record.replica) and made < record.complete and record.invoke < until
        for fault, made, until in disturbed
    )


def late_calls(records: list[Record], disturbed: list[tuple[Fault, float, float]]) -> list[str]:
    """The calls that ended past their bound, one line each.

    A call on a path a fault disturbed while it ran is bound by its
    deadline; any other by the replica's two quorum-call timeouts.
    ``SLACK`` is added to both.
    """
    late = []
    for record in records:
        took = record.complete - record.invoke
        clean = undisturbed(record, disturbed)
        bound = 2 * CALL_TIMEOUT if clean else CLIENT_TIMEOUT
        if took > bound + SLACK:
            path = "an undisturbed path" if clean else "a disturbed path"
            late.append(
                f"{record.op} {record.key} by {record.client} via replica {record.replica}"
                f" took {took:.2f} s on {path} (bound {bound} s + {SLACK} s): {record.code}"
                f" {record.details}"
            )
    return late
