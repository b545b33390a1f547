"""Item 5: gorums-mw next to the real Go Gorums, in every direction.

    .venv/bin/python -m bench.interop [--rounds 3] [--seconds 2] [--go-peer PATH]
        [--loops asyncio,uvloop] [--thread-names]

Three servers, and a client making majority quorum calls of upstream's
``WriteQC`` (``proto.Storage``, a 16-byte value) with 1 and 64 calls in
flight; servers and the client each in their own process, on loopback:

- ``Go -> Go``: ``gorums-go-peer server`` (three), ``gorums-go-peer bench``;
- ``gorums-mw -> gorums-mw``: gorums-mw servers (``InboundManager``, the
  identity interceptor, NodeStream, upstream's Storage in Python; three), and a
  gorums-mw client (``OutboundManager`` + ``Configuration.quorum_call``),
  which uses batched streams with gorums-mw servers; ``, plain``: the same
  with ``batching=False`` (one message per gRPC message, as with Go);
- ``Go -> gorums-mw`` and ``gorums-mw -> Go``: the two mixed (plain streams:
  Go has no batched form);
- ``grpc.aio limit``: the same majority pattern with no gorums code: a bidi
  stream per server echoing each message, and a client that writes each call
  to the three streams and returns once two echoes with its ID are back;
  ``, batched``: each write carries every message queued by then.

With ``--loops asyncio,uvloop``, the ``gorums-mw -> gorums-mw`` and
``grpc.aio limit`` rows also run with every Python process of the row (client
and servers) on uvloop, in the same rounds: rows ``..., uvloop``.

Every row also gives CPU per call, split by thread: the asyncio (main) thread
of the Python processes against all their other threads (grpc's poller,
timer and event-engine threads), for the client and summed over the three
servers; Go processes only as a total. A Python client reads its own and the
servers' ``/proc/<pid>/task/*/schedstat`` at the two ends of its measured
window; for Go's ``bench`` client the driver reads them at fixed times inside
its warm-up and measured window (no start-up or connection in them), and
divides by its call rate over that time. A last table gives the ratios the
targets of issue 21 use.

The Go peer comes from ``--go-peer``, else ``GORUMS_GO_PEER``, else
``../shared/interop/go-peer/gorums-go-peer`` beside the repository. Each
round runs every row once per concurrency, in rotating order; the table
shows medians over rounds, and throughput as a fraction of Go -> Go and of
the two grpc.aio limits measured in the same round (median and min-max).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from grpc import aio

from bench._common import (
    LOOPS,
    Child,
    Context,
    CpuSnapshot,
    ThreadCpu,
    add_nice_option,
    announce,
    apply_nice,
    cpu_between,
    cpu_snapshot,
    machine,
    median,
    print_table,
    run_on,
    spawn,
    spread,
    thread_cells,
    thread_headers,
    thread_names,
    until_stdin_closes,
)
from gorums_mw import (
    HandlerRegistry,
    InboundManager,
    OutboundManager,
    add_node_stream_service,
    with_nodes,
)
from gorums_mw.interceptors import PeerIdentityInterceptor
from gorums_mw.testing import free_ports
from tests.interop import goproc
from tests.interop.proto import storage_pb2_grpc
from tests.interop.storage import WRITE_QC, Storage, WriteRequest, WriteResponse

DEFAULT_GO_PEER: Final = goproc.ROOT.parent / "shared" / "interop" / "go-peer" / "gorums-go-peer"
SIZE: Final = 3
VALUE: Final = "x" * 16
CONCURRENCY: Final = (1, 64)
GO_GO: Final = "Go -> Go"
OURS: Final = "gorums-mw -> gorums-mw"
LIMIT: Final = "grpc.aio limit"
BATCHED_LIMIT: Final = "grpc.aio limit, batched"
GO: Final = "go"
"""A row's client or servers are the Go peer."""


@dataclass(frozen=True)
class Row:
    """A table row: which client (``GO`` or one of ``CLIENTS``) against which
    servers (``GO``, ``gorums`` or ``raw``), the Python processes on ``loop``."""

    label: str
    client: str
    servers: str
    loop: str = "asyncio"


BASE_ROWS: Final = (
    Row(GO_GO, GO, GO),
    Row(OURS, "gorums", "gorums"),
    Row(f"{OURS}, plain", "gorums-plain", "gorums"),
    Row("Go -> gorums-mw", GO, "gorums"),
    Row("gorums-mw -> Go", "gorums", GO),
    Row(LIMIT, "raw", "raw"),
    Row(BATCHED_LIMIT, "raw-batched", "raw"),
)


