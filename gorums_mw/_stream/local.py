"""The channel of a node to itself: calls dispatched in process, no network."""

from __future__ import annotations

import asyncio
from typing import Any

from gorums_mw._identity.peer import Peer
from gorums_mw._proto.stream_pb2 import Message
from gorums_mw._stream.endpoint import Entries, calling_loop, request_message
from gorums_mw._stream.registry import HandlerRegistry, Send
from gorums_mw._stream.replies import Replies
from gorums_mw._telemetry import Telemetry

_LOCAL_ID = 1


class LocalChannel:
    """Answers a node's calls to itself with its own handlers, in process.

    Bound to the event loop of ``bind_loop`` (the replica's); calls from any
    other loop raise ``RuntimeError`` at once.
    """

    __slots__ = ("_loop", "_peer", "_registry", "_tasks", "_telemetry")

    def __init__(
        self, peer: Peer, registry: HandlerRegistry, telemetry: Telemetry | None = None
    ) -> None:
        self._peer = peer
        self._registry = registry
        self._telemetry = telemetry
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def closed(self) -> bool:
        """Always False: a node can always reach itself."""
        return False

    def bind_loop(self) -> None:
        """Serve calls on the running event loop only."""
        self._loop = asyncio.get_running_loop()

    def call(self, method: str, payload: bytes, entries: Entries = ()) -> asyncio.Future[Message]:
        """Run the handler for ``method`` in a task; the future gives the reply."""
        loop = self._check_loop()
        reply: asyncio.Future[Message] = loop.create_future()

        def send(message: Message) -> bool:
            if not reply.done():
                reply.set_result(message)
            return True

        self._run(loop, reply, method, payload, entries, send)
        return reply

    def call_stream(
        self, method: str, payload: bytes, entries: Entries, replies: Replies, key: int
    ) -> None:
        """Run a server-streaming handler in a task; its replies go to ``replies``."""
        loop = self._check_loop()
        owner: asyncio.Future[None] = loop.create_future()
        replies.track(key, owner)

        def send(message: Message) -> bool:
            replies.put(key, message)
            return not owner.done()

        self._run(loop, owner, method, payload, entries, send)

    def cast(self, method: str, payload: bytes, entries: Entries = ()) -> bool:
        """Run the handler for ``method``; nothing is returned. Always sent."""
        loop = self._check_loop()
        self._run(loop, None, method, payload, entries, None)
        return True

    def _check_loop(self) -> asyncio.AbstractEventLoop:
        return calling_loop(self._loop, f"node {self._peer.id}")

    def _run(
        self,
        loop: asyncio.AbstractEventLoop,
        owner: asyncio.Future[Any] | None,
        method: str,
        payload: bytes,
        entries: Entries,
        send: Send | None,
    ) -> None:
        """Handle the request in a task, cancelled when ``owner`` is (the caller gave up)."""
        request = request_message(_LOCAL_ID, method, payload, entries)
        task = loop.create_task(
            self._registry.handle(request, self._peer, send, telemetry=self._telemetry)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if owner is not None:
            owner.add_done_callback(lambda _: task.cancel())
