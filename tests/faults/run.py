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
- no replica cut off from both others completed an operation that began
  after the cut and ended before the heal (a minority never decides);
- every replica was back in every configuration within ``REJOIN_BOUND`` of
  each heal (of a restarted replica's listening, for ``kill`` and
  ``restart``), and before each fault.
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
from tests.faults.checks import Span, late_calls, minority_decisions, undisturbed
from tests.faults.cluster import Cluster
from tests.faults.history import Record, read_records, to_ops
from tests.faults.linearizability import check
from tests.faults.schedule import Fault
from tests.multihost.netns import Network

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
    spans: list[Span] = []
    async with Network(5) as net:
        cluster = Cluster(net, workdir, seed)
        try:
            await cluster.start()
            for fault in schedule.plan(seed, count):
                await asyncio.sleep(GAP)  # operations with nothing broken
                if deadline is not None and time.monotonic() > deadline:
                    break
                if not await _rejoined(cluster, f"before {fault}", result):
                    break  # a replica left after the last heal and did not come back
                made = time.monotonic()
                await cluster.inject(fault)
                cut = time.monotonic()
                await asyncio.sleep(fault.hold)  # the fault's length, not a wait for anything
                left, healing = not cluster.full(), time.monotonic()
                healed = await cluster.heal(fault)
                result.faults.append(fault)
                spans.append(Span(fault, made, cut, healing, healed))
                if not await _rejoined(cluster, f"after {fault}", result):
                    break
                result.survived += 1
                back = time.monotonic()
                if left or back - healed > 0.05:
                    result.rejoins.append((fault.kind, back - healed))
            await cluster.stop_clients()
        finally:
            await cluster.aclose()
    records = [record for path in cluster.histories() for record in _read(path)]
    _check(records, spans, result)
    result.seconds = time.monotonic() - started
    return result


async def _rejoined(cluster: Cluster, when: str, result: RunResult) -> bool:
    """Wait until every replica has all three; a violation in ``result`` if not in time."""
    try:
        await cluster.wait_full(REJOIN_BOUND)
    except TimeoutError:
        result.violations.append(
            f"{when}: replicas not all back within {REJOIN_BOUND} s: {cluster.configs()}"
        )
        return False
    return True


def _read(path: Path) -> list[Record]:
    """A client's records (none if it never wrote its file)."""
    with contextlib.suppress(FileNotFoundError):
        return read_records(path)
    return []


def _check(records: list[Record], spans: list[Span], result: RunResult) -> None:
    """Check the histories and the calls; add what fails to ``result``."""
    result.outcomes.update(record.outcome for record in records)
    ops = to_ops(records)
    result.keys = len({op.key for op in ops})
    result.violations += [str(violation) for violation in check(ops)]
    for record in records:
        clean = undisturbed(record, spans)
        result.longest[clean] = max(result.longest[clean], record.complete - record.invoke)
    overruns = late_calls(records, spans)
    result.overruns += len(overruns)
    result.violations += overruns + minority_decisions(records, spans)