def rows_for(loops: Sequence[str]) -> list[Row]:
    """The rows, with ``gorums-mw -> gorums-mw`` and ``grpc.aio limit`` again on each
    loop but asyncio (the others stay on asyncio)."""
    rows = list(BASE_ROWS)
    for loop in loops:
        if loop != "asyncio":
            rows.append(Row(f"{OURS}, {loop}", "gorums", "gorums", loop))
            rows.append(Row(f"{LIMIT}, {loop}", "raw", "raw", loop))
    return rows


LENGTH_BYTES: Final = 4
CLIENTS: Final = ("gorums", "gorums-plain", "raw", "raw-batched")
ECHO_SERVICE: Final = "bench.RawEcho"
ECHO_PATH: Final = "/bench.RawEcho/Echo"
ID_BYTES: Final = 8


# ---- servers (child processes) --------------------------------------------------


async def serve_gorums(node_id: int, addr: str) -> None:
    """A gorums-mw server of upstream's Storage: InboundManager, interceptor, NodeStream."""
    handlers = HandlerRegistry()
    # A HandlerRegistry takes the generated registration as a server does.
    storage_pb2_grpc.add_StorageServicer_to_server(Storage(node_id), handlers)  # type: ignore[arg-type]
    manager = InboundManager(node_id, with_nodes({node_id: addr}), handlers=handlers)
    server = aio.server(interceptors=[PeerIdentityInterceptor(manager)])
    add_node_stream_service(manager, server)
    server.add_insecure_port(addr)
    await server.start()
    announce({"addr": addr})
    await until_stdin_closes()
    await server.stop(None)


def _same(data: bytes) -> bytes:
    return data


async def echo(requests: AsyncIterator[bytes], context: Context) -> AsyncIterator[bytes]:
    """Bidi-stream echo of raw bytes, one reply per message."""
    async for request in requests:
        yield request


