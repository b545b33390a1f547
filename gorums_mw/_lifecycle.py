"""One lifecycle shape for everything that runs: new → started → stopped."""

from __future__ import annotations

from typing import Literal

State = Literal["new", "started", "stopped"]


class Lifecycle:
    """The state of something with ``await start()`` and an idempotent ``stop()``.

    ``start`` is allowed once; ``stop`` any number of times (it reports
    whether there is anything to stop); a stopped thing is not restarted
    (create a new one).
    """

    __slots__ = ("state", "what")

    def __init__(self, what: str) -> None:
        self.what = what
        self.state: State = "new"

    def start(self) -> None:
        """Move to started.

        Raises:
            RuntimeError: it was started (or stopped) before.
        """
        if self.state == "started":
            raise RuntimeError(f"{self.what} is already started")
        if self.state == "stopped":
            raise RuntimeError(f"{self.what} was stopped; create a new one to start again")
        self.state = "started"

    def stop(self) -> bool:
        """Move to stopped; return whether it was running (so there is something to stop)."""
        running = self.state == "started"
        self.state = "stopped"
        return running

    def require_started(self) -> None:
        """Raise unless started.

        Raises:
            RuntimeError: naming the state and what to do.
        """
        if self.state == "new":
            raise RuntimeError(
                f"{self.what} was never started: await start() (or async with) first"
            )
        if self.state == "stopped":
            raise RuntimeError(f"{self.what} was stopped: its streams are closed; start a new one")
