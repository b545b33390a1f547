"""Item 5: gorums-mw next to the real Go Gorums, in every direction.

    .venv/bin/python -m bench.interop [--rounds 3] [--seconds 2] [--go-peer PATH]

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from grpc import aio

from bench._common import (
    Child,
    Context,
    add_nice_option,
    announce,
    apply_nice,
    machine,
    median,
    print_table,
    spawn,
    spread,
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
LIMIT: Final = "grpc.aio limit"
BATCHED_LIMIT: Final = "grpc.aio limit, batched"
ROWS: Final = (
    GO_GO,
    "gorums-mw -> gorums-mw",
    "gorums-mw -> gorums-mw, plain",
    "Go -> gorums-mw",
    "gorums-mw -> Go",
    LIMIT,
    BATCHED_LIMIT,
)
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


async def run_client(kind: str, addrs: Sequence[str], conc: int, seconds: float) -> None:
    """Quorum calls for ``seconds`` with ``conc`` in flight; print ``RESULT <json>``
    with the fields Go's ``bench`` prints."""
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
        latencies, errors, elapsed = await _load(call, conc, seconds)
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
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            data: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
            return Result(data["rate"], data["p50_ms"], data["p99_ms"], data["errors"])
    raise RuntimeError(f"{command[:3]} gave no RESULT: {done.stdout!r} {done.stderr[-2000:]!r}")


def drive(go_peer: Path, rounds: int, seconds: float) -> None:
    children: list[Child] = []
    try:
        go = [spawn_go(go_peer, i) for i in range(1, SIZE + 1)]
        py = [
            spawn(f"gorums {i}", "bench.interop", "--serve", "gorums", "--id", str(i), "--addrs", a)
            for i, a in enumerate((f"127.0.0.1:{p}" for p in free_ports(SIZE)), start=1)
        ]
        raw = [spawn(f"raw {i}", "bench.interop", "--serve", "raw") for i in range(1, SIZE + 1)]
        children = [*go, *py, *raw]
        go_addrs = ",".join(child.info["addr"] for child in go)
        py_addrs = ",".join(child.info["addr"] for child in py)
        raw_addrs = ",".join(child.info["addr"] for child in raw)
        python = [sys.executable, "-m", "bench.interop", "--client"]
        commands = {
            GO_GO: [str(go_peer), "bench", "--addrs", go_addrs],
            "gorums-mw -> gorums-mw": [*python, "gorums", "--addrs", py_addrs],
            "gorums-mw -> gorums-mw, plain": [*python, "gorums-plain", "--addrs", py_addrs],
            "Go -> gorums-mw": [str(go_peer), "bench", "--addrs", py_addrs],
            "gorums-mw -> Go": [*python, "gorums", "--addrs", go_addrs],
            LIMIT: [*python, "raw", "--addrs", raw_addrs],
            BATCHED_LIMIT: [*python, "raw-batched", "--addrs", raw_addrs],
        }
        samples: dict[tuple[str, int], list[Result]] = {}
        for index in range(rounds):
            for conc in CONCURRENCY:
                shift = (index + conc) % len(ROWS)
                for row in ROWS[shift:] + ROWS[:shift]:
                    samples.setdefault((row, conc), []).append(
                        measure(commands[row], conc, seconds)
                    )
            print(f"round {index + 1}/{rounds} done", file=sys.stderr, flush=True)
    finally:
        for child in children:
            child.stop()
    report(samples, rounds)


def report(samples: dict[tuple[str, int], list[Result]], rounds: int) -> None:
    print(machine())

    def ratio(row: str, base: str) -> str:
        """Median (min-max) over rounds of ``row``'s throughput over ``base``'s at 64."""
        pairs = zip(samples[(row, 64)], samples[(base, 64)], strict=True)
        ratios = [mine.rate / theirs.rate for mine, theirs in pairs]
        return f"{median(ratios):.2f} ({spread(ratios)})"

    rows: list[list[object]] = []
    for row in ROWS:
        one = samples[(row, 1)]
        many = samples[(row, 64)]
        rows.append(
            [
                row,
                median([s.p50_ms for s in one]),
                median([s.p99_ms for s in one]),
                median([s.rate for s in many]),
                ratio(row, GO_GO),
                ratio(row, LIMIT),
                ratio(row, BATCHED_LIMIT),
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
        rows,
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
    add_nice_option(parser)
    args = parser.parse_args(argv)
    apply_nice(args.nice)
    if args.serve == "gorums":
        asyncio.run(serve_gorums(args.id, args.addrs))
    elif args.serve == "raw":
        asyncio.run(serve_raw())
    elif args.client:
        asyncio.run(run_client(args.client, args.addrs.split(","), args.conc, args.seconds))
    else:
        drive(go_peer_path(args.go_peer), args.rounds, args.seconds)


if __name__ == "__main__":
    main()
