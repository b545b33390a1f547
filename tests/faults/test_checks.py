"""The fault harness's own parts, without namespaces: schedules, histories, the call checks."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from grpc import StatusCode

from tests.faults.checks import Span, late_calls, minority_decisions
from tests.faults.client import outcome
from tests.faults.history import Record, to_ops
from tests.faults.linearizability import Op
from tests.faults.schedule import CLIENTS, KINDS, REPLICAS, Fault, plan


def test_a_seed_gives_the_same_faults_and_seeds_cover_every_kind() -> None:
    assert plan(7, 25) == plan(7, 25)
    assert plan(7, 25) != plan(8, 25)
    kinds = Counter(fault.kind for seed in range(20) for fault in plan(seed, 25))
    assert set(kinds) == set(KINDS)
    for fault in plan(3, 200):
        assert 0.5 <= fault.hold <= 4.5
        assert not set(fault.side) & set(fault.other), fault
        assert set(fault.side) | set(fault.other) <= set(REPLICAS + CLIENTS)


SPLIT = Fault("split", (3, 5), (1, 2, 4), 1.0)


@pytest.mark.parametrize(
    ("fault", "client", "replica", "disturbed"),
    [
        (SPLIT, 4, 3, True),  # across the cut
        (SPLIT, 5, 3, False),  # on the same side
        (SPLIT, 4, 1, False),
        (Fault("isolate", (3,), (1, 2), 1.0), 4, 3, False),  # between replicas only
        (Fault("one-way", (1,), (2,), 1.0), 5, 1, False),
        (Fault("isolate-client", (4,), REPLICAS, 1.0), 4, 2, True),
        (Fault("link-down", (2,), (), 1.0), 5, 2, True),
        (Fault("link-down", (5,), (), 1.0), 5, 1, True),
        (Fault("link-down", (5,), (), 1.0), 4, 1, False),
        (Fault("stop", (1,), (), 1.0), 4, 1, True),
        (Fault("kill", (1,), (), 1.0), 4, 2, False),
    ],
)
def test_which_paths_a_fault_disturbs(
    fault: Fault, client: int, replica: int, disturbed: bool
) -> None:
    assert fault.disturbs(client, replica) is disturbed


def record(
    op: str, value: str | None, outcome: str, invoke: float = 0, complete: float = 1
) -> Record:
    return Record("c4", op, "k", value, 1, invoke, complete, outcome, "X")  # type: ignore[arg-type]


def test_the_checker_sees_failed_operations_left_out_and_unknown_writes_open() -> None:
    records = [
        record("write", "a", "ok"),
        record("write", "b", "fail"),
        record("write", "c", "unknown", 2, 3),
        record("read", None, "fail"),
        record("read", "a", "ok", 4, 5),
    ]
    assert to_ops(records) == [
        Op("write", "k", "a", 0, 1),
        Op("write", "k", "c", 2, math.inf),
        Op("read", "k", "a", 4, 5),
    ]
    assert Record.from_json(records[2].to_json()) == records[2]


@pytest.mark.parametrize(
    ("op", "code", "details", "expected"),
    [
        ("write", StatusCode.OK, "", "ok"),
        ("read", StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", "fail"),
        ("write", StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", "unknown"),
        (
            "write",
            StatusCode.UNAVAILABLE,
            "storage.Storage.Write: quorum of 2 not reached",
            "unknown",
        ),
        ("write", StatusCode.UNAVAILABLE, "storage.Storage.Read: quorum of 2 not reached", "fail"),
        ("write", StatusCode.UNAVAILABLE, "failed to connect to all addresses; last error", "fail"),
        ("write", StatusCode.UNAVAILABLE, "Socket closed", "unknown"),
    ],
)
def test_a_write_fails_only_when_it_certainly_had_no_effect(
    op: str, code: StatusCode, details: str, expected: str
) -> None:
    assert outcome(op, code, details) == expected


def test_calls_past_their_bound_are_reported() -> None:
    stop = Fault("stop", (1,), (), 2.0)
    spans = [Span(stop, 100.0, 100.1, 102.0, 102.0)]  # its paths are disturbed until 107
    records = [
        record("read", "a", "ok", 10, 15.4),  # 5.4 s, no fault: within 4 s + 1.5 s
        record("read", None, "fail", 20, 26.0),  # 6 s, no fault: a quorum call overran
        record("read", None, "fail", 101, 107.0),  # 6 s while its replica was stopped
        record("read", None, "fail", 106, 113.6),  # past the deadline + slack, disturbed or not
    ]
    late = late_calls(records, spans)
    assert len(late) == 2
    assert "took 6.00 s on an undisturbed path (bound 4.0 s + 1.5 s)" in late[0]
    assert "took 7.60 s on a disturbed path (bound 6.0 s + 1.5 s)" in late[1]


def test_a_replica_cut_off_from_both_others_must_not_decide() -> None:
    isolate = Fault("isolate", (1,), (2, 3), 3.0)
    spans = [Span(isolate, 100.0, 100.2, 103.0, 103.1)]
    records = [
        record("write", "a", "ok", 99.0, 100.5),  # began before the cut: its calls got through
        record("write", "b", "fail", 101.0, 103.0),  # the minority refused: right
        record("read", "c", "ok", 102.0, 102.9),  # decided alone: wrong
        record("read", "d", "ok", 102.5, 103.2),  # ended after the heal began
    ]
    (wrong,) = minority_decisions(records, spans)
    assert wrong.startswith("replica 1 decided alone during isolate 1 | 2,3 for 3.0 s: read k 'c'")
    one_way = Span(Fault("one-way", (1,), (2,), 3.0), 100.0, 100.2, 103.0, 103.1)
    assert minority_decisions(records, [one_way]) == []  # replica 1 still reaches replica 3
