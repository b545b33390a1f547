"""Network and process faults under the storage example's register: ``scripts/faults``.

Usage (as root; ``scripts/faults`` runs this with the project's venv)::

    scripts/faults --short               # CI: one run of 12 faults, at most 3 minutes
    scripts/faults --faults 1000         # runs of 25 faults, seeds SEED, SEED+1, ...
    scripts/faults --seed 7 --faults 25  # one run again: the same faults, in the same order

Each run is a fresh network of five namespace hosts (``tests/faults/run.py``
says what is made and checked). Each run prints one line; the end is a
summary whose last line is ``faults: N survived, V violations, M ops``. A run
with violations keeps its histories and data files and prints where. The
exit code is 1 on any violation (a history that is not linearizable, a call
past its bound, a replica not back in time), 130 when interrupted, and 0
otherwise, also where namespaces cannot be made (the line says why).
Whatever happens, the namespaces and processes are removed before it exits;
only a SIGKILL leaves namespaces behind (``ip netns list`` shows them by
the prefix printed first).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from tests.faults.checks import CALL_TIMEOUT, CLIENT_TIMEOUT, SLACK
from tests.faults.run import REJOIN_BOUND, RunResult, run
from tests.multihost import netns

SHORT_FAULTS = 12
SHORT_BUDGET = 110.0
"""Seconds after which ``--short`` starts no new fault: the last one, the clients' stop and
the checks fit in the rest of its 3 minutes."""
PER_RUN = 25
INTERRUPTED = 130


async def run_all(seed: int, faults: int, per_run: int, budget: float | None) -> list[RunResult]:
    """Runs of ``per_run`` faults (the last may be shorter) until ``faults`` were made."""
    results: list[RunResult] = []
    deadline = None if budget is None else time.monotonic() + budget
    made = 0
    while made < faults:
        count = min(per_run, faults - made)
        workdir = Path(tempfile.mkdtemp(prefix=f"gorums-faults-{seed + len(results)}-"))
        result = RunResult(seed + len(results))
        try:
            result = await run(result.seed, count, workdir, deadline)
        except (AssertionError, netns.NetnsError) as exc:  # a process or namespace that failed
            result.violations.append(f"run failed: {exc}")
        finally:  # interrupted, or nothing to look at: the files go too
            if not result.violations:
                shutil.rmtree(workdir, ignore_errors=True)
        print(f"run {len(results) + 1} {result.summary()}", flush=True)
        for line in result.violations:
            print(f"  VIOLATION {line}", flush=True)
        if result.violations:
            print(f"  histories and data kept in {workdir}", flush=True)
        results.append(result)
        made += len(result.faults)
        if deadline is not None and time.monotonic() > deadline:
            break
        if [bool(result.faults) for result in results[-2:]] == [False, False]:
            break  # two runs in a row failed to start: the next would too
    return results


def report(results: Sequence[RunResult], per_run: int) -> list[str]:
    """The summary of all runs; its last line is ``faults: N survived, V violations, M ops``."""
    kinds = Counter(fault.kind for result in results for fault in result.faults)
    outcomes = sum((result.outcomes for result in results), Counter[str]())
    rejoins = [seconds for result in results for _, seconds in result.rejoins]
    by_kind: dict[str, list[float]] = {}
    for result in results:
        for kind, seconds in result.rejoins:
            by_kind.setdefault(kind, []).append(seconds)
    faults = sum(len(result.faults) for result in results)
    survived = sum(result.survived for result in results)
    violations = sum(len(result.violations) for result in results)
    ops = sum(result.ops for result in results)
    seeds = [result.seed for result in results]
    lines = [
        f"runs: {len(results)}, seeds {seeds[0]}..{seeds[-1]}"
        f" (one again: scripts/faults --seed SEED --faults {per_run})",
        f"faults: {faults}: " + ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items())),
        f"operations: {ops} ("
        + ", ".join(f"{outcomes[o]} {o}" for o in ("ok", "fail", "unknown"))
        + f"); {sum(result.keys for result in results)} key histories checked",
        f"calls past their bound: {sum(result.overruns for result in results)}"
        f" (deadline {CLIENT_TIMEOUT} s; {2 * CALL_TIMEOUT} s where no fault touched the path;"
        f" slack {SLACK} s); longest call"
        f" {max(result.longest[True] for result in results):.2f} s on an undisturbed path,"
        f" {max(result.longest[False] for result in results):.2f} s on a disturbed one",
    ]
    if rejoins:
        lines.append(
            f"rejoin after a heal: p50 {statistics.median(rejoins):.2f} s, max {max(rejoins):.2f} s"
            f" over {len(rejoins)} faults after which a replica had left (bound {REJOIN_BOUND} s)"
        )
        lines += [
            f"  {kind}: {len(seconds)}, p50 {statistics.median(seconds):.2f} s,"
            f" max {max(seconds):.2f} s"
            for kind, seconds in sorted(by_kind.items())
        ]
    lines.append(f"faults: {survived} survived, {violations} violations, {ops} ops")
    return lines


async def interruptible(seed: int, faults: int, per_run: int, budget: float | None) -> int:
    """``run_all`` and the report; SIGINT, SIGTERM and SIGHUP cancel it (cleanup runs)."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(run_all(seed, faults, per_run, budget))
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, task.cancel)
    try:
        results = await task
    except asyncio.CancelledError:
        print("faults: interrupted; namespaces and processes removed", flush=True)
        return INTERRUPTED
    for line in report(results, per_run):
        print(line, flush=True)
    return 1 if any(result.violations for result in results) else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the flags, run, and return the exit code."""
    parser = argparse.ArgumentParser(prog="scripts/faults", description=__doc__.split("\n")[0])
    size = parser.add_mutually_exclusive_group(required=True)
    size.add_argument("--short", action="store_true", help=f"{SHORT_FAULTS} faults, for CI")
    size.add_argument("--faults", type=int, help="make this many faults in all")
    parser.add_argument("--per-run", type=int, default=PER_RUN, help="faults per run")
    parser.add_argument("--seed", type=int, help="the first run's seed (default: random)")
    args = parser.parse_args(argv)
    reason = netns.unavailable_reason()
    if reason is not None:
        print(f"faults: skipped: cannot create network namespaces here: {reason}")
        return 0
    seed = args.seed if args.seed is not None else secrets.randbelow(1_000_000)
    faults, per_run = (SHORT_FAULTS, SHORT_FAULTS) if args.short else (args.faults, args.per_run)
    budget = SHORT_BUDGET if args.short else None
    print(f"faults: first seed {seed}; namespaces {netns.RUN_PREFIX}*", flush=True)
    try:
        return asyncio.run(interruptible(seed, faults, per_run, budget))
    finally:
        netns.sweep()


if __name__ == "__main__":
    sys.exit(main())
