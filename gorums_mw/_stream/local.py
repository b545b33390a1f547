"""The channel of a node to itself: calls dispatched in process, no network."""

from __future__ import annotations

import asyncio
import itertools

from gorums_mw._identity.peer import Peer
from gorums_mw._proto.stream_pb2 import Message
from gorums_mw._stream.channel import Entries, ReplySink, calling_loop
from gorums_mw._stream.messages import request_message
from gorums_mw._stream.registry import HandlerRegistry, Send
from gorums_mw._telemetry import Telemetry

_LOCAL_ID = 1


class LocalChannel:
    """Answers a node's calls to itself with its own handlers, in process.

    Each request runs its handler in a task; forgetting the request cancels
    the task. Bound to the event loop of ``bind_loop`` (the replica's);
    calls from any other loop raise ``RuntimeError`` at once.
    """

    __slots__ = ("_loop", "_peer", "_registry", "_running", "_telemetry", "_tickets")

    def __init__(
        self, peer: Peer, registry: HandlerRegistry, telemetry: Telemetry | None = None
    ) -> None:
        self._peer = peer
        self._registry = registry
        self._telemetry = telemetry
        self._running: dict[int, asyncio.Task[None]] = {}
        self._tickets = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def closed(self) -> bool:
        """Always False: a node can always reach itself."""
        return False

    def bind_loop(self) -> None:
        """Serve calls on the running event loop only."""
        self._loop = asyncio.get_running_loop()

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
        """Run the handler for ``method`` in a task; its replies go to ``sink``."""
        loop = self._check_loop()
        ticket = next(self._tickets)
        replied = False

        def send(message: Message) -> bool:
            nonlocal replied
            if ticket not in self._running or (replied and not streaming):
                return False
            replied = True
            sink.deliver(slot, message)
            return True

        self._run(loop, ticket, method, payload, entries, send)
        return ticket

    def forget(self, ticket: int) -> None:
        """Give up a request: its handler is cancelled, its replies dropped."""
        task = self._running.pop(ticket, None)
        if task is not None:
            task.cancel()

    def withdraw(self, ticket: int) -> bool:
        """False: a request to itself never waits to be sent."""
        return False

    def cast(self, method: str, payload: bytes, entries: Entries) -> bool:
        """Run the handler for ``method``; nothing is returned. Always sent."""
        loop = self._check_loop()
        self._run(loop, next(self._tickets), method, payload, entries, None)
        return True

    def _check_loop(self) -> asyncio.AbstractEventLoop:
        return calling_loop(self._loop, f"node {self._peer.id}")

    def _run(
        self,
        loop: asyncio.AbstractEventLoop,
        ticket: int,
        method: str,
        payload: bytes,
        entries: Entries,
        send: Send | None,
    ) -> None:
        """Handle the request in a task, until it ends or is forgotten."""
        request = request_message(_LOCAL_ID, method, payload, entries)
        task = loop.create_task(
            self._registry.handle(request, self._peer, send, telemetry=self._telemetry)
        )
        self._running[ticket] = task
        task.add_done_callback(lambda _: self._running.pop(ticket, None))
