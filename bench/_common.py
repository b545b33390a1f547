"""What the benchmarks share: the bench service, child processes, CPU clocks, tables.

Every benchmark is a driver process that spawns its servers as child
processes (``python -m bench.<name> --serve ...``). A child prints one line
``READY <json>`` on stdout once it serves, and stops when its stdin closes,
so a driver that dies takes its children with it.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # before grpc is imported

import argparse
import asyncio
import contextlib
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Sequence,
)
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import grpc
from google.protobuf.wrappers_pb2 import BytesValue
from grpc import aio

ROOT: Final = Path(__file__).resolve().parent.parent
"""This checkout."""

SERVICE: Final = "bench.Bench"
SAY_PATH: Final = "/bench.Bench/Say"
"""grpc path of the unary echo method."""
CHAT_PATH: Final = "/bench.Bench/Chat"
"""grpc path of the bidi-stream echo method."""
SAY_METHOD: Final = "bench.Bench.Say"
"""The unary echo method's full name, as NodeStream calls it."""

Payload = BytesValue
"""Request and reply of the bench service: a protobuf message with bytes."""

PAYLOAD: Final = Payload(value=b"x" * 32)

Context = aio.ServicerContext[Any, Any]


async def say(request: Payload, context: Context) -> Payload:
    """Unary echo."""
    return Payload(value=request.value)


async def chat(requests: AsyncIterator[Payload], context: Context) -> AsyncIterator[Payload]:
    """Bidi-stream echo, one reply per request (an async generator, the common style)."""
    async for request in requests:
        yield Payload(value=request.value)


def bench_handler() -> grpc.GenericRpcHandler[Any, Any]:
    """The bench service: ``Say`` (unary) and ``Chat`` (bidi stream)."""
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "Say": grpc.unary_unary_rpc_method_handler(
            say,
            request_deserializer=Payload.FromString,
            response_serializer=Payload.SerializeToString,
        ),
        "Chat": grpc.stream_stream_rpc_method_handler(
            chat,
            request_deserializer=Payload.FromString,
            response_serializer=Payload.SerializeToString,
        ),
    }
    return grpc.method_handlers_generic_handler(SERVICE, handlers)


UnaryCall = Callable[[Payload], Awaitable[Payload]]


def say_stub(channel: aio.Channel, metadata: Sequence[tuple[str, str]] = ()) -> UnaryCall:
    """A typed caller of ``Say`` on ``channel``, sending ``metadata`` with every call."""
    multi = channel.unary_unary(
        SAY_PATH,
        request_serializer=Payload.SerializeToString,
        response_deserializer=Payload.FromString,
    )
    if not metadata:
        return multi
    md = tuple(metadata)

    def call(request: Payload) -> Awaitable[Payload]:
        return multi(request, metadata=md)

    return call


# ---- child processes ----------------------------------------------------------


@dataclass
class Child:
    """A server process started by a driver."""

    name: str
    proc: subprocess.Popen[str]
    info: dict[str, Any] = field(default_factory=dict)

    def cpu(self) -> float:
        """CPU seconds (user + system, all threads) the child has used."""
        return process_cpu(self.proc.pid)

    def stop(self) -> None:
        """Close its stdin (it exits), kill it if it lingers."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def python_in(tree: Path | None) -> list[str]:
    """The interpreter for code of ``tree`` (None: this checkout); append a script
    or ``-m module``, then arguments. For another tree, this checkout's editable
    install must not lend it modules, so a prelude takes its finder out."""
    if tree is None:
        return [sys.executable]
    return [sys.executable, "-c", _OWN_CODE]


_OWN_CODE = (
    "import runpy, sys\n"
    "sys.meta_path[:] = [f for f in sys.meta_path"
    " if not type(f).__module__.startswith('__editable__')]\n"
    "if sys.argv[1] == '-m':\n"
    "    sys.argv = sys.argv[2:]\n"
    "    runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n"
    "else:\n"
    "    sys.argv = sys.argv[1:]\n"
    "    runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


def spawn(
    name: str,
    module: str,
    *args: str,
    tree: Path | None = None,
    wrapper: Sequence[str] = (),
) -> Child:
    """Start ``python -m module args...`` and wait for its ``READY <json>`` line.

    With ``tree``, the child runs that checkout's code (see ``worktree``); with
    ``wrapper``, under that program (e.g. ``valgrind ...``).
    """
    paths = {} if tree is None else {"PYTHONPATH": str(tree)}
    proc = subprocess.Popen(
        [*wrapper, *python_in(tree), "-m", module, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=tree,
        env={**os.environ, "GRPC_VERBOSITY": "ERROR", **paths},
        stderr=subprocess.DEVNULL if os.environ.get("BENCH_QUIET_CHILDREN") else None,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY"):
        proc.kill()
        raise RuntimeError(f"child {name} did not start: {line!r}")
    info: dict[str, Any] = json.loads(line.removeprefix("READY").strip() or "{}")
    return Child(name, proc, info)


async def stop_all(children: Iterable[Child]) -> None:
    """Stop every child, keeping this event loop running meanwhile (so the
    streams the children close end cleanly here)."""
    await asyncio.gather(*(asyncio.to_thread(child.stop) for child in children))


@contextlib.contextmanager
def worktree(revision: str) -> Iterator[Path]:
    """A temporary checkout of ``revision`` of this repository, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="gorums-bench-") as parent:
        tree = Path(parent) / "tree"
        git = ["git", "-C", str(ROOT)]
        subprocess.run([*git, "worktree", "add", "--detach", "-q", str(tree), revision], check=True)
        glue = tree / "gorums_mw" / "interceptors"
        if not glue.exists():  # a checkout installs interceptors/ as gorums_mw.interceptors
            glue.symlink_to(Path("..") / "interceptors")
        try:
            yield tree
        finally:
            subprocess.run([*git, "worktree", "remove", "--force", str(tree)], check=True)


