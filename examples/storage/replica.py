"""One replica of the register: its store, and the quorum operations it coordinates.

``Read`` and ``Write`` act on this replica's store; replicas call them on a
quorum of each other. ``ReadQuorum`` and ``WriteQuorum`` are what clients
call: the replica that receives one runs the ABD protocol as nested quorum
calls over its live configuration (``system.config()``), made with the
typed calls protoc-gen-gorums generated from ``storage.proto``
(``examples/storage_gorums.py``). Writes go to a write configuration that
drops the replicas that failed a write (``without_errors``) until they
leave and come back (``|``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TextIO, TypeVar

import grpc
from grpc import aio

from examples import storage_pb2, storage_pb2_grpc
from examples.storage_gorums import StorageConfiguration
from gorums_mw import Configuration, QuorumCallError, System

Value = storage_pb2.Value
ReadRequest = storage_pb2.ReadRequest
WriteRequest = storage_pb2.WriteRequest
WriteReply = storage_pb2.WriteReply

R = TypeVar("R")
Context = aio.ServicerContext[Any, Any]
"""A grpc.aio servicer context, or gorums-mw's stand-in for calls over NodeStream."""


def stamp(value: Value) -> tuple[int, int]:
    """The order of values: by timestamp, then by the writer that chose it."""
    return (value.timestamp, value.writer)


class Store:
    """One replica's copy of every key.

    It outlives a ``System``: the in-process demo restarts a replica with
    the same store. A replica process that may be restarted keeps its store
    in a file (``path``): a replica that came back empty could be most of
    the next quorum and make a completed write vanish. Each value kept is
    appended to the file as one JSON line before ``put`` returns, so it
    survives the process being killed (not the machine losing power: there
    is no fsync).
    """

    def __init__(self, path: Path | None = None) -> None:
        """Create a store: empty, or with the values appended to ``path`` by earlier runs."""
        self._values: dict[str, Value] = {}
        self._file: TextIO | None = None
        if path is not None:
            data = path.read_bytes() if path.exists() else b""
            whole = data[: data.rfind(b"\n") + 1]  # a last line cut short was never kept
            for line in whole.splitlines():
                self._keep(Value(**json.loads(line)))
            self._file = path.open("a", buffering=1)  # line buffered: one write per value
            self._file.truncate(len(whole))

    def get(self, key: str) -> Value:
        """This replica's copy of ``key``."""
        return self._values.get(key) or Value(key=key)

    def put(self, value: Value) -> bool:
        """Keep ``value`` if it is newer than the copy held; return whether it was."""
        if not self._keep(value):
            return False
        if self._file is not None:
            fields = ("key", "value", "timestamp", "writer")
            line = json.dumps({name: getattr(value, name) for name in fields})
            self._file.write(line + "\n")
        return True

    def close(self) -> None:
        """Close the store's file, if it has one."""
        if self._file is not None:
            self._file.close()

    def _keep(self, value: Value) -> bool:
        if stamp(value) <= stamp(self.get(value.key)):
            return False
        self._values[value.key] = value
        return True


class StorageReplica(storage_pb2_grpc.StorageServicer):
    """The ``storage.Storage`` servicer of one replica.

    Quorums are the default: a majority of all configured replicas (not of
    those connected), so any two quorums share a replica; with fewer
    replicas connected, the client operations fail with ``UNAVAILABLE``.
    """

    def __init__(self, system: System, store: Store, *, timeout: float = 2.0) -> None:
        """Serve ``store`` as replica ``system.id``.

        Args:
            system: this replica, whose live configuration the quorum calls use.
            store: this replica's data.
            timeout: seconds each quorum call may take.
        """
        self.system = system
        self.store = store
        self.timeout = timeout
        self.write_backs = 0
        """Reads that found replicas disagreeing and wrote the newest value back."""
        self._writes: Configuration | None = None
        """Where writes go: the live configuration minus replicas that failed a write."""
        self._dropped_from = self.system.config()
        """The live configuration when replicas were dropped: those that leave it and
        come back are written to again."""

    async def Read(self, request: ReadRequest, context: Context) -> Value:
        """This replica's copy of ``request.key``."""
        return self.store.get(request.key)

    async def Write(self, request: Value, context: Context) -> WriteReply:
        """Store ``request`` if it is newer than this replica's copy."""
        return WriteReply(stored=self.store.put(request))

    async def ReadQuorum(self, request: ReadRequest, context: Context) -> Value:
        """Read a quorum; write the newest value back if they disagree; return it."""
        storage = StorageConfiguration(self.system.config())
        replies = await self._quorum(context, storage.Read(request, timeout=self.timeout))
        newest = max(replies.values(), key=stamp)
        if any(stamp(reply) != stamp(newest) for reply in replies.values()):
            await self._write(context, newest)
            self.write_backs += 1
        return newest

    async def WriteQuorum(self, request: WriteRequest, context: Context) -> Value:
        """Pick a timestamp above any a quorum holds; write the value to a quorum."""
        storage = StorageConfiguration(self.system.config())
        replies = await self._quorum(
            context, storage.Read(ReadRequest(key=request.key), timeout=self.timeout)
        )
        latest = max(reply.timestamp for reply in replies.values())
        value = Value(
            key=request.key, value=request.value, timestamp=latest + 1, writer=self.system.id
        )
        await self._write(context, value)
        return value

    async def _write(self, context: Context, value: Value) -> None:
        """Write ``value`` to a quorum of the write configuration.

        A replica that fails a write is dropped from the write configuration
        (``without_errors``); once it leaves the live configuration and comes
        back, it is added again (``|``).
        """
        live = self.system.config()
        writes = live
        if self._writes is not None:
            self._dropped_from = self._dropped_from & live  # who left since can come back
            writes = (self._writes & live) | (live - self._dropped_from)
        try:
            await StorageConfiguration(writes).Write(value, timeout=self.timeout)
        except QuorumCallError as exc:
            self._writes, self._dropped_from = writes.without_errors(exc), live
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        else:
            self._writes = writes

    async def _quorum(self, context: Context, call: Awaitable[R]) -> R:
        """The result of a quorum call; its failure aborts this call with ``UNAVAILABLE``."""
        try:
            return await call
        except QuorumCallError as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
