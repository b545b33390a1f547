"""The pair rule: of a pair's two streams, which one both replicas use.

When replicas A and B dial each other, each holds an outbound stream to the
other and an inbound stream from it. Both use the stream dialed by the
lower ID: the lower ID keeps its outbound stream; the higher ID closes its
own and calls over the inbound one, and does not dial again while that one
is up. The decision is the same whichever stream is established first.

A peer that does not follow the rule keeps both: Go Gorums keeps both
streams of a pair (and does not send the ``gorums-mw`` mark), so its
inbound stream is never the reason to close ours, we keep dialing it, and
our calls to it go over our own stream (Go serves a stream it accepted in
order and knows who sends on it; requests on a stream it dialed come with
no caller).

A new inbound stream of a peer replacing its earlier one is a reconnect,
never a decision of this rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from gorums_mw import _telemetry as t

Kept = Literal["outbound", "inbound", "both"]
"""Which of a pair's streams one side keeps: its own, the peer's, or both."""

_DECISIONS: Final[dict[Kept, str]] = {
    "outbound": t.DECISION_KEPT_OUTBOUND,
    "inbound": t.DECISION_KEPT_INBOUND,
    "both": t.DECISION_KEPT_BOTH,
}


@dataclass(frozen=True, slots=True)
class PairRule:
    """The rule as seen from one side of one pair; a pure value.

    Attributes:
        my_id: this node's ID.
        peer_id: the peer's ID (never ``my_id``).
        peer_follows: whether the peer follows the rule (it sent the
            ``gorums-mw`` mark; Go Gorums does not).
    """

    my_id: int
    peer_id: int
    peer_follows: bool

    def __post_init__(self) -> None:
        if self.my_id == self.peer_id:
            raise ValueError(f"node {self.my_id} is no pair with itself")

    @property
    def keeps(self) -> Kept:
        """Which stream this side keeps while both are up: ``"outbound"`` (the
        lower ID), ``"inbound"`` (the higher ID, closing its own), or
        ``"both"`` (the higher ID of a peer that keeps both; calls go over
        its own stream)."""
        if self.my_id < self.peer_id:
            return "outbound"
        return "inbound" if self.peer_follows else "both"

    @property
    def dials(self) -> bool:
        """Whether this side dials the peer while the peer's stream to it is
        up; if not, it waits until that stream ends."""
        return self.keeps != "inbound"

    @property
    def decision(self) -> str:
        """What ``gorums.peer.tiebreak`` spans and the ``gorums.peer.tiebreaks``
        counter record as ``gorums.decision``."""
        return _DECISIONS[self.keeps]
