"""The checks of a run's calls against the times its faults were in force.

A call through a replica ends within bounds that depend on whether a fault
touched its path while it ran, and a replica cut off from both others never
completes an operation (``tests.faults.run`` lists every check).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tests.faults.history import Record
from tests.faults.schedule import Fault

CALL_TIMEOUT = 2.0
"""The storage replica's timeout for each of its quorum calls (``StorageReplica``'s default);
an operation makes at most two in a row."""
CLIENT_TIMEOUT = 6.0
"""Seconds a client's call may take (its gRPC deadline): above two quorum calls."""
SLACK = 1.5
"""Seconds a call may run past its bound: scheduling on a shared, loaded 2-core machine
(five processes of the run and whatever else runs there)."""
SETTLE = 5.0
"""Seconds after a heal during which a path still counts as disturbed: the keepalive bound
(2 s) to drop a connection that died silently, plus a reconnect backoff and the TCP
retransmission that carries a request sent into the cut."""


@dataclass(frozen=True)
class Span:
    """When one fault was in force (``time.monotonic()`` instants)."""

    fault: Fault
    made: float
    """When making it began."""
    cut: float
    """When it was made in full."""
    healing: float
    """When undoing it began."""
    healed: float
    """When it was undone (a restarted replica listened)."""


def undisturbed(record: Record, spans: Sequence[Span]) -> bool:
    """Whether no fault touched the record's path from its making to ``SETTLE`` after its heal."""
    client = int(record.client.removeprefix("c"))
    return not any(
        span.fault.disturbs(client, record.replica)
        and span.made < record.complete
        and record.invoke < span.healed + SETTLE
        for span in spans
    )


def late_calls(records: Sequence[Record], spans: Sequence[Span]) -> list[str]:
    """The calls that ended past their bound, one line each.

    A call on a path a fault disturbed while it ran is bound by its
    deadline; any other by the replica's two quorum-call timeouts: a quorum
    call that outlived its ``timeout=`` shows there. ``SLACK`` is added to both.
    """
    late = []
    for record in records:
        took = record.complete - record.invoke
        clean = undisturbed(record, spans)
        bound = 2 * CALL_TIMEOUT if clean else CLIENT_TIMEOUT
        if took > bound + SLACK:
            path = "an undisturbed path" if clean else "a disturbed path"
            late.append(
                f"{record.op} {record.key} by {record.client} via replica {record.replica}"
                f" took {took:.2f} s on {path} (bound {bound} s + {SLACK} s): {record.code}"
                f" {record.details}"
            )
    return late


def minority_decisions(records: Sequence[Record], spans: Sequence[Span]) -> list[str]:
    """The operations a replica completed while it was cut off from both others, one line each.

    Only operations that began after the cut was made in full and ended
    before its heal began count: a quorum of two cannot be had then.
    """
    return [
        f"replica {record.replica} decided alone during {span.fault}: {record.op} {record.key}"
        f" {record.value!r} by {record.client} [{record.invoke:.3f}, {record.complete:.3f}]"
        for span in spans
        if span.fault.alone() is not None
        for record in records
        if record.outcome == "ok"
        and record.replica == span.fault.alone()
        and span.cut <= record.invoke
        and record.complete <= span.healing
    ]
