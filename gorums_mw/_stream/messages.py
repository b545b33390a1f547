"""NodeStream messages: their IDs, requests, error replies and the one-way mark.

Both ends of a stream allocate message IDs for the messages they send. The
end that dialed uses IDs below ``SERVER_ID_BIT``; the end that accepted uses
IDs with that bit set, so the two never collide and a message's ID says
whether it is a reply to us or a request for us. One-way messages take an ID
from the same partition but no reply is awaited (as upstream Go Gorums
does); a request with ID 0 is one-way too (earlier gorums-mw versions).
"""

from __future__ import annotations

import itertools
from typing import Final

import grpc

from gorums_mw._proto.stream_pb2 import Message, MetadataEntry
from gorums_mw._stream.channel import Entries

SERVER_ID_BIT: Final = 1 << 63
"""Set in the IDs of messages sent by the end that accepted the stream."""

ONE_WAY_KEY: Final = "gorums-one-way"
"""Entry marking a one-way request, so a gorums-mw receiver sends no reply.
Go Gorums knows one-way methods by their type and ignores the entry."""

ONE_WAY_ENTRY: Final = MetadataEntry(key=ONE_WAY_KEY, value="1")
"""The entry that marks a one-way request."""


def message_ids(*, accepted: bool) -> itertools.count[int]:
    """A fresh generator of message IDs for one end of a stream."""
    return itertools.count(SERVER_ID_BIT + 1 if accepted else 1)


def request_message(msg_id: int, method: str, payload: bytes, entries: Entries) -> Message:
    """A NodeStream request carrying ``entries`` as its metadata."""
    message = Message(message_seq_no=msg_id, method=method, payload=payload)
    if entries:
        message.entry.extend(MetadataEntry(key=k, value=v) for k, v in entries)
    return message


def is_one_way(request: Message) -> bool:
    """Whether ``request`` wants no reply: ID 0, or marked one-way by its sender."""
    if not request.message_seq_no:
        return True
    entries = request.entry  # most requests have none: no generator for them
    return bool(entries) and any(entry.key == ONE_WAY_KEY for entry in entries)


def error_reply(request: Message, code: grpc.StatusCode, details: str) -> Message:
    """The reply that ends ``request`` with the status ``code``."""
    reply = Message(message_seq_no=request.message_seq_no, method=request.method)
    reply.status.code = code.value[0]
    reply.status.message = details
    return reply


def too_large(what: str, size: int, limit: int) -> str:
    """Why a message of ``size`` bytes is refused."""
    return f"{what} of {size} bytes exceeds the message limit of {limit} bytes (Limits.max_message)"
