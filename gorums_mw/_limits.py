"""Limits of a server and its streams: the largest message, the bytes buffered per stream
and in all, and how many streams of callers other than the configured replicas it holds.

A stream buffers two kinds of bytes: messages queued for its single writer,
and the peer's requests whose handlers are still running. Both count against
the stream's budget and against the budget its owner (an ``InboundManager``,
an ``OutboundManager`` or a ``System``) shares between all its streams.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

MiB: Final = 1 << 20

QUEUED_OVERHEAD: Final = 256
"""Bytes a queued message counts beyond its own size (the Python objects around it)."""

SERVING_OVERHEAD: Final = 4096
"""Bytes a request in service counts beyond its own size (its task and context)."""

BATCH_FRAMING_BYTES: Final = 16
"""What framing a message in a batch adds (a tag and a length): grpc's own size
limit is ``Limits.max_message`` plus this, so one message of the limit fits."""

REFUSAL_SLACK: Final = 64 * 1024
"""Bytes beyond a full budget that error replies to refused requests may use, so a
peer flooding a full stream still learns why, while what it costs stays bounded."""


@dataclass(frozen=True, slots=True)
class Limits:
    """How large one message may be, how many bytes streams may buffer, and how
    many streams of unconfigured callers a server holds.

    Attributes:
        max_message: the largest NodeStream message, in bytes, in either
            direction. Sending a larger one fails that call alone with
            ``RESOURCE_EXHAUSTED``; it is also grpc's receive and send limit
            on the server and on dialed channels (default 4 MiB, grpc's own).
        stream_buffer: bytes one stream may buffer: messages queued for its
            writer plus the peer's requests in service (default 8 MiB). A
            call waits for room (within its timeout); a request from the peer
            beyond it is answered ``RESOURCE_EXHAUSTED`` and dropped.
        total_buffer: the same bound across every stream of one owner
            (default 128 MiB): with one replica per process, the process's bound.
        transport_window: grpc's own read-ahead per stream (its HTTP/2
            flow-control window), fixed (default 1 MiB). grpc's default
            grows it by BDP probing, which let one flooding peer make grpc
            buffer over 100 MiB; fixed, it bounds what grpc holds per stream
            (throughput per stream is then at most this window per round trip).
        max_client_peers: client peers (``gorums-client``) registered at once
            (default 1,000). One more is answered ``RESOURCE_EXHAUSTED``;
            nothing registered is disturbed.
        max_streams: inbound streams held at once for callers that are not
            configured replicas: client peers and external callers (default
            4,096; an idle one costs the server tens of KiB, BENCHMARKS.md).
            One more is answered ``RESOURCE_EXHAUSTED``. Configured replicas
            are never refused: each holds one stream, replaced when it
            reconnects.
    """

    max_message: int = 4 * MiB
    stream_buffer: int = 8 * MiB
    total_buffer: int = 128 * MiB
    transport_window: int = 1 * MiB
    max_client_peers: int = 1_000
    max_streams: int = 4_096

    def __post_init__(self) -> None:
        for name in ("max_message", "stream_buffer", "total_buffer", "transport_window"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Limits.{name} must be a positive int of bytes, got {value!r}")
        for name in ("max_client_peers", "max_streams"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Limits.{name} must be a positive int, got {value!r}")
        if self.stream_buffer < self.max_message:
            raise ValueError(
                f"Limits.stream_buffer ({self.stream_buffer}) must hold one message of"
                f" max_message ({self.max_message}) bytes"
            )
        if self.total_buffer < self.stream_buffer:
            raise ValueError(
                f"Limits.total_buffer ({self.total_buffer}) must be at least"
                f" stream_buffer ({self.stream_buffer})"
            )

    def grpc_options(self) -> list[tuple[str, int]]:
        """grpc's options (server and channel alike): ``max_message`` both ways (plus
        what batching adds to one message) and the fixed ``transport_window``."""
        grpc_max = self.max_message + BATCH_FRAMING_BYTES
        return [
            ("grpc.max_receive_message_length", grpc_max),
            ("grpc.max_send_message_length", grpc_max),
            ("grpc.http2.bdp_probe", 0),
            ("grpc.http2.lookahead_bytes", self.transport_window),
        ]
