"""What a fault-run client records: one JSON line per operation, and the checker's view of it.

Times are ``time.monotonic()`` seconds. Every namespace host shares the
machine's monotonic clock (network namespaces do not make time namespaces),
so the histories of clients on different hosts and the harness's fault log
are on one time line.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from tests.faults.linearizability import Op

Outcome = Literal["ok", "fail", "unknown"]
"""``fail``: the operation certainly had no effect; ``unknown``: it may have had one."""


@dataclass(frozen=True)
class Record:
    """One operation a client ran against one replica."""

    client: str
    op: Literal["read", "write"]
    key: str
    value: str | None
    """The value written, or the value read (None when the read failed)."""
    replica: int
    invoke: float
    complete: float
    outcome: Outcome
    code: str
    """The gRPC status name the call ended with."""
    details: str = ""

    def to_json(self) -> str:
        """This record as one JSON line (without the newline)."""
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> Record:
        """The record a ``to_json`` line holds."""
        return cls(**json.loads(line))


def read_records(path: Path) -> list[Record]:
    """Every record of a history file."""
    return [Record.from_json(line) for line in path.read_text().splitlines() if line]


def to_ops(records: Iterable[Record]) -> list[Op]:
    """The history the checker sees: failed operations had no effect and are left out.

    A write whose outcome is unknown completes at ``math.inf`` (it may take
    effect at any time after its invocation, or never).
    """
    ops = []
    for record in records:
        if record.outcome == "fail":  # reads are ok or fail: a failed read returned nothing
            continue
        complete = record.complete if record.outcome == "ok" else math.inf
        assert record.value is not None, record
        ops.append(Op(record.op, record.key, record.value, record.invoke, complete))
    return ops
