"""protoc-gen-gorums: typed Gorums calls generated from a .proto.

Go Gorums generates a typed function per method from its ``gorums.proto``
options; this plugin generates the same calls for Python, next to
protoc's ``x_pb2.py``: ``x_gorums.py`` and its stub ``x_gorums.pyi``.
protoc runs the installed ``protoc-gen-gorums`` script::

    python -m grpc_tools.protoc -I protos -I "$(python -m gorums_mw.codegen --include-dir)" \\
        --python_out=. --grpc_python_out=. --gorums_out=. protos/x.proto gorums.proto

(``gorums.proto`` in the list makes ``--python_out`` write the top-level
``gorums_pb2`` that ``x_pb2`` imports.) Per service ``S``:

- ``SConfiguration(config)`` has the quorum calls (``(gorums.quorumcall)``),
  correctable calls (``quorumcall`` on a server-streaming method) and
  multicasts (``(gorums.multicast)``); its ``replies`` has the quorum calls
  as per-node replies;
- ``SNode(node)`` has the RPCs (no option, or ``(gorums.rpc)``) and
  unicasts (``(gorums.unicast)``).

Each method takes the method's request type, returns its reply type, and
calls the string API (``config.quorum_call("p.S.M", ...)``) underneath with
the same keywords. A server-streaming method without ``quorumcall`` and any
client-streaming method make protoc fail with a message naming the method.
"""

from gorums_mw.codegen._main import include_dir, main
from gorums_mw.codegen._model import GenerationError
from gorums_mw.codegen._plugin import generate

__all__ = ["GenerationError", "generate", "include_dir", "main"]
