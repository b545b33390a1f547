"""The replies of server-streaming calls: one queue fed by the calls to one or more nodes.

A server-streaming call stays pending after its first reply: its replies
arrive under one message ID until the caller stops (nothing on the wire
marks the end, as in Go Gorums). Each pending call holds a ``StreamCall``
whose ``owner`` future stands for the call: cancelling it unregisters the
call and drops its request if it still waits for room to be sent.
"""

from __future__ import annotations

import asyncio
from collections import deque

import grpc

from gorums_mw._errors import CallError
from gorums_mw._limits import QUEUED_OVERHEAD
from gorums_mw._proto.stream_pb2 import Message

Arrival = tuple[int, Message | CallError]


class Replies:
    """A queue of ``(key, message or error)`` fed by server-streaming calls.

    Unread replies are bounded by ``limit`` bytes: a call whose replies
    would go beyond it fails with ``RESOURCE_EXHAUSTED`` (its later replies
    are dropped). ``close`` ends every call it feeds. Use from one event loop.
    """

    __slots__ = ("_arrivals", "_bytes", "_limit", "_owners", "_waiter")

    def __init__(self, limit: int) -> None:
        self._arrivals: deque[tuple[Arrival, int]] = deque()
        self._bytes = 0
        self._limit = limit
        self._owners: dict[int, asyncio.Future[None]] = {}
        self._waiter: asyncio.Future[None] | None = None

    def track(self, key: int, owner: asyncio.Future[None]) -> None:
        """Remember the call ``key`` stands for, so ``close`` can end it."""
        self._owners[key] = owner
        owner.add_done_callback(self._wake)

    def put(self, key: int, item: Message | CallError) -> None:
        """Add a reply (or the call's final error)."""
        owner = self._owners.get(key)
        if owner is None or owner.done():
            return
        size = item.ByteSize() + QUEUED_OVERHEAD if isinstance(item, Message) else 0
        if size and self._bytes + size > self._limit:
            owner.cancel()
            item = CallError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"more than {self._limit} bytes of replies were not read",
                key,
            )
            size = 0
        elif isinstance(item, CallError):
            owner.cancel()
        self._bytes += size
        self._arrivals.append(((key, item), size))
        self._wake()

    async def get(self, deadline: float | None) -> Arrival | None:
        """The next reply; None once every call has ended and all was read.

        Waits until ``deadline`` (loop time) at most.

        Raises:
            TimeoutError: nothing arrived before the deadline.
        """
        while not self._arrivals:
            if not self.open_calls:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            async with asyncio.timeout_at(deadline):
                await self._waiter
        arrival, size = self._arrivals.popleft()
        self._bytes -= size
        return arrival

    def _wake(self, _: object = None) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    @property
    def open_calls(self) -> int:
        """Calls that may still deliver replies."""
        return sum(not owner.done() for owner in self._owners.values())

    def close(self) -> None:
        """End every call; drop what was not read."""
        for owner in self._owners.values():
            owner.cancel()
        self._owners.clear()
        self._arrivals.clear()
        self._bytes = 0


class StreamCall:
    """The pending entry of one server-streaming call on one stream."""

    __slots__ = ("delivered", "key", "owner", "replies")

    def __init__(self, replies: Replies, key: int, owner: asyncio.Future[None]) -> None:
        self.replies = replies
        self.key = key
        self.owner = owner
        self.delivered = False

    def deliver(self, message: Message) -> None:
        """A reply arrived."""
        self.delivered = True
        self.replies.put(self.key, message)

    def fail(self, error: CallError) -> None:
        """The stream ended: no more replies will come.

        A call that already had replies just ends (a stream retired by a
        tiebreak, or a peer that left, after answering); one that had none
        gets ``error``.
        """
        if self.delivered:
            self.owner.cancel()
        else:
            self.replies.put(self.key, error)
