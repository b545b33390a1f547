"""Bytes buffered by a stream and by all streams of an owner, against their bounds."""

from __future__ import annotations

from collections.abc import Callable


class ByteBudget:
    """Counts buffered bytes against a capacity, and against a parent's.

    Taking fails when either this budget or its parent is full, except that
    an empty budget always admits one message (so a message of
    ``max_message`` bytes always fits an idle stream). ``on_room`` callbacks
    run when bytes are released, so waiters blocked by the parent wake up
    too. Use from one event loop.
    """

    __slots__ = ("_listeners", "capacity", "parent", "used")

    def __init__(self, capacity: int, parent: ByteBudget | None = None) -> None:
        self.capacity = capacity
        self.parent = parent
        self.used = 0
        self._listeners: list[Callable[[], None]] = []

    def __repr__(self) -> str:
        return f"<ByteBudget used={self.used} capacity={self.capacity}>"

    def try_take(self, size: int, slack: int = 0) -> bool:
        """Count ``size`` bytes if both this budget and the parent have room
        (``slack`` bytes beyond the capacity count as room)."""
        if self.used and self.used + size > self.capacity + slack:
            return False
        if self.parent is not None and not self.parent.try_take(size, slack):
            return False
        self.used += size
        return True

    def take(self, size: int) -> None:
        """Count ``size`` bytes whether or not there is room (for replies, which never wait)."""
        self.used += size
        if self.parent is not None:
            self.parent.take(size)

    def release(self, size: int) -> None:
        """Stop counting ``size`` bytes and tell the listeners there is room."""
        self.used -= size
        if self.parent is not None:
            self.parent.release(size)
        if self._listeners:
            for listener in tuple(self._listeners):
                listener()

    def listen(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every release (until ``unlisten``)."""
        self._listeners.append(listener)

    def unlisten(self, listener: Callable[[], None]) -> None:
        """Stop calling ``listener``."""
        if listener in self._listeners:
            self._listeners.remove(listener)
