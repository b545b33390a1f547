"""A client of the storage replicas for fault runs: ``python -m tests.faults.client``.

It runs ``--workers`` loops at once, each one operation at a time: a write of
a value nobody else writes, or a read, of a random key, through a random
replica's ``WriteQuorum`` or ``ReadQuorum``. It is an ordinary grpc.aio
client (no ``gorums-addr``: replicas serve it as an external client), with
keepalive so that a connection cut off by a fault is replaced. Each
operation is appended to ``--history`` as a JSON line
(``tests.faults.history.Record``) once it ends.

A write is recorded ``fail`` only when it certainly had no effect: the call
never reached a replica, or the replica refused it before writing (its read
phase failed). Any other failed write is ``unknown``: it may have reached
some replicas, and a later read may reveal it. A failed read is ``fail``.

It prints ``ready`` once it runs; on a ``stop`` line or the end of stdin it
starts no more operations, and prints ``done <operations>`` once the ones in
flight have ended (each within ``--timeout``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import time
from typing import IO, Literal

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

from grpc import StatusCode, aio

from examples import storage_pb2, storage_pb2_grpc
from gorums_mw import Backoff, Keepalive
from tests.faults.history import Outcome, Record

PAUSE = 0.05
"""Mean seconds a worker waits between operations: about 20 operations/s each, so
a run's clients leave the 2-core machine room for the replicas."""
REFUSED = (
    "failed to connect to all addresses",  # grpc: the request was never sent
    "storage.Storage.Read:",  # WriteQuorum's read phase failed (or could not start): no write
)
"""Status details that show a write had no effect."""


def parse_replicas(text: str) -> dict[int, str]:
    """``1=10.0.0.1:9001,2=...`` → ``{1: "10.0.0.1:9001", ...}``."""
    return {int(node): addr for node, _, addr in (item.partition("=") for item in text.split(","))}


def outcome(op: str, code: StatusCode, details: str) -> Outcome:
    """How an operation that ended with ``code`` and ``details`` counts in the history."""
    if code == StatusCode.OK:
        return "ok"
    if op == "read" or any(sign in details for sign in REFUSED):
        return "fail"
    return "unknown"


class Client:
    """The workers of one client process and the history they append to."""

    def __init__(
        self,
        args: argparse.Namespace,
        history: IO[str],
        stubs: dict[int, storage_pb2_grpc.StorageAsyncStub],
    ) -> None:
        self.args = args
        self.history = history
        self.stubs = stubs
        self.stop = asyncio.Event()
        self.done = 0

    async def worker(self, number: int) -> None:
        """Run operations until ``stop`` is set."""
        rng = random.Random(f"{self.args.seed}-{self.args.name}-{number}")
        n = 0
        while not self.stop.is_set():
            key = f"k{rng.randrange(self.args.keys)}"
            replica = rng.choice(sorted(self.stubs))
            if rng.random() < 0.5:
                await self.run("write", key, f"{self.args.name}.{number}.{n}", replica)
            else:
                await self.run("read", key, None, replica)
            n += 1
            with contextlib.suppress(TimeoutError):  # pacing; a stop ends the wait at once
                await asyncio.wait_for(self.stop.wait(), rng.uniform(0, 2 * PAUSE))

    async def run(
        self, op: Literal["read", "write"], key: str, value: str | None, replica: int
    ) -> None:
        """Write ``value`` to ``key`` (or read it) through ``replica``; append the record."""
        stub, timeout = self.stubs[replica], self.args.timeout
        invoke = time.monotonic()
        try:
            if value is not None:
                await stub.WriteQuorum(
                    storage_pb2.WriteRequest(key=key, value=value), timeout=timeout
                )
            else:
                value = (
                    await stub.ReadQuorum(storage_pb2.ReadRequest(key=key), timeout=timeout)
                ).value
        except aio.AioRpcError as exc:
            code, details = exc.code(), exc.details() or ""
        else:
            code, details = StatusCode.OK, ""
        complete = time.monotonic()
        record = Record(
            self.args.name, op, key, value, replica, invoke, complete,
            outcome(op, code, details), code.name, details[:300],
        )  # fmt: skip
        self.history.write(record.to_json() + "\n")
        self.done += 1


def _watch_stdin(stop: asyncio.Event) -> None:
    """Set ``stop`` on a ``stop`` line or the end of stdin."""
    loop = asyncio.get_running_loop()

    def read() -> None:
        data = os.read(0, 4096)
        if not data or b"stop" in data:
            loop.remove_reader(0)
            stop.set()

    loop.add_reader(0, read)


async def run(args: argparse.Namespace, history: IO[str]) -> int:
    """Run the workers until told to stop; return the number of operations recorded."""
    options = [
        *Backoff(maximum=0.5).channel_options(),
        *Keepalive(args.keepalive, args.keepalive).channel_options(),
    ]
    channels = {
        node: aio.insecure_channel(addr, options=options) for node, addr in args.replicas.items()
    }
    stubs: dict[int, storage_pb2_grpc.StorageAsyncStub] = {
        node: storage_pb2_grpc.StorageStub(channel) for node, channel in channels.items()
    }
    client = Client(args, history, stubs)
    _watch_stdin(client.stop)
    print("ready", flush=True)
    try:
        await asyncio.gather(*(client.worker(number) for number in range(args.workers)))
    finally:
        for channel in channels.values():
            await channel.close(None)
    return client.done


def main(argv: list[str] | None = None) -> None:
    """Parse the flags, run, and print ``done <operations>``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("--replicas", type=parse_replicas, required=True)
    parser.add_argument("--history", required=True)
    parser.add_argument("--seed", required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--keys", type=int, required=True)
    parser.add_argument("--timeout", type=float, required=True)
    parser.add_argument("--keepalive", type=float, required=True)
    args = parser.parse_args(argv)
    with open(args.history, "a", buffering=1) as history:  # a line per write
        done = asyncio.run(run(args, history))
    print(f"done {done}", flush=True)


if __name__ == "__main__":
    main()