def announce(info: dict[str, Any]) -> None:
    """Child side: tell the driver we serve."""
    print("READY", json.dumps(info), flush=True)


async def until_stdin_closes() -> None:
    """Child side: return when the driver closes our stdin (or dies)."""
    loop = asyncio.get_running_loop()
    closed: asyncio.Future[None] = loop.create_future()

    def finish() -> None:
        if not closed.done():
            closed.set_result(None)

    def wait() -> None:
        sys.stdin.read()
        loop.call_soon_threadsafe(finish)

    threading.Thread(target=wait, daemon=True).start()
    await closed


def add_nice_option(parser: argparse.ArgumentParser) -> None:
    """``--nice N``: run this process and its children at that priority."""
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="priority change for the benchmark processes (negative needs root; e.g. -10"
        " on a machine shared with other busy processes)",
    )


def apply_nice(increment: int) -> None:
    """Change this process's priority (children started later inherit it)."""
    if increment:
        os.nice(increment)


def process_cpu(pid: int) -> float:
    """CPU seconds used by process ``pid`` so far, all threads (``schedstat``, ns)."""
    total = 0
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return 0.0
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as stat:
                total += int(stat.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended meanwhile
    return total / 1e9


def own_cpu() -> float:
    """CPU seconds this process has used (all threads)."""
    return time.process_time()


# ---- CPU by thread ------------------------------------------------------------

MAIN_THREAD: Final = "asyncio"
"""Name given to a process's main thread (tid == pid), where our processes run asyncio."""


@dataclass(frozen=True)
class CpuSnapshot:
    """The CPU every thread of some processes had used at one moment, and how many
    times each had been given a CPU: ``(pid, tid) -> (thread name, ns, runs)``
    (``/proc/<pid>/task/<tid>/schedstat``: time on CPU, time waiting, timeslices)."""

    threads: dict[tuple[int, int], tuple[str, int, int]]


def cpu_snapshot(pids: Iterable[int]) -> CpuSnapshot:
    """Read every thread of ``pids`` now. A process or thread that is gone is skipped."""
    threads: dict[tuple[int, int], tuple[str, int, int]] = {}
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except FileNotFoundError:
            continue
        for name in tids:
            tid = int(name)
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as stat:
                    fields = stat.read().split()
                with open(f"/proc/{pid}/task/{tid}/comm") as comm:
                    label = comm.read().strip()
            except (FileNotFoundError, ProcessLookupError):
                continue  # the thread ended meanwhile
            if tid == pid:
                label = MAIN_THREAD
            elif label == "python":
                label = "python (not main)"  # grpc.aio's poller; idle helper threads
            threads[(pid, tid)] = (label, int(fields[0]), int(fields[2]))
    return CpuSnapshot(threads)


@dataclass(frozen=True)
class ThreadCpu:
    """CPU of one or more processes split by thread: their main threads (where
    asyncio runs: tid == pid), and every other thread by name (grpc's poller
    thread, ``grpc_global_tim``, ``event_engine``, ...). In seconds, or in
    µs per call after ``per_call``. ``runs``: how many times any of the threads
    was given a CPU (mostly wake-ups; per call after ``per_call``)."""

    main: float = 0.0
    others: dict[str, float] = field(default_factory=dict)
    runs: float = 0.0

    @property
    def other(self) -> float:
        """All threads but the main ones."""
        return sum(self.others.values())

    @property
    def total(self) -> float:
        return self.main + self.other

    def per_call(self, calls: float) -> ThreadCpu:
        """Seconds to µs per call."""
        calls = max(calls, 1.0)
        scale = 1e6 / calls
        others = {k: v * scale for k, v in self.others.items()}
        return ThreadCpu(self.main * scale, others, self.runs / calls)

    def __add__(self, more: ThreadCpu) -> ThreadCpu:
        others = dict(self.others)
        for name, value in more.others.items():
            others[name] = others.get(name, 0.0) + value
        return ThreadCpu(self.main + more.main, others, self.runs + more.runs)

    def to_json(self) -> dict[str, Any]:
        return {"main": self.main, "others": self.others, "runs": self.runs}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ThreadCpu:
        others = {str(k): float(v) for k, v in data["others"].items()}
        return cls(float(data["main"]), others, float(data.get("runs", 0.0)))


def cpu_between(before: CpuSnapshot, after: CpuSnapshot) -> ThreadCpu:
    """CPU used between two snapshots of the same processes, by thread. A thread
    born in between counts from zero; one that ended in between is lost (grpc's
    threads live as long as the process, so this does not happen in practice)."""
    main = 0.0
    others: dict[str, float] = {}
    runs = 0
    for key, (label, ns, slices) in after.threads.items():
        _, ns0, slices0 = before.threads.get(key, (label, 0, 0))
        runs += slices - slices0
        if key[0] == key[1]:
            main += (ns - ns0) / 1e9
        else:
            others[label] = others.get(label, 0.0) + (ns - ns0) / 1e9
    return ThreadCpu(main, others, runs)


def thread_cells(cpu: Sequence[ThreadCpu], *, split: bool = True) -> list[object]:
    """Table cells ``main, other threads, total, runs`` (medians over ``cpu``, µs and
    thread runs per call); without ``split`` (a Go process: no asyncio thread), the
    main and other threads' cells are ``-``."""
    total = median([c.total for c in cpu])
    runs = f"{median([c.runs for c in cpu]):.1f}"
    if not split:
        return ["-", "-", total, runs]
    return [median([c.main for c in cpu]), median([c.other for c in cpu]), total, runs]


def thread_headers(sides: Sequence[str], *, names: bool) -> list[str]:
    """The headers of ``thread_cells``' columns for each of ``sides``, then (with
    ``names``) of a ``thread_names`` column for each."""
    headers: list[str] = []
    for side in sides:
        headers += [f"{side} asyncio", f"{side} grpc threads", f"{side} total", f"{side} runs"]
    if names:
        headers += [f"{side} grpc threads by name" for side in sides]
    return headers


def thread_names(cpu: Sequence[ThreadCpu]) -> str:
    """The non-main threads' median µs per call by thread name, biggest first."""
    names = {name for c in cpu for name in c.others}
    medians = {name: median([c.others.get(name, 0.0) for c in cpu]) for name in names}
    ranked = sorted(medians.items(), key=lambda item: -item[1])
    return ", ".join(f"{name} {_cell(value)}" for name, value in ranked) or "-"


# ---- event loops --------------------------------------------------------------

LOOPS: Final = ("asyncio", "uvloop")
"""Event loops a benchmark process can run on: ``asyncio``'s own, or uvloop
(the ``uvloop`` extra). The library never picks one; a process opts in."""


def run_on(loop: str, main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` to completion on event loop ``loop`` (one of ``LOOPS``)."""
    if loop == "uvloop":
        import uvloop

        uvloop.run(main)
    elif loop == "asyncio":
        asyncio.run(main)
    else:
        main.close()
        raise ValueError(f"unknown event loop {loop!r}; one of {', '.join(LOOPS)}")


# ---- statistics and tables ----------------------------------------------------


def median(values: Sequence[float]) -> float:
    """The median (NaN for none)."""
    return statistics.median(values) if values else float("nan")


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of already sorted values, nearest rank."""
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values)) - 1))
    return sorted_values[index]


def spread(values: Sequence[float]) -> str:
    """``min-max`` of values, for a table cell."""
    if not values:
        return "-"
    return f"{min(values):.2f}-{max(values):.2f}"


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print a Markdown table (pastes straight into BENCHMARKS.md)."""
    cells = [[str(h) for h in headers], *[[_cell(value) for value in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    print(f"\n{title}\n")
    for index, row in enumerate(cells):
        print("| " + " | ".join(value.ljust(widths[i]) for i, value in enumerate(row)) + " |")
        if index == 0:
            print("| " + " | ".join("-" * width for width in widths) + " |")
    sys.stdout.flush()


def _cell(value: object) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 100:
            return f"{value:.0f}"
        return f"{value:.2f}"
    return str(value)


def machine() -> str:
    """One line describing the machine and the versions that matter."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.partition(":")[2].strip()
                    break
    except OSError:
        pass
    return (
        f"nproc={os.cpu_count()} cpu={model!r} python={platform.python_version()}"
        f" grpcio={grpc.__version__}"
    )
