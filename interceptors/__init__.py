"""grpc.aio glue for gorums-mw: identity interceptors and handler decorators.

Depends only on grpc and a small protocol (``PeerRegistrar``) that
``gorums_mw.InboundManager`` implements.
"""

from interceptors._client import ClientIdentityInterceptor
from interceptors._decorators import replicas_only, with_peer
from interceptors._peer import Peer, current_peer
from interceptors._protocol import Cleanup, PeerRegistrar
from interceptors._server import NODE_STREAM_METHOD, PeerIdentityInterceptor

__all__ = [
    "NODE_STREAM_METHOD",
    "Cleanup",
    "ClientIdentityInterceptor",
    "Peer",
    "PeerIdentityInterceptor",
    "PeerRegistrar",
    "current_peer",
    "replicas_only",
    "with_peer",
]
