"""grpc.aio glue for gorums-mw: identity interceptors and handler decorators.

Depends only on grpc and the core's vocabulary (``Peer``, claims, the
``PeerRegistrar`` protocol that ``gorums_mw.InboundManager`` implements).
"""

from gorums_mw._peer import Peer, current_peer
from gorums_mw._registrar import Cleanup, PeerRegistrar
from gorums_mw.interceptors._client import ClientIdentityInterceptor
from gorums_mw.interceptors._decorators import replicas_only, with_peer
from gorums_mw.interceptors._server import (
    NODE_STREAM_METHOD,
    STREAM_METHODS,
    PeerIdentityInterceptor,
)

__all__ = [
    "NODE_STREAM_METHOD",
    "STREAM_METHODS",
    "Cleanup",
    "ClientIdentityInterceptor",
    "Peer",
    "PeerIdentityInterceptor",
    "PeerRegistrar",
    "current_peer",
    "replicas_only",
    "with_peer",
]
