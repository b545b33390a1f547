"""Errors raised by gorums-mw.

Hierarchy::

    GorumsError
    ├── InvalidAddressError (also ValueError)     a gorums-addr or node address is malformed
    ├── PeerAddressMismatchError                  claimed IP is not the connection's IP
    ├── PeerCertificateError                      claimed IP is not in the TLS client certificate
    ├── ConfigurationError (also ValueError)      bad node IDs or addresses in options
    ├── StreamLimitError                          a server holds as many streams as Limits allow
    └── CallError                                 a call on a node or configuration failed
        └── QuorumCallError                       a quorum became impossible

Each error that crosses the wire names the gRPC status it maps to in its
``code`` attribute.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

import grpc


class GorumsError(Exception):
    """Base class of every error gorums-mw raises."""


class InvalidAddressError(GorumsError, ValueError):
    """A ``host:port`` address is malformed (``INVALID_ARGUMENT`` on the wire)."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class PeerAddressMismatchError(GorumsError):
    """The claimed address's IP is not the IP the connection comes from.

    Maps to ``UNAUTHENTICATED`` on the wire.

    Attributes:
        claimed: the ``host:port`` the caller claimed in ``gorums-addr``.
        actual: the peer string grpc reported for the connection.
    """

    code = grpc.StatusCode.UNAUTHENTICATED

    def __init__(self, claimed: str, actual: str) -> None:
        super().__init__(f"claimed address {claimed!r} does not match connection peer {actual!r}")
        self.claimed = claimed
        self.actual = actual

    def __reduce__(self) -> tuple[type[PeerAddressMismatchError], tuple[str, str]]:
        return type(self), (self.claimed, self.actual)


class PeerCertificateError(GorumsError):
    """The peer's TLS client certificate does not vouch for its claimed address.

    Raised only when the ``InboundManager`` requires certificates; maps to
    ``UNAUTHENTICATED`` on the wire.

    Attributes:
        claimed: the normalized claimed address.
        certified: the IP addresses the certificate names (its IP SANs).
    """

    code = grpc.StatusCode.UNAUTHENTICATED

    def __init__(self, claimed: str, certified: list[str]) -> None:
        names = ", ".join(certified) if certified else "no client certificate"
        super().__init__(
            f"claimed address {claimed!r} is not vouched for by the TLS client certificate"
            f" (IP SANs: {names})"
        )
        self.claimed = claimed
        self.certified = certified

    def __reduce__(self) -> tuple[type[PeerCertificateError], tuple[str, list[str]]]:
        return type(self), (self.claimed, self.certified)


class ConfigurationError(GorumsError, ValueError):
    """Node options are invalid: a bad ID, a bad address or a duplicate."""


class StreamLimitError(GorumsError):
    """A server already holds as many client peers or unconfigured callers'
    streams as its ``Limits`` allow (``RESOURCE_EXHAUSTED`` on the wire).

    Attributes:
        limit: the ``Limits`` field that was reached (``max_client_peers`` or
            ``max_streams``).
        value: its value.
    """

    code = grpc.StatusCode.RESOURCE_EXHAUSTED

    def __init__(self, limit: str, value: int) -> None:
        super().__init__(
            f"this server holds {value} {_HELD[limit]} (Limits.{limit}); try again later"
        )
        self.limit = limit
        self.value = value

    def __reduce__(self) -> tuple[type[StreamLimitError], tuple[str, int]]:
        return type(self), (self.limit, self.value)


_HELD = {"max_client_peers": "client peers", "max_streams": "streams of unconfigured callers"}


class CallError(GorumsError):
    """A call to one node failed.

    Attributes:
        code: the gRPC status code of the failure.
        details: the status message.
        node_id: the node the call was made to.
    """

    def __init__(self, code: grpc.StatusCode, details: str, node_id: int = 0) -> None:
        super().__init__(f"node {node_id}: {code.name}: {details}")
        self.code = code
        self.details = details
        self.node_id = node_id

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.code, self.details, self.node_id)


class QuorumCallError(CallError):
    """A quorum call cannot reach its quorum.

    A ``CallError`` of the whole call: ``code`` is the code every failed
    node shares (``DEADLINE_EXCEEDED`` when they all timed out, say), or
    ``UNAVAILABLE`` when they differ or none failed (a configuration too
    small for its quorum); ``node_id`` is 0.

    Attributes:
        method: the full method name called.
        quorum: the number of replies needed (0 when a quorum function decided).
        replies: the replies received before it failed, by node ID.
        errors: the failure of each node that did not reply, by node ID.
    """

    def __init__(
        self,
        method: str,
        quorum: int,
        replies: Mapping[int, object],
        errors: Mapping[int, CallError],
        *,
        reason: str | None = None,
    ) -> None:
        if reason is None:
            failures = "; ".join(
                f"node {nid}: {err.code.name}: {err.details}" for nid, err in sorted(errors.items())
            )
            wanted = f"quorum of {quorum}" if quorum else "the quorum function's quorum"
            reason = f"{wanted} not reached with {len(replies)} replies ({failures})"
        codes = {error.code for error in errors.values()}
        code = codes.pop() if len(codes) == 1 else grpc.StatusCode.UNAVAILABLE
        super().__init__(code, reason)
        self.args = (f"{method}: {reason}",)
        self.method = method
        self.quorum = quorum
        self.replies = dict(replies)
        self.errors = dict(errors)
        self._reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        arguments = (self.method, self.quorum, self.replies, self.errors)
        return _rebuild_quorum_error, (*arguments, self._reason)


def _rebuild_quorum_error(
    method: str,
    quorum: int,
    replies: Mapping[int, object],
    errors: Mapping[int, CallError],
    reason: str,
) -> QuorumCallError:
    return QuorumCallError(method, quorum, replies, errors, reason=reason)


async def abort_with(context: grpc.aio.ServicerContext[Any, Any], exc: Exception) -> NoReturn:
    """End the call with the status ``exc`` names in its ``code``; re-raise ``exc`` otherwise."""
    code = getattr(exc, "code", None)
    if isinstance(code, grpc.StatusCode):
        await context.abort(code, str(exc))
    raise exc
