"""Go Gorums' ``gorums.proto``, shipped so a .proto can ``import "gorums.proto"``.

The directory of this package holds ``gorums.proto`` (upstream's method
options ``rpc``, ``unicast``, ``multicast`` and ``quorumcall``, MIT
licensed); give it to protoc as an include directory::

    python -m grpc_tools.protoc -I protos -I "$(python -m gorums_mw.codegen --include-dir)" ...

``gorums_mw.proto.gorums_pb2`` is its generated code, for reading a
method's options at run time::

    from gorums_mw.proto import gorums_pb2

    method.GetOptions().Extensions[gorums_pb2.quorumcall]

The ``x_pb2`` module of a .proto that imports ``gorums.proto`` imports a
top-level ``gorums_pb2`` (protoc names modules after import paths): compile
``gorums.proto`` together with your protos so ``--python_out`` writes it
next to them. Both copies describe the same file; importing both is fine.
"""
