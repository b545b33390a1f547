"""A configuration: an immutable, ID-sorted sequence of nodes to call."""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, overload

import grpc
from google.protobuf.message import Message as ProtoMessage

from gorums_mw._errors import CallError, QuorumCallError
from gorums_mw._node import Node, R, decode_reply, trace_entries
from gorums_mw._proto.stream_pb2 import Message
from gorums_mw._tracing import (
    ATTR_CONFIG_SIZE,
    ATTR_METHOD,
    ATTR_QUORUM,
    ATTR_REPLIES,
    SPAN_MULTICAST,
    SPAN_QUORUM_CALL,
    Tracer,
)


@dataclass(frozen=True, slots=True)
class NodeReply(Generic[R]):
    """One node's answer in ``Configuration.replies``: a value or an error."""

    node_id: int
    value: R | None
    error: CallError | None


class Configuration(Sequence[Node]):
    """An immutable, ID-sorted set of nodes on which calls are made.

    Holding an old configuration is safe: its membership never changes, and
    each of its nodes fails fast while disconnected.
    """

    __slots__ = ("__weakref__", "_nodes", "_tracer")

    def __init__(self, nodes: Iterable[Node] = (), *, tracer: Tracer | None = None) -> None:
        """Build a configuration of ``nodes``.

        Raises:
            ValueError: two nodes share an ID.
        """
        ordered = tuple(sorted(nodes, key=lambda node: node.id))
        for before, after in itertools.pairwise(ordered):
            if before.id == after.id:
                raise ValueError(f"node ID {after.id} appears twice in a configuration")
        self._nodes: Sequence[Node] = ordered
        self._tracer = tracer if tracer is not None else Tracer()

    @classmethod
    def _sorted(cls, nodes: Sequence[Node], tracer: Tracer) -> Configuration:
        """Wrap already-sorted ``nodes``; the caller never changes them afterwards."""
        config = cls.__new__(cls)
        config._nodes = nodes
        config._tracer = tracer
        return config

    def __repr__(self) -> str:
        return f"<Configuration ids={list(self.ids)}>"

    def __len__(self) -> int:
        return len(self._nodes)

    @overload
    def __getitem__(self, index: int) -> Node: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Node]: ...
    def __getitem__(self, index: int | slice) -> Node | Sequence[Node]:
        return self._nodes[index]

    def __iter__(self) -> Iterator[Node]:
        return iter(self._nodes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Configuration):
            return NotImplemented
        return len(self._nodes) == len(other._nodes) and all(
            mine is theirs for mine, theirs in zip(self._nodes, other._nodes, strict=True)
        )

    def __hash__(self) -> int:
        return hash(self.ids)

    @property
    def ids(self) -> tuple[int, ...]:
        """The node IDs, ascending."""
        return tuple(node.id for node in self._nodes)

    def node(self, node_id: int) -> Node:
        """The node with ID ``node_id``.

        Raises:
            KeyError: no such node in this configuration.
        """
        for node in self._nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)

    def majority(self) -> int:
        """The default quorum size: more than half of the nodes."""
        return len(self._nodes) // 2 + 1

    async def quorum_call(
        self,
        method: str,
        request: ProtoMessage,
        reply_type: type[R],
        *,
        quorum: int | None = None,
        timeout: float | None = None,
    ) -> dict[int, R]:
        """Call ``method`` on every node; return once ``quorum`` replied.

        Args:
            method: the protobuf full method name, ``pkg.Service.Method``.
            request: the request message, sent to every node.
            reply_type: the generated class of the reply.
            quorum: replies needed, 1..len(self); default a majority.
            timeout: seconds to wait for the quorum; None waits until each
                node has replied or failed.

        Returns:
            The replies received, by node ID (at least ``quorum`` of them).

        Raises:
            ValueError: ``quorum`` is out of range.
            QuorumCallError: too many nodes failed (or the timeout passed) for
                a quorum; it lists each node's failure.
        """
        needed = self._check_quorum(quorum)
        with self._tracer.tracer.start_as_current_span(SPAN_QUORUM_CALL) as span:
            recording = span.is_recording()
            if recording:
                span.set_attributes(
                    {ATTR_METHOD: method, ATTR_CONFIG_SIZE: len(self._nodes), ATTR_QUORUM: needed}
                )
            entries = trace_entries() if recording else ()
            collector: _Quorum[R] = _Quorum(len(self._nodes), needed, reply_type)
            futures = await self._start_all(method, request.SerializeToString(), entries, collector)
            try:
                async with asyncio.timeout(timeout):
                    await collector.done
            except TimeoutError:
                collector.time_out(futures)
            finally:
                for future in futures.values():
                    future.cancel()
            if recording:
                span.set_attribute(ATTR_REPLIES, len(collector.replies))
            if len(collector.replies) < needed:
                raise QuorumCallError(method, needed, collector.replies, collector.errors)
            return collector.replies

    async def replies(
        self,
        method: str,
        request: ProtoMessage,
        reply_type: type[R],
        *,
        timeout: float | None = None,
    ) -> AsyncIterator[NodeReply[R]]:
        """Call ``method`` on every node and yield each answer as it arrives.

        For custom aggregation: stop iterating as soon as you have what you
        need; the calls still outstanding are then abandoned. Yields one
        ``NodeReply`` per node, holding the reply or the node's error (a
        node still silent when ``timeout`` passes gets ``DEADLINE_EXCEEDED``).
        """
        arrivals: asyncio.Queue[NodeReply[R]] = asyncio.Queue()
        payload = request.SerializeToString()
        futures: dict[int, asyncio.Future[Message]] = {}
        for node in self._nodes:
            try:
                future = await node.start(method, payload)
            except CallError as error:
                arrivals.put_nowait(NodeReply(node.id, None, error))
                continue
            futures[node.id] = future
            future.add_done_callback(functools.partial(_queue_reply, arrivals, node.id, reply_type))
        try:
            async with asyncio.timeout(timeout):
                for _ in self._nodes:
                    yield await arrivals.get()
        except TimeoutError:
            for node_id, future in futures.items():
                if not future.done():
                    late = CallError(grpc.StatusCode.DEADLINE_EXCEEDED, "timed out", node_id)
                    yield NodeReply(node_id, None, late)
        finally:
            for future in futures.values():
                future.cancel()

    async def multicast(self, method: str, request: ProtoMessage) -> tuple[int, ...]:
        """Send ``method`` one-way to every connected node.

        Returns:
            The IDs of the nodes it was sent to (disconnected nodes are skipped).
        """
        with self._tracer.tracer.start_as_current_span(SPAN_MULTICAST) as span:
            recording = span.is_recording()
            if recording:
                span.set_attributes({ATTR_METHOD: method, ATTR_CONFIG_SIZE: len(self._nodes)})
            entries = trace_entries() if recording else ()
            payload = request.SerializeToString()
            sent = tuple(
                [node.id for node in self._nodes if await node.cast(method, payload, entries)]
            )
            if recording:
                span.set_attribute(ATTR_REPLIES, len(sent))
            return sent

    def _check_quorum(self, quorum: int | None) -> int:
        if quorum is None:
            quorum = self.majority()
        if not isinstance(quorum, int) or not 1 <= quorum <= len(self._nodes):
            raise ValueError(f"quorum must be 1..{len(self._nodes)} for {self!r}, got {quorum!r}")
        return quorum

    async def _start_all(
        self,
        method: str,
        payload: bytes,
        entries: Sequence[tuple[str, str]],
        collector: _Quorum[R],
    ) -> dict[int, asyncio.Future[Message]]:
        futures: dict[int, asyncio.Future[Message]] = {}
        for node in self._nodes:
            try:
                futures[node.id] = await node.start(method, payload, entries)
            except CallError as error:
                collector.fail(node.id, error)
        for node_id, future in futures.items():
            future.add_done_callback(functools.partial(collector.on_reply, node_id))
        return futures