async def serve_raw() -> None:
    """A plain grpc.aio server with one bidi-stream echo method."""
    server = aio.server()
    handler = grpc.stream_stream_rpc_method_handler(
        echo, request_deserializer=_same, response_serializer=_same
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(ECHO_SERVICE, {"Echo": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    announce({"addr": f"127.0.0.1:{port}"})
    await until_stdin_closes()
    await server.stop(None)


# ---- clients (child processes) --------------------------------------------------

Call = Callable[[], Awaitable[object]]


def _request() -> WriteRequest:
    now = Timestamp()
    now.GetCurrentTime()
    return WriteRequest(key="b", value=VALUE, time=now)


class RawQuorum:
    """The majority pattern on bare grpc.aio: one bidi stream per server, one writer task
    per stream (grpc forbids concurrent writes), replies matched by an ID prefix.

    Batched, each write carries every message queued by then (length-prefixed),
    and the servers echo a write as a whole, as gorums-mw's batched streams do.
    """

    def __init__(self, addrs: Sequence[str], *, batched: bool) -> None:
        self.batched = batched
        self.channels = [aio.insecure_channel(addr) for addr in addrs]
        self.needed = len(addrs) // 2 + 1
        self.ids = itertools.count(1)
        self.pending: dict[int, tuple[asyncio.Future[None], list[int]]] = {}
        self.queues: list[asyncio.Queue[bytes]] = []
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        for channel in self.channels:
            stream = channel.stream_stream(
                ECHO_PATH, request_serializer=_same, response_deserializer=_same
            )(None, wait_for_ready=True)
            queue: asyncio.Queue[bytes] = asyncio.Queue()
            self.queues.append(queue)
            self.tasks.append(asyncio.create_task(self._write(stream, queue)))
            self.tasks.append(asyncio.create_task(self._read(stream)))

    async def _write(self, stream: Any, queue: asyncio.Queue[bytes]) -> None:
        while True:
            message = await queue.get()
            if self.batched:
                parts = [message]
                while not queue.empty():
                    parts.append(queue.get_nowait())
                message = b"".join(len(part).to_bytes(LENGTH_BYTES) + part for part in parts)
            await stream.write(message)

    async def _read(self, stream: Any) -> None:
        while True:
            reply = await stream.read()
            if not isinstance(reply, bytes):
                return
            if not self.batched:
                self._arrived(reply)
                continue
            offset = 0
            while offset < len(reply):
                size = int.from_bytes(reply[offset : offset + LENGTH_BYTES])
                offset += LENGTH_BYTES
                self._arrived(reply[offset : offset + size])
                offset += size

    def _arrived(self, reply: bytes) -> None:
        entry = self.pending.get(int.from_bytes(reply[:ID_BYTES]))
        if entry is None:
            return
        future, count = entry
        count[0] += 1
        if count[0] >= self.needed and not future.done():
            future.set_result(None)

    async def call(self) -> None:
        call_id = next(self.ids)
        message = call_id.to_bytes(ID_BYTES) + _request().SerializeToString()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending[call_id] = (future, [0])
        try:
            for queue in self.queues:
                queue.put_nowait(message)
            async with asyncio.timeout(5):
                await future
        finally:
            del self.pending[call_id]

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await asyncio.gather(*(channel.close(None) for channel in self.channels))


async def run_client(
    kind: str, addrs: Sequence[str], conc: int, seconds: float, cpu_pids: Sequence[int] = ()
) -> None:
    """Quorum calls for ``seconds`` with ``conc`` in flight; print ``RESULT <json>``
    with the fields Go's ``bench`` prints, and CPU per call by thread (µs) over the
    measured window: this process's (``client``) and the processes ``cpu_pids``'
    (``servers``)."""
    nodes = with_nodes({i: addr for i, addr in enumerate(addrs, start=1)})
    dialer = (
        OutboundManager(nodes, batching=kind == "gorums")
        if kind in ("gorums", "gorums-plain")
        else None
    )
    raw = RawQuorum(addrs, batched=kind == "raw-batched") if dialer is None else None
    call: Call
    if dialer is not None:
        await dialer.start()
        await dialer.wait_connected(timeout=10)
        config = dialer.config()

        def call() -> Awaitable[object]:
            return config.quorum_call(WRITE_QC, _request(), WriteResponse, timeout=5)

    else:
        assert raw is not None
        await raw.start()
        call = raw.call
    try:
        for _ in range(20):  # connected: warm up
            await call()
        await _load(call, conc, 0.5)
        me = [os.getpid()]
        s0, c0 = cpu_snapshot(cpu_pids), cpu_snapshot(me)
        latencies, errors, elapsed = await _load(call, conc, seconds)
        c1, s1 = cpu_snapshot(me), cpu_snapshot(cpu_pids)
    finally:
        if dialer is not None:
            await dialer.stop()
        if raw is not None:
            await raw.close()
    latencies.sort()

    def pct(q: float) -> float:  # as Go's bench: lat[int(q * (n - 1))]
        return latencies[int(q * (len(latencies) - 1))] * 1e3 if latencies else -1.0

    result = {
        "calls": len(latencies),
        "errors": errors,
        "seconds": elapsed,
        "rate": len(latencies) / elapsed,
        "p50_ms": pct(0.5),
        "p99_ms": pct(0.99),
        "conc": conc,
        "client": cpu_between(c0, c1).per_call(len(latencies)).to_json(),
        "servers": cpu_between(s0, s1).per_call(len(latencies)).to_json(),
    }
    print("RESULT", json.dumps(result), flush=True)


async def _load(call: Call, conc: int, seconds: float) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter()
    end = start + seconds

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < end:
            began = time.perf_counter()
            try:
                await call()
            except Exception:
                errors += 1
                continue
            latencies.append(time.perf_counter() - began)

    await asyncio.gather(*(worker() for _ in range(conc)))
    return latencies, errors, time.perf_counter() - start


# ---- driver ---------------------------------------------------------------------


@dataclass
class Result:
    rate: float
    p50_ms: float
    p99_ms: float
    errors: int
    client: ThreadCpu = field(default_factory=ThreadCpu)  # µs per call
    servers: ThreadCpu = field(default_factory=ThreadCpu)  # µs per call, summed

    @classmethod
    def parse(cls, output: str) -> Result | None:
        """From a client's ``RESULT <json>`` line, if ``output`` has one."""
        for line in output.splitlines():
            if line.startswith("RESULT "):
                data: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
                cpu = {
                    side: ThreadCpu.from_json(data[side]) if side in data else ThreadCpu()
                    for side in ("client", "servers")
                }
                return cls(
                    data["rate"],
                    data["p50_ms"],
                    data["p99_ms"],
                    data["errors"],
                    cpu["client"],
                    cpu["servers"],
                )
        return None


def go_peer_path(option: str | None) -> Path:
    """``option``, else ``GORUMS_GO_PEER``, else ``DEFAULT_GO_PEER``; resolved as the tests do."""
    value = option or os.environ.get(goproc.ENV_VAR) or str(DEFAULT_GO_PEER)
    path = goproc.in_repository(value)
    if not goproc.is_executable(path):
        raise SystemExit(f"no Go peer at {path}: give --go-peer or set GORUMS_GO_PEER")
    return path


def spawn_go(go_peer: Path, node_id: int) -> Child:
    """Start ``gorums-go-peer server`` and wait for its ``READY <addr>`` line."""
    proc = subprocess.Popen(
        [str(go_peer), "server", "--id", str(node_id), "--seconds", "3600"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        proc.kill()
        raise RuntimeError(f"Go server {node_id} did not start: {line!r}")
    return Child(f"go {node_id}", proc, {"addr": line.split()[1]})


def measure(command: Sequence[str], conc: int, seconds: float) -> Result:
    """Run one client process; parse its ``RESULT`` line."""
    done = subprocess.run(
        [*command, "--conc", str(conc), "--seconds", str(seconds)],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
        env={**os.environ, "GRPC_VERBOSITY": "ERROR"},
    )
    result = Result.parse(done.stdout)
    if result is None:
        raise RuntimeError(f"{command[:3]} gave no RESULT: {done.stdout!r} {done.stderr[-2000:]!r}")
    return result


GO_WARMUP: Final = 1.0
"""Seconds Go's ``bench`` warms up (its ``--warmup``) before its measured window."""
GO_SETTLED: Final = 0.5
"""Seconds after starting Go's ``bench`` when it has started and connected (it runs
calls from then on: its warm-up, then its measured window)."""
GO_END_MARGIN: Final = 0.05
"""Seconds before the end of its measured window when the driver reads its CPU."""


def measure_go(command: Sequence[str], conc: int, seconds: float, servers: Sequence[int]) -> Result:
    """Run Go's ``bench`` client, ``command``; parse its ``RESULT`` line. CPU by
    thread of it and of the processes ``servers``, per call: read at fixed times
    after its start and connection and before the end of its measured window
    (the window is ``GO_WARMUP`` s after its first call; its warm-up calls are
    calls like any other), over its measured call rate times the time between."""
    proc = subprocess.Popen(
        [
            *command,
            *("--conc", str(conc), "--seconds", str(seconds), "--warmup", str(GO_WARMUP)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "GRPC_VERBOSITY": "ERROR"},
    )
    started = time.perf_counter()
    try:
        time.sleep(GO_SETTLED)
        s0, c0, t0 = cpu_snapshot(servers), cpu_snapshot([proc.pid]), time.perf_counter()
        time.sleep(max(0.0, started + GO_WARMUP + seconds - GO_END_MARGIN - t0))
        t1, c1, s1 = time.perf_counter(), cpu_snapshot([proc.pid]), cpu_snapshot(servers)
        out, err = proc.communicate(timeout=seconds + 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    result = Result.parse(out)
    if result is None:
        raise RuntimeError(f"{command[:3]} gave no RESULT: {out!r} {err[-2000:]!r}")
    calls = result.rate * (t1 - t0)
    result.client = _cpu(c0, c1, calls)
    result.servers = _cpu(s0, s1, calls)
    return result


def _cpu(before: CpuSnapshot, after: CpuSnapshot, calls: float) -> ThreadCpu:
    return cpu_between(before, after).per_call(calls)


def spawn_servers(kind: str, loop: str, go_peer: Path) -> list[Child]:
    """Three servers of ``kind`` (``GO``, ``gorums``, ``raw``), Python ones on ``loop``."""
    if kind == GO:
        return [spawn_go(go_peer, i) for i in range(1, SIZE + 1)]
    on = ("--loop", loop)
    if kind == "raw":
        return [
            spawn(f"raw {i} ({loop})", "bench.interop", "--serve", "raw", *on)
            for i in range(1, SIZE + 1)
        ]
    return [
        spawn(
            f"gorums {i} ({loop})",
            "bench.interop",
            *("--serve", "gorums", "--id", str(i), "--addrs", a, *on),
        )
        for i, a in enumerate((f"127.0.0.1:{p}" for p in free_ports(SIZE)), start=1)
    ]


Samples = dict[tuple[str, int], list[Result]]


def drive(
    go_peer: Path, rounds: int, seconds: float, loops: Sequence[str], show_names: bool
) -> None:
    rows = rows_for(loops)
    children: list[Child] = []
    try:
        servers: dict[tuple[str, str], list[Child]] = {}
        for row in rows:
            key = (row.servers, "asyncio" if row.servers == GO else row.loop)
            if key not in servers:
                servers[key] = spawn_servers(row.servers, row.loop, go_peer)
                children += servers[key]

        def run(row: Row, conc: int) -> Result:
            group = servers[(row.servers, "asyncio" if row.servers == GO else row.loop)]
            addrs = ",".join(child.info["addr"] for child in group)
            pids = [child.proc.pid for child in group]
            if row.client == GO:
                return measure_go([str(go_peer), "bench", "--addrs", addrs], conc, seconds, pids)
            python = [sys.executable, "-m", "bench.interop", "--client", row.client]
            python += ["--loop", row.loop, "--cpu-pids", ",".join(map(str, pids))]
            return measure([*python, "--addrs", addrs], conc, seconds)

        samples: Samples = {}
        for index in range(rounds):
            for conc in CONCURRENCY:
                shift = (index + conc) % len(rows)
                for row in rows[shift:] + rows[:shift]:
                    samples.setdefault((row.label, conc), []).append(run(row, conc))
            print(f"round {index + 1}/{rounds} done", file=sys.stderr, flush=True)
    finally:
        for child in children:
            child.stop()
    report(samples, rounds, rows, show_names)


def report(samples: Samples, rounds: int, rows: Sequence[Row], show_names: bool = False) -> None:
    print(machine())

    def ratio(row: str, base: str) -> str:
        """Median (min-max) over rounds of ``row``'s throughput over ``base``'s at 64."""
        pairs = zip(samples[(row, 64)], samples[(base, 64)], strict=True)
        ratios = [mine.rate / theirs.rate for mine, theirs in pairs]
        return f"{median(ratios):.2f} ({spread(ratios)})"

    cells: list[list[object]] = []
    for row in rows:
        one = samples[(row.label, 1)]
        many = samples[(row.label, 64)]
        cells.append(
            [
                row.label,
                median([s.p50_ms for s in one]),
                median([s.p99_ms for s in one]),
                median([s.rate for s in many]),
                ratio(row.label, GO_GO),
                ratio(row.label, LIMIT),
                ratio(row.label, BATCHED_LIMIT),
                median([s.p50_ms for s in many]),
                median([s.p99_ms for s in many]),
                sum(s.errors for s in (*one, *many)),
            ]
        )
    print_table(
        f"WriteQC, majority of 3 (client -> servers; medians of {rounds} rounds)",
        [
            "client -> servers",
            "p50 ms @1",
            "p99 ms @1",
            "calls/s @64",
            "x Go -> Go",
            "x grpc.aio limit",
            "x grpc.aio limit, batched",
            "p50 ms @64",
            "p99 ms @64",
            "errors",
        ],
        cells,
    )
    report_cpu(samples, rows, show_names)
    report_targets(samples, rows)


def report_cpu(samples: Samples, rows: Sequence[Row], show_names: bool) -> None:
    """CPU µs per call by thread, client and servers, at each concurrency."""
    cells: list[list[object]] = []
    for conc in CONCURRENCY:
        for row in rows:
            runs = samples[(row.label, conc)]
            client = [s.client for s in runs]
            servers = [s.servers for s in runs]
            line: list[object] = [row.label, conc]
            line += thread_cells(client, split=row.client != GO)
            line += thread_cells(servers, split=row.servers != GO)
            if show_names:
                line.append(thread_names(client) if row.client != GO else "-")
                line.append(thread_names(servers) if row.servers != GO else "-")
            cells.append(line)
    headers = ["client -> servers", "in flight"]
    headers += thread_headers(("client", "servers"), names=show_names)
    print_table(
        "CPU µs per call by thread: the asyncio (main) thread and all others (grpc's poller"
        " thread, timer, event engine); runs: times any thread got a CPU, per call;"
        " servers summed; Go processes as a total; medians",
        headers,
        cells,
    )


def report_targets(samples: Samples, rows: Sequence[Row]) -> None:
    """Issue 21's ratios for each ``gorums-mw -> gorums-mw`` row, per round, then the
    median (min-max): p50 at 1 in flight over the raw fan-out's (the ``grpc.aio
    limit`` row on the same loop, and on asyncio) and over Go -> Go's; calls/s at
    64 over Go -> Go's; client CPU per call at 1 in flight over Go's client's and
    over the raw fan-out client's.
    The raw fan-out's own rows follow: what the stack allows by the same measures."""

    def ratio(
        mine: Sequence[Result], base: Sequence[Result], key: Callable[[Result], float]
    ) -> str:
        ratios = [key(a) / key(b) for a, b in zip(mine, base, strict=True) if key(b) > 0]
        return f"{median(ratios):.2f} ({spread(ratios)})" if ratios else "-"

    def p50(result: Result) -> float:
        return result.p50_ms

    def rate(result: Result) -> float:
        return result.rate

    def client_cpu(result: Result) -> float:
        return result.client.total

    loops = sorted({row.loop for row in rows}, key=LOOPS.index)
    cells: list[list[object]] = []
    chosen = [row for row in rows if row.client == row.servers == "gorums"]
    chosen += [row for row in rows if row.client == row.servers == "raw"]
    for row in chosen:
        one, many = samples[(row.label, 1)], samples[(row.label, 64)]
        limit = LIMIT if row.loop == "asyncio" else f"{LIMIT}, {row.loop}"
        line: list[object] = [row.label, ratio(one, samples[(limit, 1)], p50)]
        if len(loops) > 1:
            line.append(ratio(one, samples[(LIMIT, 1)], p50))
        line += [
            ratio(one, samples[(GO_GO, 1)], p50),
            ratio(many, samples[(GO_GO, 64)], rate),
            ratio(one, samples[(GO_GO, 1)], client_cpu),
            ratio(one, samples[(limit, 1)], client_cpu),
        ]
        cells.append(line)
    headers = ["client -> servers", "p50 @1 x raw fan-out, same loop (target <= 1.25)"]
    if len(loops) > 1:
        headers.append("p50 @1 x raw fan-out on asyncio")
    headers += [
        "p50 @1 x Go -> Go (target <= 4)",
        "calls/s @64 x Go -> Go (target >= 0.75)",
        "client CPU/call @1 x Go client's (target <= 2)",
        "client CPU/call @1 x raw fan-out's, same loop",
    ]
    print_table(
        "Issue 21 targets: ratios per round, median (min-max); raw fan-out = grpc.aio limit",
        headers,
        cells,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--serve", choices=("gorums", "raw"), help=argparse.SUPPRESS)
    parser.add_argument("--id", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--client", choices=CLIENTS, help=argparse.SUPPRESS)
    parser.add_argument("--addrs", help=argparse.SUPPRESS)
    parser.add_argument("--conc", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0, help="measured seconds per run")
    parser.add_argument("--go-peer", help="the gorums-go-peer binary")
    parser.add_argument(
        "--loops",
        default="asyncio",
        help="comma-separated event loops (asyncio, uvloop): the gorums-mw -> gorums-mw and"
        " grpc.aio limit rows run again on each loop but asyncio, in the same rounds",
    )
    parser.add_argument(
        "--thread-names",
        action="store_true",
        help="also break the non-main threads' CPU down by thread name",
    )
    parser.add_argument("--loop", choices=LOOPS, default="asyncio", help=argparse.SUPPRESS)
    parser.add_argument("--cpu-pids", default="", help=argparse.SUPPRESS)
    add_nice_option(parser)
    args = parser.parse_args(argv)
    apply_nice(args.nice)
    if args.serve == "gorums":
        run_on(args.loop, serve_gorums(args.id, args.addrs))
    elif args.serve == "raw":
        run_on(args.loop, serve_raw())
    elif args.client:
        pids = [int(pid) for pid in args.cpu_pids.split(",") if pid]
        addrs = args.addrs.split(",")
        run_on(args.loop, run_client(args.client, addrs, args.conc, args.seconds, pids))
    else:
        loops = [loop.strip() for loop in args.loops.split(",") if loop.strip()]
        unknown = [loop for loop in loops if loop not in LOOPS]
        if unknown or "asyncio" not in loops:
            parser.error(f"--loops: a list of {', '.join(LOOPS)}, with asyncio (the baseline)")
        drive(go_peer_path(args.go_peer), args.rounds, args.seconds, loops, args.thread_names)


if __name__ == "__main__":
    main()
