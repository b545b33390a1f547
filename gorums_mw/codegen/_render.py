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

from gorums_mw.codegen._calltypes import API, REPLIES_API, CallType
from gorums_mw.codegen._model import Method, ProtoFile, Service
from gorums_mw.codegen._stubs import render_pyi
from gorums_mw.codegen._text import (
    CONFIG_CALLS,
    INDENT,
    NODE_CALLS,
    Names,
    config_doc,
    docstring,
    header,
    keywords_of,
    method_doc,
    node_doc,
    replies_doc,
    replies_property_doc,
    uses_reply,
)


def render(file: ProtoFile) -> tuple[str, str]:
    """The source of ``x_gorums.py`` and of ``x_gorums.pyi`` for ``file``."""
    names = Names(
        [file.module]
        + [m.request.module for s in file.services for m in s.methods]
        + [m.reply.module for s in file.services for m in s.methods if uses_reply(m)]
    )
    return _render_py(file, names), render_pyi(file, names)


def _render_py(file: ProtoFile, names: Names) -> str:
    used = [file.module] + [
        m.reply.module for s in file.services for m in s.methods if uses_reply(m)
    ]
    out = [*header(file), "", *names.imports(used), ""]
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


def _py_classes(service: Service, names: Names, constants: dict[str, str]) -> list[str]:
    out: list[str] = []
    config_methods = service.of(*CONFIG_CALLS)
    quorum_calls = service.of(CallType.QUORUM_CALL)
    if config_methods:
        out += _py_class_head(service, "Configuration", "config", config_doc(service))
        if quorum_calls:
            out += [
                "",
                f"{INDENT}@property",
                f"{INDENT}def replies(self):",
                *docstring(replies_property_doc(service), 2),
                f"{INDENT * 2}return {service.name}Replies(self.config)",
            ]
        for method in config_methods:
            out += _py_method(method, names, constants, "config", API[method.call], method.call)
    if quorum_calls:
        out += _py_class_head(service, "Replies", "config", replies_doc(service))
        for method in quorum_calls:
            out += _py_method(method, names, constants, "config", REPLIES_API, None)
    node_methods = service.of(*NODE_CALLS)
    if node_methods:
        out += _py_class_head(service, "Node", "node", node_doc(service))
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
        *docstring(doc, 1),
        "",
        f'{INDENT}__slots__ = ("{member}",)',
        "",
        f"{INDENT}def __init__(self, {member}):",
        f"{INDENT * 2}self.{member} = {member}",
        "",
        f"{INDENT}def __repr__(self):",
        f'{INDENT * 2}return f"<{cls} {shown}>"',
    ]


def _py_method(
    method: Method,
    names: Names,
    constants: dict[str, str],
    member: str,
    api: str,
    call: CallType | None,
) -> list[str]:
    keywords = keywords_of(api)
    params = ", ".join(["self", "request", *(["*"] if keywords else [])])
    params += "".join(f", {name}={default}" for name, default in keywords)
    args = [constants[method.full_name], "request"]
    if uses_reply(method):
        args.append(names.type(method.reply))
    args += [f"{name}={name}" for name, _ in keywords]
    return [
        "",
        f"{INDENT}def {method.name}({params}):",
        *docstring(method_doc(method, call), 2),
        f"{INDENT * 2}return self.{member}.{api}(",
        *(f"{INDENT * 3}{arg}," for arg in args),
        f"{INDENT * 2})",
    ]
