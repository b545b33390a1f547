"""Who is calling: node IDs, the ``Peer`` value, ``current_peer()`` and its binding."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

from gorums_mw._errors import ConfigurationError

EXTERNAL_ID = 0
"""The ID of every caller that is not a known node."""

MAX_NODE_ID = 2**32 - 1
"""The largest configured node ID; client peers get IDs above it."""


def check_node_id(node_id: object) -> int:
    """Return ``node_id`` if it is a valid node ID (1..2**32-1).

    Raises:
        ConfigurationError: it is not.
    """
    if not isinstance(node_id, int) or isinstance(node_id, bool):
        raise ConfigurationError(f"node ID must be an int, got {node_id!r}")
    if node_id == EXTERNAL_ID:
        raise ConfigurationError("node ID 0 is reserved for external clients")
    if not 0 < node_id <= MAX_NODE_ID:
        raise ConfigurationError(f"node ID {node_id} is outside 1..{MAX_NODE_ID}")
    return node_id


@dataclass(frozen=True, slots=True)
class Peer:
    """The identity of the caller of one RPC or stream.

    Attributes:
        id: the node ID, or 0 for an external client.
        address: the validated, normalized claimed address (``host:port``),
            or ``""`` when the caller sent none.
        real_address: the peer string grpc reported for the connection
            (``ipv4:127.0.0.1:50000``, ``ipv6:%5B::1%5D:50000``, ``unix:``).
    """

    id: int
    address: str
    real_address: str

    @property
    def is_external(self) -> bool:
        """Whether the caller is an external client (ID 0)."""
        return self.id == EXTERNAL_ID

    @property
    def is_replica(self) -> bool:
        """Whether the caller is a configured node (ID 1..2**32-1)."""
        return EXTERNAL_ID < self.id <= MAX_NODE_ID


UNKNOWN_PEER = Peer(EXTERNAL_ID, "", "")
_current: contextvars.ContextVar[Peer] = contextvars.ContextVar(
    "gorums_current_peer", default=UNKNOWN_PEER
)


def current_peer() -> Peer:
    """The peer that made the call the current task is handling.

    Inside a handler behind ``PeerIdentityInterceptor``, or a handler called
    over NodeStream, this is the identified caller. Elsewhere, and for
    callers that sent no ``gorums-addr``, it is an external peer (ID 0).
    """
    return _current.get()


def bind_peer(peer: Peer) -> contextvars.Token[Peer]:
    """Make ``peer`` what ``current_peer()`` returns in this task."""
    return _current.set(peer)


def unbind_peer(token: contextvars.Token[Peer]) -> None:
    """Undo a ``bind_peer``."""
    _current.reset(token)
