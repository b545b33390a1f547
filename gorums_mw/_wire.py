"""The wire vocabulary of calls: the NodeStream paths and method names.

The identity metadata keys (``gorums-addr`` and the others) live with the
claims they carry, in ``gorums_mw._identity.claims``.
"""

from __future__ import annotations

import functools
import re
from typing import Final

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
def full_method_name(method: object) -> str:
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
