"""The queue feeding a stream's single writer, bounded in bytes, closable."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

from gorums_mw._stream.budget import ByteBudget

T = TypeVar("T")


class QueueClosed(Exception):
    """The queue was closed while getting."""


class SendQueue(Generic[T]):
    """FIFO of items for one consumer, bounded by a ``ByteBudget``.

    Three ways in: ``offer`` adds an item only if there is room now;
    ``put`` adds it now or, when full, once room frees (unless it is
    forgotten first, with ``forget(key)``: a call that ended never sends);
    ``push`` adds it regardless (replies, which never wait). Room is counted
    in bytes on the budget, so a queue blocked by its owner's shared budget
    wakes when another stream frees bytes. ``close`` drops everything,
    returns the bytes, and makes ``get`` raise ``QueueClosed``. Use from one
    event loop.
    """

    __slots__ = ("_budget", "_closed", "_items", "_not_empty", "_root", "_waiters")

    def __init__(self, budget: ByteBudget) -> None:
        self._budget = budget
        root = budget
        while root.parent is not None:
            root = root.parent
        self._root = root
        self._items: deque[tuple[T, int]] = deque()
        self._waiters: dict[int, tuple[T, int]] = {}
        self._closed = False
        self._not_empty: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self._items)

    @property
    def waiting(self) -> int:
        """Items waiting for room."""
        return len(self._waiters)

    def offer(self, item: T, size: int, slack: int = 0) -> bool:
        """Add ``item`` if there is room now (``slack`` bytes beyond the budget
        count as room) and nothing waits before it."""
        if self._closed or self._waiters or not self._budget.try_take(size, slack):
            return False
        self._append(item, size)
        return True

    def put(self, item: T, size: int, key: int) -> None:
        """Add ``item`` now if there is room, else once there is (unless ``key``
        is forgotten first)."""
        if self.offer(item, size) or self._closed:
            return
        if not self._waiters:
            self._root.listen(self._promote)
        self._waiters[key] = (item, size)

    def forget(self, key: int) -> bool:
        """Never add the item put under ``key`` if it still waits for room;
        return whether it did."""
        if self._waiters.pop(key, None) is None:
            return False
        if not self._waiters:
            self._root.unlisten(self._promote)
        return True

    def push(self, item: T, size: int) -> None:
        """Add ``item`` even beyond the budget (a reply: it must not wait)."""
        if self._closed:
            return
        self._budget.take(size)
        self._append(item, size)

    async def get_batch(self, count: int, max_bytes: int) -> list[T]:
        """Remove and return the oldest items, waiting while empty.

        Returns at least one item, and then as many more as are queued now,
        up to ``count`` items and ``max_bytes`` (counted as given to the
        queue; the first item is returned whatever its size).
        """
        items = self._items
        while not items:
            if self._closed:
                raise QueueClosed
            self._not_empty = asyncio.get_running_loop().create_future()
            await self._not_empty
        item, total = items.popleft()
        batch = [item]
        while items and len(batch) < count and total + items[0][1] <= max_bytes:
            item, size = items.popleft()
            batch.append(item)
            total += size
        self._budget.release(total)
        return batch

    def close(self) -> None:
        """Drop every item and waiter, return their bytes, wake the consumer."""
        if self._closed:
            return
        self._closed = True
        released = sum(size for _, size in self._items)
        self._items.clear()
        if self._waiters:
            self._waiters.clear()
            self._root.unlisten(self._promote)
        if released:
            self._budget.release(released)
        if self._not_empty is not None and not self._not_empty.done():
            self._not_empty.set_result(None)

    def _append(self, item: T, size: int) -> None:
        self._items.append((item, size))
        if self._not_empty is not None and not self._not_empty.done():
            self._not_empty.set_result(None)

    def _promote(self) -> None:
        """Move waiters in, oldest first, while there is room."""
        while self._waiters:
            key = next(iter(self._waiters))
            item, size = self._waiters[key]
            if not self._budget.try_take(size):
                return
            del self._waiters[key]
            self._append(item, size)
        self._root.unlisten(self._promote)
