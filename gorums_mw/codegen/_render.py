"""The text of ``x_gorums.py`` (what runs) and ``x_gorums.pyi`` (what mypy reads).

Per service ``S`` of package ``p``:

- ``SConfiguration(config)``: its quorum calls, correctable calls and
  multicasts, each calling ``config.quorum_call("p.S.M", request, Reply, ...)``
  and the like; ``.replies`` gives ``SReplies``, the quorum calls as per-node
  replies (``config.replies``);
- ``SNode(node)``: its RPCs and unicasts (``node.rpc``, ``node.unicast``).

A class without methods is left out. The module imports its messages'
``_pb2`` modules and nothing of gorums-mw at run time; a generated method
returns the string API's own awaitable or iterator, so it adds one call
and no coroutine. The output depends only on the request (deterministic).
"""

from __future__ import annotations

from collections.abc import Iterable

from gorums_mw.codegen._calltypes import API, FORWARDED, OVERLOADED, REPLIES_API, CallType
from gorums_mw.codegen._model import MessageRef, Method, ProtoFile, Service

_CONFIG_CALLS = tuple(call for call in CallType if not call.on_node)
_NODE_CALLS = tuple(call for call in CallType if call.on_node)
_INDENT = "    "

_WHAT = {
    CallType.QUORUM_CALL: (
        "Quorum call ``{full}``.\n\n"
        "Returns the replies by node ID once ``quorum`` of them (default a\n"
        "majority of the configured replicas) are in, or the result of\n"
        "``quorum_function``; see\n"
        "``gorums_mw.Configuration.quorum_call``."
    ),
    CallType.CORRECTABLE: (
        "Correctable call ``{full}`` (server streaming).\n\n"
        "Yields every reply of every node as it arrives, or the improving\n"
        "results of ``quorum_function``; see ``gorums_mw.Configuration.correctable``."
    ),
    CallType.MULTICAST: (
        "Multicast ``{full}``.\n\n"
        "Sends the request one-way to every connected node and returns their\n"
        "IDs; see ``gorums_mw.Configuration.multicast``."
    ),
    CallType.RPC: "RPC ``{full}``.\n\nReturns this node's reply; see ``gorums_mw.Node.rpc``.",
    CallType.UNICAST: (
        "Unicast ``{full}``.\n\n"
        "Sends the request one-way to this node and returns whether it was\n"
        "sent; see ``gorums_mw.Node.unicast``."
    ),
}
_REPLIES_WHAT = (
    "``{full}`` on every node, answer by answer.\n\n"
    "Yields each node's ``NodeReply`` as it arrives (Go Gorums'\n"
    "``Results()``); see ``gorums_mw.Configuration.replies``."
)


class _Names:
    """The module aliases of the ``_pb2`` modules, unique and stable."""

    def __init__(self, modules: Iterable[str]) -> None:
        ordered = sorted(set(modules))
        basenames = [module.rpartition(".")[2] for module in ordered]
        self.alias = {
            module: f"_{base}" if basenames.count(base) == 1 else "_" + module.replace(".", "_")
            for module, base in zip(ordered, basenames, strict=True)
        }

    def imports(self, used: Iterable[str] | None = None) -> list[str]:
        wanted = set(self.alias) if used is None else set(used)
        lines = []
        for module, alias in sorted(self.alias.items()):
            if module not in wanted:
                continue
            package, _, base = module.rpartition(".")
            if package:
                lines.append(f"from {package} import {base} as {alias}")
            else:
                lines.append(f"import {base} as {alias}")
        return lines

    def type(self, message: MessageRef) -> str:
        return f"{self.alias[message.module]}.{message.name}"


def render(file: ProtoFile) -> tuple[str, str]:
    """The source of ``x_gorums.py`` and of ``x_gorums.pyi`` for ``file``."""
    names = _Names(
        [file.module]
        + [m.request.module for s in file.services for m in s.methods]
        + [m.reply.module for s in file.services for m in s.methods if _uses_reply(m)]
    )
    return _render_py(file, names), _render_pyi(file, names)


def _uses_reply(method: Method) -> bool:
    return method.call not in (CallType.MULTICAST, CallType.UNICAST)


# ---- x_gorums.py -----------------------------------------------------------------------


