"""The pair rule as a table: every combination of the two IDs' order and the peer's dialect."""

from __future__ import annotations

import pytest

from gorums_mw._inbound.pair_rule import PairRule
from gorums_mw._telemetry import DECISION_KEPT_BOTH, DECISION_KEPT_INBOUND, DECISION_KEPT_OUTBOUND


@pytest.mark.parametrize(
    ("my_id", "peer_id", "peer_follows", "keeps", "dials", "decision"),
    [
        # The lower ID keeps the stream it dialed, whatever the peer does.
        (1, 2, True, "outbound", True, DECISION_KEPT_OUTBOUND),
        (1, 2, False, "outbound", True, DECISION_KEPT_OUTBOUND),
        # The higher ID uses the lower one's stream and waits while it is up...
        (2, 1, True, "inbound", False, DECISION_KEPT_INBOUND),
        # ...unless the peer keeps both streams (Go Gorums): then so does it.
        (2, 1, False, "both", True, DECISION_KEPT_BOTH),
        # Only the order of the IDs counts, not their distance or size.
        (7, 4_294_967_295, True, "outbound", True, DECISION_KEPT_OUTBOUND),
        (4_294_967_295, 7, True, "inbound", False, DECISION_KEPT_INBOUND),
        (4_294_967_295, 7, False, "both", True, DECISION_KEPT_BOTH),
    ],
)
def test_pair_rule(
    my_id: int, peer_id: int, peer_follows: bool, keeps: str, dials: bool, decision: str
) -> None:
    rule = PairRule(my_id, peer_id, peer_follows)
    assert (rule.keeps, rule.dials, rule.decision) == (keeps, dials, decision)


@pytest.mark.parametrize("peer_follows", [True, False])
def test_a_node_is_no_pair_with_itself(peer_follows: bool) -> None:
    with pytest.raises(ValueError, match="node 3 is no pair with itself"):
        PairRule(3, 3, peer_follows)
