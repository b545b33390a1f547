"""The text of ``x_gorums.pyi``: what mypy reads of the generated calls."""

from __future__ import annotations

from gorums_mw.codegen._calltypes import API, FORWARDED, REPLIES_API, CallType
from gorums_mw.codegen._model import Method, ProtoFile, Service
from gorums_mw.codegen._text import (
    CONFIG_CALLS,
    INDENT,
    NODE_CALLS,
    Names,
    config_doc,
    docstring,
    header,
    method_doc,
    node_doc,
    replies_doc,
    replies_property_doc,
    uses_reply,
)


def render_pyi(file: ProtoFile, names: Names) -> str:
    out = [
        *header(file),
        "",
        "import collections.abc as _abc",
        "import typing as _typing",
        "",
        "import gorums_mw as _gorums_mw",
        *names.imports(),
        "",
        '_T = _typing.TypeVar("_T")',
    ]
    for service in file.services:
        out.extend(_pyi_classes(service, names))
    return "\n".join(out) + "\n"


def _pyi_classes(service: Service, names: Names) -> list[str]:
    out: list[str] = []
    config_methods = service.of(*CONFIG_CALLS)
    quorum_calls = service.of(CallType.QUORUM_CALL)
    if config_methods:
        out += _pyi_class_head(service, "Configuration", "config", "Configuration")
        if quorum_calls:
            out += [
                f"{INDENT}@property",
                f"{INDENT}def replies(self) -> {service.name}Replies:",
                *docstring(replies_property_doc(service), 2),
            ]
        for method in config_methods:
            out += _pyi_method(method, names, API[method.call], method.call)
    if quorum_calls:
        out += _pyi_class_head(service, "Replies", "config", "Configuration")
        for method in quorum_calls:
            out += _pyi_method(method, names, REPLIES_API, None)
    node_methods = service.of(*NODE_CALLS)
    if node_methods:
        out += _pyi_class_head(service, "Node", "node", "Node")
        for method in node_methods:
            out += _pyi_method(method, names, API[method.call], method.call)
    return out


def _pyi_class_head(service: Service, suffix: str, member: str, kind: str) -> list[str]:
    doc = {"Configuration": config_doc, "Replies": replies_doc, "Node": node_doc}[suffix]
    return [
        "",
        f"class {service.name}{suffix}:",
        *docstring(doc(service), 1),
        "",
        f"{INDENT}{member}: _gorums_mw.{kind}",
        f"{INDENT}def __init__(self, {member}: _gorums_mw.{kind}) -> None: ...",
    ]


def _pyi_method(method: Method, names: Names, api: str, call: CallType | None) -> list[str]:
    request = names.type(method.request)
    reply = names.type(method.reply) if uses_reply(method) else "_typing.Any"
    forwarded = [k.parameter(request, reply) for k in FORWARDED[api]]
    doc = docstring(method_doc(method, call), 2)
    if api == "quorum_call":
        return [
            *_pyi_def(
                method.name,
                request,
                ["quorum: int | None = None", *forwarded, "quorum_function: None = None"],
                f"dict[int, {reply}]",
                doc,
                overload=True,
            ),
            *_pyi_def(
                method.name,
                request,
                [
                    "quorum: None = None",
                    *forwarded,
                    f"quorum_function: _gorums_mw.QuorumFunction[{reply}, _T]",
                ],
                "_T",
                [],
                overload=True,
            ),
        ]
    if api == "correctable":
        return [
            *_pyi_def(
                method.name,
                request,
                [*forwarded, "quorum_function: None = None"],
                f"_abc.AsyncIterator[_gorums_mw.NodeReply[{reply}]]",
                doc,
                overload=True,
                sync=True,
            ),
            *_pyi_def(
                method.name,
                request,
                [*forwarded, f"quorum_function: _gorums_mw.QuorumFunction[{reply}, _T]"],
                "_abc.AsyncIterator[_T]",
                [],
                overload=True,
                sync=True,
            ),
        ]
    returns = {
        "replies": f"_abc.AsyncIterator[_gorums_mw.NodeReply[{reply}]]",
        "multicast": "tuple[int, ...]",
        "rpc": reply,
        "unicast": "bool",
    }[api]
    return _pyi_def(method.name, request, forwarded, returns, doc, sync=api == "replies")


def _pyi_def(
    name: str,
    request: str,
    keywords: list[str],
    returns: str,
    doc: list[str],
    *,
    overload: bool = False,
    sync: bool = False,
) -> list[str]:
    """One stub signature; ``sync`` for a method returning an async iterator."""
    head = [f"{INDENT}@_typing.overload"] if overload else []
    params = [f"request: {request}", *(["*"] if keywords else []), *keywords]
    prefix = "def" if sync else "async def"
    body = doc if doc else []
    return [
        *head,
        f"{INDENT}{prefix} {name}(",
        f"{INDENT * 2}self,",
        *(f"{INDENT * 2}{param}," for param in params),
        f"{INDENT}) -> {returns}:" + ("" if body else " ..."),
        *body,
    ]
