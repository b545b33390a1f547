"""The channel of a node to itself: calls dispatched in process, no network."""

from __future__ import annotations

import asyncio

from gorums_mw._peer import Peer
from gorums_mw._proto.stream_pb2 import Message, MetadataEntry
from gorums_mw._stream._endpoint import Entries, other_loop_error, running_loop
from gorums_mw._stream._registry import HandlerRegistry

_LOCAL_ID = 1


class LocalChannel:
    """Answers a node's calls to itself with its own handlers, in process.

    Bound to the event loop of ``bind_loop`` (the replica's); calls from any
    other loop raise ``RuntimeError`` at once.
    """

    __slots__ = ("_loop", "_peer", "_registry", "_tasks")

    def __init__(self, peer: Peer, registry: HandlerRegistry) -> None:
        self._peer = peer
        self._registry = registry
        self._tasks: set[asyncio.Task[Message | None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def closed(self) -> bool:
        """Always False: a node can always reach itself."""
        return False

    def bind_loop(self) -> None:
        """Serve calls on the running event loop only."""
        self._loop = asyncio.get_running_loop()

    def call(self, method: str, payload: bytes, entries: Entries = ()) -> asyncio.Future[Message]:
        """Run the handler for ``method`` in a task; its future gives the reply."""
        task = self._start(_LOCAL_ID, method, payload, entries, one_way=False)
        return task  # type: ignore[return-value]  # a task of a reply is a future of one

    def cast(self, method: str, payload: bytes, entries: Entries = ()) -> bool:
        """Run the handler for ``method``; nothing is returned. Always sent."""
        self._start(_LOCAL_ID, method, payload, entries, one_way=True)
        return True

    def _start(
        self, msg_id: int, method: str, payload: bytes, entries: Entries, *, one_way: bool
    ) -> asyncio.Task[Message | None]:
        loop = running_loop()
        if loop is None or (self._loop is not None and loop is not self._loop):
            raise other_loop_error(f"node {self._peer.id}")
        request = Message(message_seq_no=msg_id, method=method, payload=payload)
        if entries:
            request.entry.extend(MetadataEntry(key=k, value=v) for k, v in entries)
        task = loop.create_task(self._registry.handle(request, self._peer, one_way=one_way))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
