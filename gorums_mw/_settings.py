"""Settings that travel together: keepalive and reconnect backoff."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


def setting(value: T | None, kind: type[T], name: str) -> T:
    """``value``, or the default ``kind()`` when None.

    Raises:
        TypeError: ``value`` is not a ``kind``.
    """
    if value is None:
        return kind()
    if not isinstance(value, kind):
        raise TypeError(f"{name} must be a {kind.__name__}, got {value!r}")
    return value


def _is_seconds(value: object) -> bool:
    """Whether ``value`` is a finite number of seconds above zero (not a bool)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


@dataclass(frozen=True, slots=True)
class Keepalive:
    """gRPC keepalive: how fast a peer that vanished without goodbye is noticed.

    Both ends ping an idle connection every ``interval`` seconds and drop it
    when a ping is not answered within ``timeout`` seconds, so a killed or
    stalled peer leaves every configuration within ``bound`` seconds.
    """

    interval: float = 5.0
    timeout: float = 5.0

    def __post_init__(self) -> None:
        for name in ("interval", "timeout"):
            value = getattr(self, name)
            if not _is_seconds(value):
                raise ValueError(
                    f"Keepalive.{name} must be a finite, positive number of seconds, got {value!r}"
                )

    @property
    def bound(self) -> float:
        """Seconds within which a dead peer is detected (plus scheduling slack)."""
        return self.interval + self.timeout

    def channel_options(self) -> list[tuple[str, int]]:
        """Options for a dialing ``grpc.aio`` channel."""
        return [
            ("grpc.keepalive_time_ms", int(self.interval * 1000)),
            ("grpc.keepalive_timeout_ms", int(self.timeout * 1000)),
            ("grpc.http2.ping_timeout_ms", int(self.timeout * 1000)),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
        ]

    def server_options(self) -> list[tuple[str, int]]:
        """Options for a ``grpc.aio`` server that accepts these pings and pings back."""
        return [
            *self.channel_options(),
            ("grpc.http2.min_ping_interval_without_data_ms", int(self.interval * 1000 / 2)),
        ]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays between reconnect attempts: exponential, capped, jittered."""

    initial: float = 0.05
    maximum: float = 2.0
    multiplier: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        for name in ("initial", "maximum", "multiplier"):
            value = getattr(self, name)
            if not _is_seconds(value):
                raise ValueError(f"Backoff.{name} must be a finite, positive number, got {value!r}")
        if not self.initial <= self.maximum:
            raise ValueError(f"Backoff needs initial <= maximum, got {self!r}")
        if self.multiplier < 1:
            raise ValueError(f"Backoff.multiplier must be at least 1, got {self.multiplier!r}")
        jitter = self.jitter
        if isinstance(jitter, bool) or not isinstance(jitter, int | float) or not 0 <= jitter < 1:
            raise ValueError(f"Backoff.jitter must be in [0, 1), got {jitter!r}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before reconnect attempt ``attempt`` (0-based)."""
        base = min(self.maximum, self.initial * self.multiplier**attempt)
        return base * (1 + random.uniform(-self.jitter, self.jitter))

    def channel_options(self) -> list[tuple[str, int]]:
        """grpc's own reconnect backoff, aligned with this one."""
        return [
            ("grpc.initial_reconnect_backoff_ms", max(1, int(self.initial * 1000))),
            ("grpc.min_reconnect_backoff_ms", max(1, int(self.initial * 1000))),
            ("grpc.max_reconnect_backoff_ms", max(1, int(self.maximum * 1000))),
        ]


@dataclass(frozen=True, slots=True)
class NameResolution:
    """How node addresses given as DNS names are kept current.

    A name's IPs are cached. An entry older than ``ttl`` seconds is
    refreshed in the background when next used; a claim for a node from an
    IP its entry lacks is refused and triggers a refresh, at most once per
    ``min_interval`` seconds per name. A replica that comes back on a new
    IP is therefore accepted again within ``min_interval`` plus one
    reconnect backoff of its dialer (plus the time its name takes to
    resolve). Names are never resolved on a call's path.
    """

    ttl: float = 30.0
    min_interval: float = 1.0

    def __post_init__(self) -> None:
        for name in ("ttl", "min_interval"):
            value = getattr(self, name)
            if not _is_seconds(value):
                raise ValueError(
                    f"NameResolution.{name} must be a finite, positive number of seconds,"
                    f" got {value!r}"
                )
