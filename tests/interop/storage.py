"""Upstream's storage example service in Python, as the Go peer's ``main.go`` serves it.

The same semantics, so a Go client cannot tell the two apart except by
``impl=py`` in ``__whoami__``: values carry timestamps and an older write
never replaces a newer one; the one-way methods write too; the correctable
method sends the value once; and three keys are special for every Read
method:

- ``__whoami__`` answers ``server=<id> caller=<caller's node ID, or -> impl=py``
  (``-``: an external caller, as Go writes for a caller that sent no
  ``gorums-node-id``);
- ``__fail__`` fails with ``FAILED_PRECONDITION`` (the correctable method
  then sends nothing, as Go's does);
- ``__meta__`` answers the values of the request's ``x-interop`` metadata.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, Final

import grpc
from google.protobuf.empty_pb2 import Empty
from google.protobuf.timestamp_pb2 import Timestamp
from grpc import aio

from gorums_mw import Configuration, current_peer
from tests.interop.proto import storage_pb2, storage_pb2_grpc

ReadRequest = storage_pb2.ReadRequest
ReadResponse = storage_pb2.ReadResponse
WriteRequest = storage_pb2.WriteRequest
WriteResponse = storage_pb2.WriteResponse

SERVICE: Final = "proto.Storage"
READ_RPC: Final = "proto.Storage.ReadRPC"
WRITE_RPC: Final = "proto.Storage.WriteRPC"
READ_QC: Final = "proto.Storage.ReadQC"
WRITE_QC: Final = "proto.Storage.WriteQC"
WRITE_UNICAST: Final = "proto.Storage.WriteUnicast"
WRITE_MULTICAST: Final = "proto.Storage.WriteMulticast"
READ_CORRECTABLE: Final = "proto.Storage.ReadCorrectable"

WHOAMI: Final = "__whoami__"
FAIL: Final = "__fail__"
META: Final = "__meta__"
META_KEY: Final = "x-interop"
FAIL_MESSAGE: Final = "interop: asked to fail"

Context = aio.ServicerContext[Any, Any]
"""A grpc.aio servicer context, or gorums-mw's stand-in for calls over NodeStream."""


EPOCH: Final = 1_700_000_000
"""A fixed second, so tests compare timestamps exactly."""


def at(offset: int) -> Timestamp:
    """The timestamp ``EPOCH + offset`` seconds."""
    return Timestamp(seconds=EPOCH + offset)


def stamp(time: Timestamp) -> tuple[int, int]:
    """A timestamp's order."""
    return (time.seconds, time.nanos)


class Storage(storage_pb2_grpc.StorageServicer):
    """The ``proto.Storage`` servicer of one node (``main.go``'s ``storage``)."""

    def __init__(self, node_id: int, config: Callable[[], Configuration] | None = None) -> None:
        """Serve node ``node_id``'s store.

        Args:
            node_id: the ID ``__whoami__`` names.
            config: the configuration the nested methods call (Go's
                ``ServerCtx.Config()``); None: they fail.
        """
        self.node_id = node_id
        self.config = config
        self.values: dict[str, tuple[str, Timestamp]] = {}

    def read(self, key: str, metadata: tuple[tuple[str, str], ...]) -> ReadResponse | None:
        """The reply to a read of ``key``; None for ``__fail__``."""
        if key == WHOAMI:
            caller = current_peer()
            who = "-" if caller.is_external else str(caller.id)
            return ReadResponse(OK=True, value=f"server={self.node_id} caller={who} impl=py")
        if key == FAIL:
            return None
        if key == META:
            return ReadResponse(
                OK=True, value=",".join(value for name, value in metadata if name == META_KEY)
            )
        found = self.values.get(key)
        if found is None:
            return ReadResponse(OK=False)
        value, time = found
        return ReadResponse(OK=True, value=value, time=time)

    def write(self, request: WriteRequest) -> WriteResponse:
        """Store ``request`` unless the value held is newer."""
        held = self.values.get(request.key)
        if held is not None and stamp(held[1]) > stamp(request.time):
            return WriteResponse(new=False)
        self.values[request.key] = (request.value, request.time)
        return WriteResponse(new=True)

    async def _answer(self, request: ReadRequest, context: Context) -> ReadResponse:
        reply = self.read(request.key, _metadata(context))
        if reply is None:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, FAIL_MESSAGE)
        return reply

    async def ReadRPC(self, request: ReadRequest, context: Context) -> ReadResponse:
        return await self._answer(request, context)

    async def ReadQC(self, request: ReadRequest, context: Context) -> ReadResponse:
        return await self._answer(request, context)

    async def WriteRPC(self, request: WriteRequest, context: Context) -> WriteResponse:
        return self.write(request)

    async def WriteQC(self, request: WriteRequest, context: Context) -> WriteResponse:
        return self.write(request)

    async def WriteUnicast(self, request: WriteRequest, context: Context) -> Empty:
        self.write(request)
        return Empty()

    async def WriteMulticast(self, request: WriteRequest, context: Context) -> Empty:
        self.write(request)
        return Empty()

    async def ReadCorrectable(
        self, request: ReadRequest, context: Context
    ) -> AsyncIterator[ReadResponse]:
        reply = self.read(request.key, _metadata(context))
        if reply is not None:  # Go's handler sends nothing when the read fails
            yield reply

    async def ReadNestedQC(self, request: ReadRequest, context: Context) -> ReadResponse:
        config = await self._nested_config(context)
        replies = await config.quorum_call(READ_QC, request, ReadResponse, timeout=2)
        return next(iter(replies.values()))

    async def WriteNestedMulticast(self, request: WriteRequest, context: Context) -> WriteResponse:
        config = await self._nested_config(context)
        await config.multicast(WRITE_MULTICAST, request)
        return WriteResponse(new=True)

    async def _nested_config(self, context: Context) -> Configuration:
        config = self.config() if self.config is not None else None
        if not config:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "no peer configuration")
        return config


def _metadata(context: Context) -> tuple[tuple[str, str], ...]:
    """The call's metadata as text pairs (over NodeStream: the message's entries)."""
    return tuple(
        (str(key), value)
        for key, value in context.invocation_metadata() or ()
        if isinstance(value, str)
    )
