"""The protoc plugin protocol: a ``CodeGeneratorRequest`` in, a ``CodeGeneratorResponse`` out."""

from __future__ import annotations

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2

from gorums_mw.codegen._model import GenerationError, message_index, read_file
from gorums_mw.codegen._render import render

_Response = plugin_pb2.CodeGeneratorResponse


def generate(request: plugin_pb2.CodeGeneratorRequest) -> plugin_pb2.CodeGeneratorResponse:
    """Generate ``x_gorums.py`` and ``x_gorums.pyi`` for each file of ``request`` with services.

    A file without services gets nothing. A refused .proto (see
    ``gorums_mw.codegen``) makes a response whose ``error`` lists every
    problem, which protoc prints; nothing is generated then.

    Args:
        request: what protoc sends a plugin.

    Returns:
        The generated files, or the error.
    """
    response = _Response(
        supported_features=_Response.FEATURE_PROTO3_OPTIONAL | _Response.FEATURE_SUPPORTS_EDITIONS,
        minimum_edition=descriptor_pb2.EDITION_PROTO2,
        maximum_edition=descriptor_pb2.EDITION_2024,
    )
    if request.parameter:
        response.error = (
            f"protoc-gen-gorums takes no parameter (got {request.parameter!r} from --gorums_opt)"
        )
        return response
    messages = message_index(request.proto_file)
    by_name = {file.name: file for file in request.proto_file}
    problems: list[str] = []
    for name in request.file_to_generate:
        try:
            file = read_file(by_name[name], messages)
        except GenerationError as exc:
            problems.append(str(exc))
            continue
        if not file.services:
            continue
        source, stub = render(file)
        response.file.add(name=f"{file.output}.py", content=source)
        response.file.add(name=f"{file.output}.pyi", content=stub)
    if problems:
        response.error = "\n".join(problems)
        del response.file[:]
    return response
