"""The wire vocabulary, in one place: metadata keys, the NodeStream path, method names."""

from __future__ import annotations

import functools
import re
from typing import Final

GORUMS_ADDR_KEY: Final = "gorums-addr"
"""Metadata key carrying the caller's claimed listening address (``host:port``)."""

GORUMS_NODE_ID_KEY: Final = "gorums-node-id"
"""Metadata key carrying the caller's claimed node ID (upstream Go Gorums' form);
``0`` marks a client peer."""

GORUMS_MW_KEY: Final = "gorums-mw"
"""Metadata key gorums-mw replicas send when they dial: the sender keeps one
stream per pair (the one the lower ID dialed) and closes its own when it loses.
A replica without it (Go Gorums) keeps both streams, so ours is kept too.
A gorums-mw server also sends it in a stream's response headers."""

GORUMS_CLIENT_KEY: Final = "gorums-client"
"""Metadata key a client peer (no listening address) sends on its NodeStream
to be given a client ID and be callable through ``client_config()``."""

NODE_STREAM_SERVICE: Final = "stream.Gorums"
"""The protobuf full name of the NodeStream service."""

NODE_STREAM_PATH: Final = "/stream.Gorums/NodeStream"
"""The grpc path of the NodeStream RPC."""

BATCHED_NODE_STREAM_SERVICE: Final = "gorums_mw.Stream"
"""The protobuf full name of the batched NodeStream service (gorums-mw peers only)."""

BATCHED_NODE_STREAM_PATH: Final = "/gorums_mw.Stream/BatchedNodeStream"
"""The grpc path of the batched NodeStream RPC: a ``gorums_mw.Batch`` of messages each way."""

_FULL_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+", re.ASCII)
_PATH = re.compile(r"/([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)/([A-Za-z_]\w*)", re.ASCII)


@functools.lru_cache(maxsize=1024)
def full_method_name(method: str) -> str:
    """The protobuf full name (``pkg.Service.Method``) of a method.

    Accepts the full name itself or grpc's path form, ``/pkg.Service/Method``.

    Raises:
        ValueError: ``method`` is neither, with a hint at the expected form.
    """
    if not isinstance(method, str):
        raise TypeError(f"method must be a str, got {type(method).__name__}")
    path = _PATH.fullmatch(method)
    if path is not None:
        return f"{path[1]}.{path[2]}"
    if _FULL_NAME.fullmatch(method):
        return method
    raise ValueError(
        f"method {method!r} is not a protobuf full method name: write"
        " 'pkg.Service.Method' (or the grpc path '/pkg.Service/Method')"
    )