class _Quorum(Generic[R]):
    """Counts replies of a quorum call; ``done`` resolves when it is decided."""

    __slots__ = ("done", "errors", "needed", "replies", "reply_type", "size")

    def __init__(self, size: int, needed: int, reply_type: type[R]) -> None:
        self.size = size
        self.needed = needed
        self.reply_type = reply_type
        self.replies: dict[int, R] = {}
        self.errors: dict[int, CallError] = {}
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_reply(self, node_id: int, future: asyncio.Future[Message]) -> None:
        if self.done.done() or future.cancelled():
            return
        error = future.exception()
        if error is not None:
            self.fail(node_id, _as_call_error(error, node_id))
            return
        try:
            self.replies[node_id] = decode_reply(future.result(), self.reply_type, node_id)
        except CallError as call_error:
            self.fail(node_id, call_error)
            return
        if len(self.replies) >= self.needed:
            self.done.set_result(None)

    def fail(self, node_id: int, error: CallError) -> None:
        self.errors[node_id] = error
        if len(self.errors) > self.size - self.needed and not self.done.done():
            self.done.set_result(None)

    def time_out(self, futures: dict[int, asyncio.Future[Message]]) -> None:
        for node_id in futures:
            if node_id not in self.replies and node_id not in self.errors:
                self.errors[node_id] = CallError(
                    grpc.StatusCode.DEADLINE_EXCEEDED, "timed out", node_id
                )


def _queue_reply(
    arrivals: asyncio.Queue[NodeReply[R]],
    node_id: int,
    reply_type: type[R],
    future: asyncio.Future[Message],
) -> None:
    if future.cancelled():
        return
    error = future.exception()
    if error is not None:
        arrivals.put_nowait(NodeReply(node_id, None, _as_call_error(error, node_id)))
        return
    try:
        arrivals.put_nowait(
            NodeReply(node_id, decode_reply(future.result(), reply_type, node_id), None)
        )
    except CallError as call_error:
        arrivals.put_nowait(NodeReply(node_id, None, call_error))


def _as_call_error(error: BaseException, node_id: int) -> CallError:
    if isinstance(error, CallError):
        return error
    return CallError(grpc.StatusCode.UNKNOWN, f"{type(error).__name__}: {error}", node_id)
