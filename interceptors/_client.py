"""ClientIdentityInterceptor: claim ``gorums-addr`` on every outgoing call."""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, overload

from grpc import aio

from gorums_mw._identity.address import normalize_addr, parse_node_address
from gorums_mw._identity.claims import AddrClaim, Metadata, write_claim

_Details = aio.ClientCallDetails
_Requests = AsyncIterable[Any] | Iterable[Any]

if TYPE_CHECKING:  # grpc-stubs makes these generic; grpc's runtime classes are not
    _UnaryUnaryBase = aio.UnaryUnaryClientInterceptor[Any, Any]
    _UnaryStreamBase = aio.UnaryStreamClientInterceptor[Any, Any]
    _StreamUnaryBase = aio.StreamUnaryClientInterceptor[Any, Any]
    _StreamStreamBase = aio.StreamStreamClientInterceptor[Any, Any]
else:
    _UnaryUnaryBase = aio.UnaryUnaryClientInterceptor
    _UnaryStreamBase = aio.UnaryStreamClientInterceptor
    _StreamUnaryBase = aio.StreamUnaryClientInterceptor
    _StreamStreamBase = aio.StreamStreamClientInterceptor


def _with_claim(details: _Details, claim: Metadata) -> _Details:
    """``details`` with ``claim``'s entries in place of any the caller set under its keys."""
    metadata = aio.Metadata()
    if details.metadata is not None:
        keys = {key for key, _ in claim}
        for key, value in details.metadata:
            if key not in keys:
                metadata.add(key, value)
    for key, value in claim:
        metadata.add(key, value)
    return aio.ClientCallDetails(
        details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
    )


class _AddsClaim:
    """Holds the claim one per-kind interceptor adds to each call."""

    def __init__(self, claim: Metadata) -> None:
        self._claim = claim


class _UnaryUnary(_AddsClaim, _UnaryUnaryBase):
    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: _Details, request: Any
    ) -> Any:
        return await continuation(_with_claim(client_call_details, self._claim), request)


class _UnaryStream(_AddsClaim, _UnaryStreamBase):
    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], client_call_details: _Details, request: Any
    ) -> Any:
        return await continuation(_with_claim(client_call_details, self._claim), request)


class _StreamUnary(_AddsClaim, _StreamUnaryBase):
    async def intercept_stream_unary(
        self, continuation: Callable[..., Any], client_call_details: _Details, requests: _Requests
    ) -> Any:
        return await continuation(_with_claim(client_call_details, self._claim), requests)


class _StreamStream(_AddsClaim, _StreamStreamBase):
    async def intercept_stream_stream(
        self, continuation: Callable[..., Any], client_call_details: _Details, requests: _Requests
    ) -> Any:
        return await continuation(_with_claim(client_call_details, self._claim), requests)


class ClientIdentityInterceptor(Sequence[Any]):  # grpc-stubs has no interceptor base type
    """Makes a grpc.aio channel identify itself as the replica at ``my_addr``.

    grpc.aio gives each interceptor object only the first call kind it
    implements (grpc/grpc#31442), so this is a sequence of four interceptors,
    one per call kind. Pass it as the channel's interceptors::

        channel = grpc.aio.insecure_channel(
            "127.0.0.1:9001", interceptors=ClientIdentityInterceptor("127.0.0.1:9002")
        )

    or splice it with others: ``interceptors=[*ClientIdentityInterceptor(addr), other]``.
    """

    def __init__(self, my_addr: str) -> None:
        """Create the interceptors.

        Args:
            my_addr: the ``host:port`` this replica listens on. A host name is
                resolved here, once (the server never resolves names);
                ``localhost`` is 127.0.0.1, never looked up.

        Raises:
            InvalidAddressError: ``my_addr`` is malformed or does not resolve
                (a ``ValueError``).
        """
        self.address = normalize_addr(my_addr)
        """The normalized address sent in ``gorums-addr``."""
        claim = write_claim(AddrClaim(parse_node_address(self.address)))
        self._interceptors: tuple[Any, ...] = (
            _UnaryUnary(claim),
            _UnaryStream(claim),
            _StreamUnary(claim),
            _StreamStream(claim),
        )

    def __repr__(self) -> str:
        return f"ClientIdentityInterceptor({self.address!r})"

    def __len__(self) -> int:
        return len(self._interceptors)

    @overload
    def __getitem__(self, index: int) -> Any: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Any]: ...
    def __getitem__(self, index: int | slice) -> Any | Sequence[Any]:
        return self._interceptors[index]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._interceptors)
