"""Call interceptors: code around a call on a configuration (Go Gorums' ``QuorumInterceptor``).

An interceptor is a function ``(call, replies) -> replies``: it gets the
``CallInfo`` (method, request, configuration, metadata) and the async
iterator of per-node replies, and returns the replies the caller sees. It
can give each node its own request (``call.map_request``, before it starts
iterating), drop or rewrite replies, and end the call early (by returning).
Interceptors compose in order: the first given is the innermost, so the last
one sees what all the others made of the replies. Nothing is sent until the
outermost one starts iterating. When the call ends, the replies the first
interceptor wrapped are closed (outstanding requests are given up), even if
an interceptor returned without closing what it wraps.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Generic, TypeVar, cast

from google.protobuf.message import Message as ProtoMessage

from gorums_mw._calls.answers import NodeReply, R
from gorums_mw._calls.node import Node
from gorums_mw._calls.target import Target
from gorums_mw._stream.channel import Entries

Q = TypeVar("Q", bound=ProtoMessage)

RequestTransform = Callable[[Q, Node], Q | None]
"""Gives a node its own request; None sends that node nothing."""


class CallInfo(Generic[Q]):
    """What an interceptor sees of the call it wraps.

    Attributes:
        method: the full method name, ``pkg.Service.Method``.
        request: the request given to the call.
        config: the configuration the call is made on (a ``Configuration``).
        metadata: the call's metadata entries.
    """

    __slots__ = ("_sealed", "_shared", "_transforms", "config", "metadata", "method", "request")

    def __init__(self, method: str, request: Q, config: Sequence[Node], metadata: Entries) -> None:
        self.method = method
        self.request = request
        self.config = config
        self.metadata = metadata
        self._transforms: list[RequestTransform[Q]] = []
        self._sealed = False
        self._shared: bytes | None = None

    def __repr__(self) -> str:
        return f"<CallInfo {self.method} on {self.config!r}>"

    def map_request(self, transform: RequestTransform[Q]) -> None:
        """Give each node its own request: ``transform(request, node)`` (None skips the node).

        Transforms apply in the order they are added, each to the previous
        one's result.

        Raises:
            RuntimeError: the requests were already sent (call this before
                iterating the replies).
        """
        if self._sealed:
            raise RuntimeError("map_request after the requests were sent: call it before iterating")
        self._transforms.append(transform)

    def request_for(self, node: Node) -> Q | None:
        """The request ``node`` gets (None: it gets none); seals the transforms."""
        self._sealed = True
        request: Q | None = self.request
        for transform in self._transforms:
            if request is None:
                return None
            request = transform(request, node)
        return request

    def payload_for(self, node: Target) -> bytes | None:
        """The serialized request ``node`` gets (one serialization for all
        when no transform gives nodes their own); seals the transforms."""
        if not self._transforms:
            self._sealed = True
            if self._shared is None:
                self._shared = self.request.SerializeToString()
            return self._shared
        request = self.request_for(cast(Node, node))  # the configuration's own nodes
        return None if request is None else request.SerializeToString()


QuorumInterceptor = Callable[
    [CallInfo[Q], AsyncIterator[NodeReply[R]]], AsyncIterator[NodeReply[R]]
]
"""Wraps a call: ``(call, replies) -> replies`` (see the module docstring)."""


def intercept(
    call: CallInfo[Q],
    replies: AsyncIterator[NodeReply[R]],
    interceptors: Sequence[QuorumInterceptor[Q, R]],
) -> AsyncIterator[NodeReply[R]]:
    """``replies`` wrapped by each interceptor in turn (the first is the innermost)."""
    for interceptor in interceptors:
        if not callable(interceptor):
            raise TypeError(f"an interceptor must be callable, got {interceptor!r}")
        replies = interceptor(call, replies)
    return replies
