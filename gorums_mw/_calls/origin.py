"""Where a configuration comes from: the configured replicas its quorums are sized by."""

from __future__ import annotations

from dataclasses import dataclass

from gorums_mw._lifecycle import Lifecycle


@dataclass(frozen=True, slots=True, eq=False)
class Origin:
    """Where a configuration comes from: the configured replicas, and who runs their streams.

    Quorums are sized by this set, never by the nodes connected now: a
    replica cut off from the others must not decide alone.

    Attributes:
        ids: the configured node IDs (the ``with_nodes`` set).
        owners: the lifecycles of the ``System`` or managers whose streams
            carry the calls; a call through one not started fails at once.
    """

    ids: frozenset[int]
    owners: tuple[Lifecycle, ...] = ()

    def require_started(self) -> None:
        """Raise unless every owner is running.

        Raises:
            RuntimeError: an owner was never started, or has stopped.
        """
        for owner in self.owners:
            owner.require_started()

    def join(self, other: Origin) -> Origin:
        """The origin of a configuration combining nodes of both."""
        if other is self:
            return self
        owners = (*self.owners, *(o for o in other.owners if o not in self.owners))
        return Origin(self.ids | other.ids, owners)
