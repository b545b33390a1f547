"""grpc.aio glue for gorums-mw: identity interceptors and handler decorators.

Depends only on grpc and the core's vocabulary (``Peer``, claims, the
``PeerRegistrar`` protocol that ``gorums_mw.InboundManager`` implements).
"""

from gorums_mw._identity.peer import Peer, current_peer
from gorums_mw._identity.registrar import Cleanup, PeerRegistrar

from ._client import ClientIdentityInterceptor
from ._decorators import replicas_only, with_peer
from ._server import (
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

for _name in __all__:  # public classes print as gorums_mw.interceptors.X
    _value = globals()[_name]
    if isinstance(_value, type) and _value.__module__.startswith(__name__):
        _value.__module__ = __name__
