"""The contract of the channels that carry calls: requests out, replies to a sink.

A call hands each channel a ``ReplySink`` and a slot number with its
request: the channel delivers the replies (or the request's failure)
straight to the sink, in the task that read them, with no future and no
callback per reply. The channel returns a ticket; ``forget(ticket)`` gives
the request up (a request still waiting for room in a send buffer is then
never sent, and its replies are dropped).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from gorums_mw._errors import CallError
from gorums_mw._proto.stream_pb2 import Message

Entries = Sequence[tuple[str, str]]
"""A request's metadata entries: ``(key, value)`` pairs of text."""


class ReplySink(Protocol):
    """Where a channel delivers the answers of the requests it was handed."""

    def deliver(self, slot: int, message: Message) -> None:
        """A reply to the request of ``slot`` arrived (a server-streaming
        request may get several)."""
        ...

    def fail(self, slot: int, error: CallError) -> None:
        """The request of ``slot`` failed, or its stream ended: no more replies come."""
        ...


class Channel(Protocol):
    """What a node sends requests through: a NodeStream end, or the in-process
    channel of a node to itself. Both belong to one event loop and refuse
    calls from others (``RuntimeError``)."""

    @property
    def closed(self) -> bool:
        """Whether requests can no longer be sent."""
        ...

    def request(
        self,
        method: str,
        payload: bytes,
        entries: Entries,
        sink: ReplySink,
        slot: int,
        *,
        streaming: bool = False,
    ) -> int:
        """Send a request now, or once there is room in the send buffer; its
        replies go to ``sink`` under ``slot`` (several for a ``streaming`` one,
        until it is forgotten or the stream ends). Return its ticket.

        Raises:
            CallError: ``UNAVAILABLE`` when closed, ``RESOURCE_EXHAUSTED`` when
                the request is larger than the message limit.
        """
        ...

    def forget(self, ticket: int) -> None:
        """Give up the request of ``ticket``: never send it if it still waits
        for room, drop its replies."""
        ...

    def withdraw(self, ticket: int) -> bool:
        """Give up the request of ``ticket`` if it was not sent yet (it waits for
        room in the send buffer); return whether it was."""
        ...

    def cast(self, method: str, payload: bytes, entries: Entries) -> bool:
        """Send a one-way request if there is room now; return whether it was sent."""
        ...


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread, or None (asyncio's own fast check)."""
    return asyncio._get_running_loop()


def calling_loop(bound: asyncio.AbstractEventLoop | None, what: str) -> asyncio.AbstractEventLoop:
    """The running loop, which must be ``bound`` (when ``what`` is bound to one).

    Raises:
        RuntimeError: no loop runs in this thread, or another one than ``bound``.
    """
    loop = running_loop()
    if loop is None or (bound is not None and loop is not bound):
        raise RuntimeError(
            f"{what} runs on another event loop: make calls from the loop that started it"
            " (from another thread, use asyncio.run_coroutine_threadsafe)"
        )
    return loop
