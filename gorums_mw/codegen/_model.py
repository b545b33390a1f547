"""What the generator knows of a .proto: services, methods, call types, types to import.

The call type of a method follows Go Gorums' generator (``gengorums``) at
commit 3241d25b, option for option:

- no option, or ``(gorums.rpc)``: an RPC on one node;
- ``(gorums.unicast)``: one-way to one node; ``(gorums.multicast)``: one-way
  to every node of a configuration;
- ``(gorums.quorumcall)``: a quorum call, or a correctable call when the
  method is server streaming;
- ``rpc`` counts only when none of the others is set; two of the others
  together are an error (upstream would generate two functions of one name);
- server streaming without ``quorumcall`` is an error (as upstream), and so
  is client streaming: upstream requires ``multicast`` for it, and gorums-mw
  calls and serves only unary and server-streaming methods over NodeStream,
  so it refuses client streaming in every case, with the way out.

Unlike upstream, a file may hold several services.
"""

from __future__ import annotations

import keyword
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from google.protobuf import descriptor_pb2

from gorums_mw.codegen._calltypes import CallType
from gorums_mw.proto import gorums_pb2

_OPTIONS = (gorums_pb2.rpc, gorums_pb2.unicast, gorums_pb2.multicast, gorums_pb2.quorumcall)
"""gorums.proto's method options (importing ``gorums_pb2`` registers them, so
the request's method options parse them as extensions)."""
RPC_OPTION = gorums_pb2.rpc.number
UNICAST_OPTION = gorums_pb2.unicast.number
MULTICAST_OPTION = gorums_pb2.multicast.number
QUORUMCALL_OPTION = gorums_pb2.quorumcall.number
_OPTION_NAMES = {option.number: option.name for option in _OPTIONS}

RESERVED = frozenset({"config", "node", "replies", "int", "float", "bool", "dict", "tuple"})
"""Names a method may not have: members of the generated classes, and the
builtins their stubs' annotations use (a method of that name would shadow it)."""

_SERVICE_FIELD = descriptor_pb2.FileDescriptorProto.SERVICE_FIELD_NUMBER
_METHOD_FIELD = descriptor_pb2.ServiceDescriptorProto.METHOD_FIELD_NUMBER


class GenerationError(Exception):
    """A .proto the generator refuses; the message lists every problem, one per line."""


@dataclass(frozen=True, slots=True)
class MessageRef:
    """A message class: the module that defines it and its name there (``Outer.Inner``)."""

    module: str
    name: str


@dataclass(frozen=True, slots=True)
class Method:
    """One method of a service and how it is called."""

    name: str
    full_name: str
    call: CallType
    request: MessageRef
    reply: MessageRef
    doc: str


@dataclass(frozen=True, slots=True)
class Service:
    """A service and its methods, in .proto order."""

    name: str
    full_name: str
    doc: str
    methods: tuple[Method, ...]

    def of(self, *calls: CallType) -> tuple[Method, ...]:
        """The methods of these call types, in .proto order."""
        return tuple(method for method in self.methods if method.call in calls)


@dataclass(frozen=True, slots=True)
class ProtoFile:
    """A .proto to generate for: its services and the module of its messages."""

    name: str
    module: str
    services: tuple[Service, ...]

    @property
    def output(self) -> str:
        """The path of the generated module without suffix (``pkg/x_gorums``)."""
        return self.name.removesuffix(".proto") + "_gorums"


def module_of(proto_name: str) -> str:
    """The Python module protoc's ``--python_out`` writes for ``proto_name``."""
    return proto_name.removesuffix(".proto").replace("-", "_").replace("/", ".") + "_pb2"


def message_index(files: Iterable[descriptor_pb2.FileDescriptorProto]) -> dict[str, MessageRef]:
    """Every message of ``files`` by fully qualified name (``.pkg.Outer.Inner``)."""
    index: dict[str, MessageRef] = {}

    def walk(
        module: str, prefix: str, names: str, messages: Iterable[descriptor_pb2.DescriptorProto]
    ) -> None:
        for message in messages:
            qualified = f"{names}.{message.name}" if names else message.name
            index[f"{prefix}.{qualified}"] = MessageRef(module, qualified)
            walk(module, prefix, qualified, message.nested_type)

    for file in files:
        prefix = f".{file.package}" if file.package else ""
        walk(module_of(file.name), prefix, "", file.message_type)
    return index


