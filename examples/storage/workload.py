"""The client side: a scripted workload of writes and reads, checked as it runs.

The client is an ordinary grpc.aio client (no ``gorums-addr``: replicas
serve it as an external client). It sends each operation to one replica,
round robin, and when that replica fails the call it tries the next one.
"""

from __future__ import annotations

import random
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from grpc import aio

from examples import storage_pb2, storage_pb2_grpc
from gorums_mw import Backoff

Hook = Callable[[int], Awaitable[None]]
"""Called with the number of operations done, before each next one."""


class Register:
    """What a sequential client may read back: a linearizable register per key.

    After a completed write, a read must return its value. A write that
    failed may or may not have taken effect, so its value is allowed too,
    until a read shows which one the replicas hold.
    """

    def __init__(self) -> None:
        """Every key starts unwritten (the empty value)."""
        self._allowed: dict[str, set[str]] = {}

    def wrote(self, key: str, value: str) -> None:
        """A write of ``value`` to ``key`` completed."""
        self._allowed[key] = {value}

    def write_failed(self, key: str, value: str) -> None:
        """A write of ``value`` to ``key`` failed: it may have taken effect."""
        self._allowed.setdefault(key, {""}).add(value)

    def allowed(self, key: str) -> list[str]:
        """The values a read of ``key`` may return now."""
        return sorted(self._allowed.get(key, {""}))

    def read(self, key: str, value: str) -> bool:
        """A read of ``key`` returned ``value``; return whether it may."""
        if value not in self.allowed(key):
            return False
        self._allowed[key] = {value}
        return True


@dataclass
class Summary:
    """What a workload did."""

    writes: int = 0
    reads: int = 0
    failed: int = 0
    retried: int = 0
    wrong: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ops(self) -> int:
        """Operations done, successful or not."""
        return self.writes + self.reads

    def percentile(self, p: float) -> float:
        """The ``p``-th percentile of the operation latencies, in milliseconds."""
        ordered = sorted(self.latencies)
        if not ordered:
            return 0.0
        return 1000 * ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    def report(self) -> list[str]:
        """The summary, as lines to print."""
        return [
            f"summary: {self.ops} operations ({self.writes} writes, {self.reads} reads)"
            f" in {self.seconds:.1f} s: {self.failed} failed, {len(self.wrong)} wrong,"
            f" {self.retried} retried on another replica",
            f"latency: p50 {self.percentile(50):.1f} ms, p99 {self.percentile(99):.1f} ms",
            *(f"WRONG: {line}" for line in self.wrong),
        ]


class Console:
    """Prints events on stdout and a one-line progress display on stderr (on a terminal)."""

    def __init__(self, stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr) -> None:
        """Print to ``stdout``; show progress on ``stderr`` if it is a terminal."""
        self._out = stdout
        self._err = stderr if stderr.isatty() else None
        self._line = ""
        self.closed = False
        """After ``close()`` events are not printed (a shutdown's changes are no news)."""

    def say(self, text: str) -> None:
        """Print ``text`` as one line, keeping the progress line below it."""
        if self.closed:
            return
        if self._err is not None and self._line:
            self._err.write("\r\033[K")
        print(text, file=self._out, flush=True)
        self._draw()

    def progress(self, line: str) -> None:
        """Replace the progress line (``""`` clears it)."""
        self._line = line
        self._draw()

    def close(self) -> None:
        """Clear the progress line; print nothing more."""
        self.progress("")
        self.closed = True

    def _draw(self) -> None:
        if self._err is not None:
            self._err.write(f"\r\033[K{self._line}")
            self._err.flush()


