"""What a call needs of the nodes it reaches (``Node`` is the implementation)."""

from __future__ import annotations

from typing import Protocol

from gorums_mw._errors import CallError
from gorums_mw._stream.channel import Channel


class Target(Protocol):
    """What a call needs of a node: who it is, its channel, and where its
    answers are recorded (``Node`` is the implementation)."""

    @property
    def id(self) -> int:
        """The node ID."""
        ...

    @property
    def address(self) -> str:
        """The node's configured address (``""`` for a client peer)."""
        ...

    @property
    def channel(self) -> Channel | None:
        """What requests to the node go through now (None: disconnected)."""
        ...

    def observe(self, elapsed: float, error: CallError | None) -> None:
        """Record how a request went: ``elapsed`` seconds to its reply, or ``error``."""
        ...

    def require_started(self) -> None:
        """Raise ``RuntimeError`` unless the manager whose streams reach the node runs."""
        ...