def _render_py(file: ProtoFile, names: _Names) -> str:
    used = [file.module] + [
        m.reply.module for s in file.services for m in s.methods if _uses_reply(m)
    ]
    out = [*_header(file), "", *names.imports(used), ""]
    services, constants = _constants(file, set(names.alias.values()))
    for service in file.services:
        if not service.methods:
            continue
        out.append(
            f"{services[service.name]} = {names.alias[file.module]}.DESCRIPTOR"
            f'.services_by_name["{service.name}"].methods_by_name'
        )
        for method in service.methods:
            out.append(
                f"{constants[method.full_name]} = "
                f'{services[service.name]}["{method.name}"].full_name'
            )
    for service in file.services:
        out.extend(_py_classes(service, names, constants))
    return "\n".join(out) + "\n"


def _constants(file: ProtoFile, taken: set[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Private module names: per service its methods' descriptors, per method its full name."""

    def unique(name: str) -> str:
        candidate, suffix = name, 1
        while candidate in taken:
            suffix += 1
            candidate = f"{name}_{suffix}"
        taken.add(candidate)
        return candidate

    services = {service.name: unique(f"_{service.name}") for service in file.services}
    constants = {
        method.full_name: unique(f"_{service.name}_{method.name}")
        for service in file.services
        for method in service.methods
    }
    return services, constants


def _py_classes(service: Service, names: _Names, constants: dict[str, str]) -> list[str]:
    out: list[str] = []
    config_methods = service.of(*_CONFIG_CALLS)
    quorum_calls = service.of(CallType.QUORUM_CALL)
    if config_methods:
        out += _py_class_head(service, "Configuration", "config", _config_doc(service))
        if quorum_calls:
            out += [
                "",
                f"{_INDENT}@property",
                f"{_INDENT}def replies(self):",
                *_docstring(_replies_property_doc(service), 2),
                f"{_INDENT * 2}return {service.name}Replies(self.config)",
            ]
        for method in config_methods:
            out += _py_method(method, names, constants, "config", API[method.call], method.call)
    if quorum_calls:
        out += _py_class_head(service, "Replies", "config", _replies_doc(service))
        for method in quorum_calls:
            out += _py_method(method, names, constants, "config", REPLIES_API, None)
    node_methods = service.of(*_NODE_CALLS)
    if node_methods:
        out += _py_class_head(service, "Node", "node", _node_doc(service))
        for method in node_methods:
            out += _py_method(method, names, constants, "node", API[method.call], method.call)
    return out


def _py_class_head(service: Service, suffix: str, member: str, doc: str) -> list[str]:
    cls = f"{service.name}{suffix}"
    shown = "ids={list(self.config.ids)}" if member == "config" else "{self.node!r}"
    return [
        "",
        "",
        f"class {cls}:",
        *_docstring(doc, 1),
        "",
        f'{_INDENT}__slots__ = ("{member}",)',
        "",
        f"{_INDENT}def __init__(self, {member}):",
        f"{_INDENT * 2}self.{member} = {member}",
        "",
        f"{_INDENT}def __repr__(self):",
        f'{_INDENT * 2}return f"<{cls} {shown}>"',
    ]


def _py_method(
    method: Method,
    names: _Names,
    constants: dict[str, str],
    member: str,
    api: str,
    call: CallType | None,
) -> list[str]:
    keywords = _keywords(api)
    params = ", ".join(["self", "request", *(["*"] if keywords else [])])
    params += "".join(f", {name}={default}" for name, default in keywords)
    args = [constants[method.full_name], "request"]
    if _uses_reply(method):
        args.append(names.type(method.reply))
    args += [f"{name}={name}" for name, _ in keywords]
    return [
        "",
        f"{_INDENT}def {method.name}({params}):",
        *_docstring(_method_doc(method, call), 2),
        f"{_INDENT * 2}return self.{member}.{api}(",
        *(f"{_INDENT * 3}{arg}," for arg in args),
        f"{_INDENT * 2})",
    ]


def _keywords(api: str) -> list[tuple[str, str]]:
    """The keywords of a generated method and their defaults, in the string API's order."""
    before, after = OVERLOADED.get(api, ((), ()))
    return [
        *((name, "None") for name in before),
        *((keyword.name, keyword.default) for keyword in FORWARDED[api]),
        *((name, "None") for name in after),
    ]


# ---- x_gorums.pyi ----------------------------------------------------------------------


def _render_pyi(file: ProtoFile, names: _Names) -> str:
    out = [
        *_header(file),
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


def _pyi_classes(service: Service, names: _Names) -> list[str]:
    out: list[str] = []
    config_methods = service.of(*_CONFIG_CALLS)
    quorum_calls = service.of(CallType.QUORUM_CALL)
    if config_methods:
        out += _pyi_class_head(service, "Configuration", "config", "Configuration")
        if quorum_calls:
            out += [
                f"{_INDENT}@property",
                f"{_INDENT}def replies(self) -> {service.name}Replies:",
                *_docstring(_replies_property_doc(service), 2),
            ]
        for method in config_methods:
            out += _pyi_method(method, names, API[method.call], method.call)
    if quorum_calls:
        out += _pyi_class_head(service, "Replies", "config", "Configuration")
        for method in quorum_calls:
            out += _pyi_method(method, names, REPLIES_API, None)
    node_methods = service.of(*_NODE_CALLS)
    if node_methods:
        out += _pyi_class_head(service, "Node", "node", "Node")
        for method in node_methods:
            out += _pyi_method(method, names, API[method.call], method.call)
    return out


def _pyi_class_head(service: Service, suffix: str, member: str, kind: str) -> list[str]:
    doc = {"Configuration": _config_doc, "Replies": _replies_doc, "Node": _node_doc}[suffix]
    return [
        "",
        f"class {service.name}{suffix}:",
        *_docstring(doc(service), 1),
        "",
        f"{_INDENT}{member}: _gorums_mw.{kind}",
        f"{_INDENT}def __init__(self, {member}: _gorums_mw.{kind}) -> None: ...",
    ]


def _pyi_method(method: Method, names: _Names, api: str, call: CallType | None) -> list[str]:
    request = names.type(method.request)
    reply = names.type(method.reply) if _uses_reply(method) else "_typing.Any"
    forwarded = [k.parameter(request, reply) for k in FORWARDED[api]]
    doc = _docstring(_method_doc(method, call), 2)
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
    head = [f"{_INDENT}@_typing.overload"] if overload else []
    params = [f"request: {request}", *(["*"] if keywords else []), *keywords]
    prefix = "def" if sync else "async def"
    body = doc if doc else []
    return [
        *head,
        f"{_INDENT}{prefix} {name}(",
        f"{_INDENT * 2}self,",
        *(f"{_INDENT * 2}{param}," for param in params),
        f"{_INDENT}) -> {returns}:" + ("" if body else " ..."),
        *body,
    ]


# ---- docs ------------------------------------------------------------------------------


def _header(file: ProtoFile) -> list[str]:
    return [
        f'"""Typed Gorums calls of ``{file.name}``.',
        "",
        "@generated by protoc-gen-gorums (gorums-mw). Do not edit: regenerate with protoc.",
        '"""',
    ]


def _config_doc(service: Service) -> str:
    example = (service.of(CallType.QUORUM_CALL) or service.of(*_CONFIG_CALLS))[0].name
    what = (
        f"The quorum calls, correctable calls and multicasts of ``{service.full_name}``\n"
        "on a configuration; wrapping one is cheap, so wrap the current one each\n"
        f"time: ``{service.name}Configuration(system.config()).{example}(request)``."
    )
    return f"{service.doc}\n\n{what}" if service.doc else what


def _replies_doc(service: Service) -> str:
    return (
        f"The quorum calls of ``{service.full_name}`` as per-node replies, for\n"
        "custom aggregation (``gorums_mw.Configuration.replies``)."
    )


def _replies_property_doc(service: Service) -> str:
    example = service.of(CallType.QUORUM_CALL)[0].name
    return (
        "The quorum calls as per-node replies: ``async for answer in\n"
        f"{service.name}Configuration(config).replies.{example}(request)``."
    )


def _node_doc(service: Service) -> str:
    what = f"The RPCs and unicasts of ``{service.full_name}`` on one node."
    return f"{service.doc}\n\n{what}" if service.doc else what


def _method_doc(method: Method, call: CallType | None) -> str:
    what = (_REPLIES_WHAT if call is None else _WHAT[call]).format(full=method.full_name)
    return f"{method.doc}\n\n{what}" if method.doc else what


def _docstring(text: str, depth: int) -> list[str]:
    """``text`` as a triple-quoted docstring indented ``depth`` levels."""
    indent = _INDENT * depth
    escaped = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    if escaped.endswith('"'):
        escaped = escaped[:-1] + '\\"'
    lines = escaped.split("\n")
    if len(lines) == 1:
        return [f'{indent}"""{lines[0]}"""']
    body = [f"{indent}{line}" if line else "" for line in lines[1:]]
    return [f'{indent}"""{lines[0]}', *body, f'{indent}"""']
