"""A bounded FIFO with one consumer that can be closed, waking every waiter."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class QueueClosed(Exception):
    """The queue was closed while putting or getting."""


class SendQueue(Generic[T]):
    """Bounded queue feeding a stream's single writer.

    Unlike ``asyncio.Queue`` it can be closed: every blocked ``put`` and
    ``get`` then raises ``QueueClosed`` at once, so nothing waits forever on
    a stream that is gone.
    """

    __slots__ = ("_closed", "_items", "_maxsize", "_not_empty", "_not_full")

    def __init__(self, maxsize: int) -> None:
        self._items: deque[T] = deque()
        self._maxsize = maxsize
        self._closed = False
        self._not_empty: asyncio.Future[None] | None = None
        self._not_full: list[asyncio.Future[None]] = []

    def __len__(self) -> int:
        return len(self._items)

    async def put(self, item: T) -> None:
        """Append ``item``, waiting while the queue is full."""
        while len(self._items) >= self._maxsize and not self._closed:
            waiter = asyncio.get_running_loop().create_future()
            self._not_full.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._not_full:
                    self._not_full.remove(waiter)
        if self._closed:
            raise QueueClosed
        self._items.append(item)
        if self._not_empty is not None and not self._not_empty.done():
            self._not_empty.set_result(None)

    def offer(self, item: T) -> bool:
        """Append ``item`` if there is room now; return whether it was added."""
        if self._closed or len(self._items) >= self._maxsize:
            return False
        self._items.append(item)
        if self._not_empty is not None and not self._not_empty.done():
            self._not_empty.set_result(None)
        return True

    async def get(self) -> T:
        """Remove and return the oldest item, waiting while empty."""
        while not self._items:
            if self._closed:
                raise QueueClosed
            self._not_empty = asyncio.get_running_loop().create_future()
            await self._not_empty
        item = self._items.popleft()
        while self._not_full:
            waiter = self._not_full.pop(0)
            if not waiter.done():
                waiter.set_result(None)
                break
        return item

    def close(self) -> None:
        """Refuse further items and wake every waiter."""
        self._closed = True
        self._items.clear()
        for waiter in [self._not_empty, *self._not_full]:
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        self._not_full.clear()
