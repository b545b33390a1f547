"""The register checker on histories known to be linearizable, or not."""

from __future__ import annotations

import math
import random
import time

import pytest

from tests.faults.linearizability import INITIAL, Op, Violation, check, check_key

UNKNOWN = math.inf


def w(value: str, invoke: float, complete: float, key: str = "k") -> Op:
    return Op("write", key, value, invoke, complete)


def r(value: str, invoke: float, complete: float, key: str = "k") -> Op:
    return Op("read", key, value, invoke, complete)


LINEARIZABLE = {
    "empty": [],
    "a read of a key nobody wrote": [r(INITIAL, 0, 1)],
    "write then read": [w("a", 0, 1), r("a", 2, 3)],
    "a read overlapping a write sees the old value": [w("a", 0, 3), r(INITIAL, 1, 2)],
    "a read overlapping a write sees the new value": [w("a", 0, 3), r("a", 1, 2)],
    "ops that touch at one instant overlap": [w("a", 0, 1), r(INITIAL, 1, 2)],
    "the later of two overlapping writes wins, whichever was invoked first": [
        w("a", 0, 10),
        w("b", 1, 2),
        r("b", 3, 4),
        r("a", 5, 6),
    ],
    "an unknown write that took effect long after it failed": [
        w("a", 0, UNKNOWN),
        r(INITIAL, 5, 6),
        r("a", 100, 101),
    ],
    "an unknown write that never took effect": [w("a", 0, UNKNOWN), r(INITIAL, 50, 51)],
    "an unknown write overwritten by a later one": [
        w("a", 0, UNKNOWN),
        r("a", 1, 2),
        w("b", 3, 4),
        r("b", 5, 6),
    ],
    "a read repair of an unknown write after reads of the old value": [
        w("a", 0, 1),
        w("b", 2, UNKNOWN),
        r("a", 3, 4),
        r("b", 5, 6),
        r("b", 7, 8),
    ],
}

NOT_LINEARIZABLE = {
    "a stale read after a completed write": [w("a", 0, 1), r(INITIAL, 2, 3)],
    "a read of a value nobody wrote": [r("x", 0, 1)],
    "a read of a write before it was invoked": [r("a", 0, 1), w("a", 2, 3)],
    "new then old, while the write is still running": [
        w("a", 0, 10),
        r("a", 1, 2),
        r(INITIAL, 3, 4),
    ],
    "two completed writes seen in both orders": [
        w("a", 0, 10),
        w("b", 0, 10),
        r("a", 11, 12),
        r("b", 13, 14),
        r("a", 15, 16),
    ],
    "an unknown write seen, then the value it replaced again": [
        w("a", 0, 1),
        w("b", 2, UNKNOWN),
        r("b", 3, 4),
        r("a", 5, 6),
    ],
    "an unknown write seen before it was invoked": [r("a", 0, 1), w("a", 2, UNKNOWN)],
    "a read that saw the old value of a write that completed before it began": [
        w("a", 0, 1),
        w("b", 2, 3),
        r("b", 4, 5),
        w("c", 6, 7),
        r("b", 8, 9),
    ],
}


@pytest.mark.parametrize("ops", LINEARIZABLE.values(), ids=LINEARIZABLE.keys())
def test_linearizable_histories_pass(ops: list[Op]) -> None:
    assert check(ops) == []


@pytest.mark.parametrize("ops", NOT_LINEARIZABLE.values(), ids=NOT_LINEARIZABLE.keys())
def test_non_linearizable_histories_are_found(ops: list[Op]) -> None:
    (violation,) = check(ops)
    assert violation.key == "k" and not violation.undecided
    assert violation.stuck is not None and violation.stuck in ops


def test_keys_are_checked_apart() -> None:
    ops = [w("a", 0, 1, key="x"), r("a", 2, 3, key="x"), r(INITIAL, 2, 3, key="y")]
    assert check(ops) == []  # y's read is not stale: nobody wrote y
    ops.append(r(INITIAL, 4, 5, key="x"))
    assert [violation.key for violation in check(ops)] == ["x"]


def test_the_violation_names_the_stuck_read() -> None:
    stale = r(INITIAL, 2, 3)
    violation = check_key("k", [w("a", 0, 1), stale])
    assert violation == Violation("k", 2, stale)
    assert (
        str(violation)
        == "key k: not linearizable (2 operations); stuck at read k -> '' [2.000, 3.000]"
    )


def test_unknown_writes_nobody_read_cost_nothing() -> None:
    """40 pending writes would be 2^40 orders to try; unread ones are dropped first."""
    ops = [w(f"v{i}", i, UNKNOWN) for i in range(40)]
    ops += [r(INITIAL, 100 + 2 * i, 101 + 2 * i) for i in range(40)]
    started = time.monotonic()
    assert check(ops) == []
    assert time.monotonic() - started < 1.0


def test_a_search_past_its_budget_is_undecided() -> None:
    ops = [w("a", 0, 10), w("b", 0, 10), r("a", 11, 12), r("b", 13, 14), r("a", 15, 16)]
    (violation,) = check(ops, budget=3)
    assert violation.undecided
    assert "undecided" in str(violation)


def sequential_history(seed: int, length: int) -> list[Op]:
    """A random history of one client at a time, each read returning the latest write."""
    rng = random.Random(seed)
    ops, value = [], INITIAL
    for n in range(length):
        if rng.random() < 0.5:
            value = f"v{n}"
            ops.append(w(value, 2 * n, 2 * n + 1))
        else:
            ops.append(r(value, 2 * n, 2 * n + 1))
    return ops


def concurrent_history(seed: int, clients: int, length: int) -> list[Op]:
    """Random overlapping ops whose effects happen at a random point inside each op, in order."""
    rng = random.Random(seed)
    points = sorted(rng.uniform(0, length) for _ in range(length))
    ops, value = [], INITIAL
    for n, point in enumerate(points):
        invoke, complete = point - rng.uniform(0, clients), point + rng.uniform(0, clients)
        if rng.random() < 0.5:
            value = f"v{n}"
            ops.append(w(value, invoke, complete if rng.random() < 0.9 else UNKNOWN))
        else:
            ops.append(r(value, invoke, complete))
    return ops


@pytest.mark.parametrize("seed", range(5))
def test_random_histories_made_linearizable_pass(seed: int) -> None:
    assert check(sequential_history(seed, 300)) == []
    assert check(concurrent_history(seed, clients=4, length=300)) == []


@pytest.mark.parametrize("seed", range(5))
def test_a_stale_read_planted_in_a_random_history_is_found(seed: int) -> None:
    ops = sequential_history(seed, 300)
    writes = [op for op in ops if op.kind == "write"]
    old, newer = writes[len(writes) // 3], writes[len(writes) // 3 + 1]
    ops.append(r(old.value, newer.complete + 0.25, newer.complete + 0.5))
    assert [violation.key for violation in check(ops)] == ["k"]