class Workload:
    """Sequential writes and reads over a few keys, checked against a ``Register``."""

    def __init__(
        self, addresses: Sequence[str], *, keys: int = 4, seed: int = 1, timeout: float = 3.0
    ) -> None:
        """Prepare a client of the replicas at ``addresses``.

        Args:
            addresses: the replicas' addresses, in the order operations rotate through.
            keys: how many keys the operations spread over.
            seed: the seed of the random choice of operations.
            timeout: seconds one attempt at an operation may take.
        """
        options = Backoff(maximum=0.5).channel_options()  # find a restarted replica soon
        self._channels = [aio.insecure_channel(address, options=options) for address in addresses]
        self._stubs: list[storage_pb2_grpc.StorageAsyncStub] = [
            storage_pb2_grpc.StorageStub(channel) for channel in self._channels
        ]
        run = secrets.token_hex(3)  # keys of their own: earlier runs' values do not count
        self._keys = [f"{run}-key{i}" for i in range(keys)]
        self._random = random.Random(seed)
        self._timeout = timeout
        self.register = Register()
        """The model the reads are checked against."""
        self.summary = Summary()
        """What the workload did so far."""

    async def close(self) -> None:
        """Close the channels."""
        for channel in self._channels:
            await channel.close(None)

    async def run(self, ops: int, console: Console, before: Hook | None = None) -> Summary:
        """Do ``ops`` operations, each a write or a read of a random key.

        Args:
            ops: how many operations.
            console: where progress goes.
            before: awaited with the count of operations done before each one.

        Returns:
            The summary of every operation run so far.
        """
        started = time.monotonic()
        for n in range(ops):
            if before is not None:
                await before(n)
            key = self._random.choice(self._keys)
            if self._random.random() < 0.5:
                await self.write(key, f"v{n}", via=n)
            else:
                await self.read(key, via=n)
            done = self.summary
            console.progress(
                f"  {n + 1}/{ops} operations, {done.failed} failed, {len(done.wrong)} wrong"
            )
        self.summary.seconds += time.monotonic() - started
        return self.summary

    async def read_all(self, via: int) -> None:
        """Read every key through replica index ``via``, waiting for its channel to be ready."""
        for key in self._keys:
            await self.read(key, via=via, wait_for_ready=True)

    async def write(self, key: str, value: str, via: int) -> None:
        """Write ``value`` to ``key`` through replica index ``via`` (or the next ones)."""
        self.summary.writes += 1
        request = storage_pb2.WriteRequest(key=key, value=value)
        reply = await self._attempt(
            via, lambda stub: stub.WriteQuorum(request, timeout=self._timeout)
        )
        if reply is None:
            self.register.write_failed(key, value)
        else:
            self.register.wrote(key, value)

    async def read(self, key: str, via: int, *, wait_for_ready: bool = False) -> None:
        """Read ``key`` through replica index ``via`` (or the next ones) and check the value.

        With ``wait_for_ready`` a replica that is (re)connecting is waited for
        (within the timeout) instead of failing at once.
        """
        self.summary.reads += 1
        request = storage_pb2.ReadRequest(key=key)
        reply = await self._attempt(
            via,
            lambda stub: stub.ReadQuorum(
                request, timeout=self._timeout, wait_for_ready=wait_for_ready
            ),
        )
        if reply is not None and not self.register.read(key, reply.value):
            self.summary.wrong.append(
                f"read {key} returned {reply.value!r}, expected one of {self.register.allowed(key)}"
            )

    async def _attempt(
        self,
        via: int,
        call: Callable[[storage_pb2_grpc.StorageAsyncStub], Awaitable[storage_pb2.Value]],
    ) -> storage_pb2.Value | None:
        """Try replica ``via``, then each next one; None (counted as failed) if all fail."""
        started = time.monotonic()
        try:
            for attempt in range(len(self._stubs)):
                try:
                    reply = await call(self._stubs[(via + attempt) % len(self._stubs)])
                except aio.AioRpcError:
                    continue
                if attempt:
                    self.summary.retried += 1
                return reply
            self.summary.failed += 1
            return None
        finally:
            self.summary.latencies.append(time.monotonic() - started)
