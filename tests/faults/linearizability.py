"""A linearizability checker for registers, in the style of Wing & Gong with Lowe's memo.

A history is a set of ``Op``s, each a read or a write of one key with the
times it was invoked and completed. It is linearizable when every operation
can be given a point between its invocation and completion such that, taken
in that order, every read returns the value of the latest write before it
(or ``INITIAL``). Keys are independent registers, so each key is checked
alone (linearizability is compositional), which keeps the searches small.

A write whose outcome is unknown (the call failed or timed out after it was
sent) may take effect at any time after its invocation, or never: it
completes at ``math.inf``. Such a write that no read ever returned is
dropped before the search, since leaving it out never makes a history
linearizable that was not.

The search is the one Porcupine uses (after Lowe, "Testing for
linearizability", 2017): walk the invocations and completions in time
order; at an invocation, try to linearize that operation now; at a
completion of an operation not yet linearized, backtrack. A set of
(linearized operations, register value) pairs already explored cuts repeated
work. A search that takes more than ``budget`` steps stops as undecided.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

INITIAL = ""
"""The value of a key nobody wrote."""
BUDGET = 20_000_000
"""Search steps one key may take before it is reported undecided (about 10 s here)."""


@dataclass(frozen=True)
class Op:
    """One read or write of a register, as a client saw it."""

    kind: Literal["read", "write"]
    key: str
    value: str
    """The value written, or the value the read returned."""
    invoke: float
    complete: float
    """When the call returned; ``math.inf`` for a write whose outcome is unknown."""

    def __str__(self) -> str:
        arrow = "<-" if self.kind == "write" else "->"
        span = f"[{self.invoke:.3f}, {self.complete:.3f}]"
        return f"{self.kind} {self.key} {arrow} {self.value!r} {span}"


@dataclass(frozen=True)
class Violation:
    """A key whose history has no linearization (or whose search ran out of steps)."""

    key: str
    ops: int
    """Operations of the key that were searched."""
    stuck: Op | None
    """The operation whose completion the longest partial linearization could not pass."""
    undecided: bool = False

    def __str__(self) -> str:
        if self.undecided:
            return f"key {self.key}: undecided after the step budget ({self.ops} operations)"
        return f"key {self.key}: not linearizable ({self.ops} operations); stuck at {self.stuck}"


def check(ops: Iterable[Op], *, budget: int = BUDGET) -> list[Violation]:
    """Check a history key by key; return the keys that are not linearizable (sorted)."""
    by_key: dict[str, list[Op]] = defaultdict(list)
    for op in ops:
        by_key[op.key].append(op)
    found = (check_key(key, by_key[key], budget=budget) for key in sorted(by_key))
    return [violation for violation in found if violation is not None]


def check_key(key: str, ops: Sequence[Op], *, budget: int = BUDGET) -> Violation | None:
    """Check the history of one key; None when it is linearizable."""
    read = {op.value for op in ops if op.kind == "read"}
    kept = [op for op in ops if not (math.isinf(op.complete) and op.value not in read)]
    return _Search(kept).run(key, budget)


class _Search:
    """One Wing-Gong-Lowe search over a doubly linked list of invocations and completions."""

    def __init__(self, ops: Sequence[Op]) -> None:
        self.ops = ops
        # An entry is an index: 2*i is op i's invocation, 2*i+1 its completion; -1 is the head.
        events = sorted(
            (time, is_completion, i)
            for i, op in enumerate(ops)
            for time, is_completion in ((op.invoke, 0), (op.complete, 1))
        )  # invocations sort before completions at the same time: such ops overlap
        order = [2 * i + is_completion for _, is_completion, i in events]
        self.next = dict(zip([-1, *order], [*order, None], strict=True))
        self.prev = dict(zip(order, [-1, *order[:-1]], strict=True))

    def run(self, key: str, budget: int) -> Violation | None:
        """Search; None if linearizable, else the violation."""
        state, linearized = INITIAL, 0
        seen: set[tuple[int, str]] = set()
        stack: list[tuple[int, str]] = []  # (invocation entry, state before it)
        deepest, stuck = -1, None
        entry = self.next[-1]
        for _ in range(budget):
            if entry is None:
                return None
            i = entry // 2
            if entry % 2 == 0:  # an invocation: linearize op i here if it fits
                op = self.ops[i]
                if op.kind == "write" or op.value == state:
                    after = op.value if op.kind == "write" else state
                    mark = (linearized | 1 << i, after)
                    if mark not in seen:
                        seen.add(mark)
                        stack.append((entry, state))
                        state, linearized = after, mark[0]
                        self._lift(entry)
                        entry = self.next[-1]
                        continue
                entry = self.next[entry]
            else:  # op i completes before it was linearized: undo the last choice
                if len(stack) > deepest:
                    deepest, stuck = len(stack), self.ops[i]
                if not stack:
                    return Violation(key, len(self.ops), stuck)
                entry, state = stack.pop()
                linearized &= ~(1 << (entry // 2))
                self._unlift(entry)
                entry = self.next[entry]
        return Violation(key, len(self.ops), stuck, undecided=True)

    def _lift(self, invocation: int) -> None:
        """Unlink an op's invocation and completion from the list."""
        for entry in (invocation, invocation + 1):
            before, after = self.prev[entry], self.next[entry]
            self.next[before] = after
            if after is not None:
                self.prev[after] = before

    def _unlift(self, invocation: int) -> None:
        """Link them back in (the reverse of ``_lift``)."""
        for entry in (invocation + 1, invocation):
            before, after = self.prev[entry], self.next[entry]
            self.next[before] = entry
            if after is not None:
                self.prev[after] = entry
