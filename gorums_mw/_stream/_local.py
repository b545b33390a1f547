"""The channel of a node to itself: calls dispatched in process, no network."""

from __future__ import annotations

import asyncio

from gorums_mw._peer import Peer
from gorums_mw._proto.stream_pb2 import Message, MetadataEntry
from gorums_mw._stream._endpoint import Entries
from gorums_mw._stream._registry import HandlerRegistry

_LOCAL_ID = 1


class LocalChannel:
    """Answers a node's calls to itself with its own handlers, in process."""

    __slots__ = ("_peer", "_registry", "_tasks")

    def __init__(self, peer: Peer, registry: HandlerRegistry) -> None:
        self._peer = peer
        self._registry = registry
        self._tasks: set[asyncio.Task[Message | None]] = set()

    @property
    def closed(self) -> bool:
        """Always False: a node can always reach itself."""
        return False

    async def call(
        self, method: str, payload: bytes, entries: Entries = ()
    ) -> asyncio.Future[Message]:
        """Run the handler for ``method`` in a task; its future gives the reply."""
        task = self._start(_LOCAL_ID, method, payload, entries)
        return task  # type: ignore[return-value]  # a task of a reply is a future of one

    async def cast(self, method: str, payload: bytes, entries: Entries = ()) -> None:
        """Run the handler for ``method``; nothing is returned."""
        self._start(0, method, payload, entries)

    def _start(
        self, msg_id: int, method: str, payload: bytes, entries: Entries
    ) -> asyncio.Task[Message | None]:
        request = Message(message_seq_no=msg_id, method=method, payload=payload)
        if entries:
            request.entry.extend(MetadataEntry(key=k, value=v) for k, v in entries)
        task = asyncio.create_task(self._registry.handle(request, self._peer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