def read_file(
    file: descriptor_pb2.FileDescriptorProto, messages: Mapping[str, MessageRef]
) -> ProtoFile:
    """The services of ``file`` with each method's call type.

    Raises:
        GenerationError: a method's options or streaming are not allowed
            (every such method of the file is listed).
    """
    comments = _comments(file)
    problems: list[str] = []
    services: list[Service] = []
    for s_index, service in enumerate(file.service):
        full_service = f"{file.package}.{service.name}" if file.package else service.name
        methods: list[Method] = []
        for m_index, method in enumerate(service.method):
            full = f"{full_service}.{method.name}"
            try:
                call = call_type(method)
                _check_name(method.name)
            except GenerationError as exc:
                problems.append(f"{file.name}: {full}: {exc}")
                continue
            methods.append(
                Method(
                    name=method.name,
                    full_name=full,
                    call=call,
                    request=messages[method.input_type],
                    reply=messages[method.output_type],
                    doc=comments.get((_SERVICE_FIELD, s_index, _METHOD_FIELD, m_index), ""),
                )
            )
        services.append(
            Service(
                service.name,
                full_service,
                comments.get((_SERVICE_FIELD, s_index), ""),
                tuple(methods),
            )
        )
    if problems:
        raise GenerationError("\n".join(problems))
    return ProtoFile(file.name, module_of(file.name), tuple(services))


def call_type(method: descriptor_pb2.MethodDescriptorProto) -> CallType:
    """The call type of ``method`` by upstream's rules (see the module docstring).

    Raises:
        GenerationError: the options and the streaming do not make a call type.
    """
    options = set(_options(method.options))
    kinds = options - {RPC_OPTION}
    if len(kinds) > 1:
        named = " and ".join(f"(gorums.{_OPTION_NAMES[number]})" for number in sorted(kinds))
        raise GenerationError(f"{named} cannot be combined: a method has one call type")
    if method.client_streaming:
        if MULTICAST_OPTION not in kinds:
            raise GenerationError(
                "option (gorums.multicast) is required for client-streaming methods"
                " (as Go Gorums), and gorums-mw does not call client-streaming methods"
                " at all: declare it unary, `rpc M(Req) returns (Reply)`"
            )
        raise GenerationError(
            "client-streaming multicast: gorums-mw calls and serves only unary and"
            " server-streaming methods over NodeStream; declare it unary with"
            " option (gorums.multicast), which Go Gorums sends the same way"
        )
    if method.server_streaming:
        if QUORUMCALL_OPTION not in kinds:
            raise GenerationError(
                "option (gorums.quorumcall) is required for server-streaming methods"
                " (a correctable call), as Go Gorums"
            )
        return CallType.CORRECTABLE
    if QUORUMCALL_OPTION in kinds:
        return CallType.QUORUM_CALL
    if MULTICAST_OPTION in kinds:
        return CallType.MULTICAST
    if UNICAST_OPTION in kinds:
        return CallType.UNICAST
    return CallType.RPC


def _options(options: descriptor_pb2.MethodOptions) -> Iterator[int]:
    """The gorums options set to true, by field number."""
    return (option.number for option in _OPTIONS if options.Extensions[option])


def _check_name(name: str) -> None:
    if keyword.iskeyword(name) or name in RESERVED:
        raise GenerationError(
            f"the method name {name!r} is a Python keyword or a name the generated"
            " classes use; rename the method"
        )


def _comments(file: descriptor_pb2.FileDescriptorProto) -> dict[tuple[int, ...], str]:
    """Leading comments by source path (``source_code_info``), cleaned up."""
    found: dict[tuple[int, ...], str] = {}
    for location in file.source_code_info.location:
        if location.leading_comments:
            found[tuple(location.path)] = clean_comment(location.leading_comments)
    return found


def clean_comment(text: str) -> str:
    """A .proto comment as docstring text: one leading space off each line, no blank ends."""
    lines = [line[1:] if line.startswith(" ") else line for line in text.splitlines()]
    return "\n".join(line.rstrip() for line in lines).strip("\n")
