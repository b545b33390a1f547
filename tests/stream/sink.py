"""A ReplySink that settles one future per request: a test's handle on a channel's requests."""

from __future__ import annotations

import asyncio

from gorums_mw import CallError
from gorums_mw._proto.stream_pb2 import Message
from gorums_mw._stream.channel import Channel


class FutureSink:
    """Sends requests on channels; each reply (or failure) settles its request's future."""

    def __init__(self) -> None:
        self.futures: list[asyncio.Future[Message]] = []
        self.tickets: list[tuple[Channel, int]] = []

    def send(self, channel: Channel, method: str, payload: bytes) -> asyncio.Future[Message]:
        """Send one request; the future of its reply."""
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        self.tickets.append(
            (channel, channel.request(method, payload, (), self, len(self.tickets)))
        )
        return future

    def forget_all(self) -> None:
        """Give up every request sent."""
        for channel, ticket in self.tickets:
            channel.forget(ticket)

    def deliver(self, slot: int, message: Message) -> None:
        if not self.futures[slot].done():
            self.futures[slot].set_result(message)

    def fail(self, slot: int, error: CallError) -> None:
        if not self.futures[slot].done():
            self.futures[slot].set_exception(error)
