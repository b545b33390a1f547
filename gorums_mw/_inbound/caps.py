"""Stream caps: room for callers that are not configured replicas.

Client peers count against ``Limits.max_client_peers``; client peers and
external callers' NodeStreams together against ``Limits.max_streams``.
Configured replicas are never refused.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from gorums_mw._errors import StreamLimitError
from gorums_mw._identity.registrar import Cleanup
from gorums_mw._limits import Limits


class StreamCaps:
    """Counts external callers' streams and checks the caps of ``Limits``.

    Thread-safe. ``clients`` reports how many client peers are registered
    now; it is read without this object's lock.
    """

    __slots__ = ("_clients", "_external", "_limits", "_lock")

    def __init__(self, limits: Limits, clients: Callable[[], int]) -> None:
        self._limits = limits
        self._clients = clients
        self._lock = threading.Lock()
        self._external: set[object] = set()

    def check_client(self) -> None:
        """Raise unless one more client peer fits.

        Raises:
            StreamLimitError: ``max_client_peers`` or ``max_streams`` is reached.
        """
        with self._lock:
            self._check(client=True)

    def admit_external(self, context: object) -> Cleanup:
        """Hold a place for an external caller's NodeStream (keyed on its
        ``context``); return what frees it.

        Raises:
            StreamLimitError: ``max_streams`` is reached.
        """

        def leave() -> None:
            with self._lock:
                self._external.discard(context)

        with self._lock:
            self._check(client=False)
            self._external.add(context)
        return leave

    def _check(self, *, client: bool) -> None:
        limits = self._limits
        clients = self._clients()
        if client and clients >= limits.max_client_peers:
            raise StreamLimitError("max_client_peers", limits.max_client_peers)
        if clients + len(self._external) >= limits.max_streams:
            raise StreamLimitError("max_streams", limits.max_streams)
