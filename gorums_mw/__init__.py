"""gorums-mw: symmetric configurations for Python gRPC, as grpc.aio middleware."""

from gorums_mw._calls.answers import NodeReply, QuorumFunction
from gorums_mw._calls.configuration import Configuration
from gorums_mw._calls.interception import CallInfo, QuorumInterceptor
from gorums_mw._calls.node import Node
from gorums_mw._errors import (
    CallError,
    ConfigurationError,
    GorumsError,
    InvalidAddressError,
    PeerAddressMismatchError,
    PeerCertificateError,
    QuorumCallError,
    StreamLimitError,
)
from gorums_mw._health import add_quorum_health
from gorums_mw._identity.address import normalize_addr
from gorums_mw._identity.claims import (
    GORUMS_ADDR_KEY,
    GORUMS_CLIENT_KEY,
    GORUMS_NODE_ID_KEY,
    identify_peer,
)
from gorums_mw._identity.peer import Peer, current_peer
from gorums_mw._inbound.manager import InboundManager
from gorums_mw._inbound.service import add_node_stream_service
from gorums_mw._limits import Limits
from gorums_mw._options import InboundNodeOption, NodeListOption, with_node_list, with_nodes
from gorums_mw._outbound import OutboundManager
from gorums_mw._settings import Backoff, Keepalive, NameResolution
from gorums_mw._stream.registry import HandlerRegistry
from gorums_mw._system import System
from gorums_mw._version import __version__

__all__ = [
    "GORUMS_ADDR_KEY",
    "GORUMS_CLIENT_KEY",
    "GORUMS_NODE_ID_KEY",
    "Backoff",
    "CallError",
    "CallInfo",
    "Configuration",
    "ConfigurationError",
    "GorumsError",
    "HandlerRegistry",
    "InboundManager",
    "InboundNodeOption",
    "InvalidAddressError",
    "Keepalive",
    "Limits",
    "NameResolution",
    "Node",
    "NodeListOption",
    "NodeReply",
    "OutboundManager",
    "Peer",
    "PeerAddressMismatchError",
    "PeerCertificateError",
    "QuorumCallError",
    "QuorumFunction",
    "QuorumInterceptor",
    "StreamLimitError",
    "System",
    "__version__",
    "add_node_stream_service",
    "add_quorum_health",
    "current_peer",
    "identify_peer",
    "normalize_addr",
    "with_node_list",
    "with_nodes",
]

for _name in __all__:  # public classes print as gorums_mw.X, where users import them
    _value = globals()[_name]
    if isinstance(_value, type):
        _value.__module__ = __name__
