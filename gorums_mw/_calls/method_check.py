"""Local checks of a call against the method's protobuf descriptor, where it is known.

A string-named call is checked before anything is sent: the name must be a
method name, and when the service is in protobuf's default descriptor pool
(its generated ``_pb2`` module was imported), the method must exist there
and the request and reply types must be the method's own. A wrong reply
type would otherwise decode silently into an empty message.
"""

from __future__ import annotations

import functools
from typing import Literal

from google.protobuf import descriptor_pool
from google.protobuf.descriptor import MethodDescriptor

from gorums_mw._wire import full_method_name

Shape = Literal["unary", "server_streaming"]


def check_call(method: object, request_type: str, reply_type: str | None, shape: Shape) -> str:
    """Return ``method``'s full name after checking the call against its descriptor.

    Args:
        method: ``pkg.Service.Method`` or ``/pkg.Service/Method``.
        request_type: the full name of the request message type.
        reply_type: the full name of the reply message type (None for a
            one-way call, which has no reply to decode).
        shape: the call's cardinality.

    Raises:
        ValueError: the name is malformed, or the service is known and has
            no such method.
        TypeError: the request or reply type, or the cardinality, is not the
            method's.
    """
    return _checked(method, request_type, reply_type, shape)


@functools.lru_cache(maxsize=1024)
def _checked(method: object, request_type: str, reply_type: str | None, shape: Shape) -> str:
    name = full_method_name(method)
    descriptor = _find(name)
    if descriptor is None:
        return name
    if descriptor.client_streaming:
        raise TypeError(f"{name} is client-streaming; only unary and server-streaming methods")
    if descriptor.input_type.full_name != request_type:
        raise TypeError(f"{name} takes {descriptor.input_type.full_name}, not {request_type}")
    if reply_type is not None and descriptor.output_type.full_name != reply_type:
        raise TypeError(f"{name} returns {descriptor.output_type.full_name}, not {reply_type}")
    streaming = descriptor.server_streaming
    if streaming and shape == "unary":
        raise TypeError(f"{name} is server-streaming: call it with correctable()")
    if not streaming and shape == "server_streaming":
        raise TypeError(f"{name} is unary: correctable() is for server-streaming methods")
    return name


def _find(name: str) -> MethodDescriptor | None:
    """The method's descriptor, None if its service is unknown here.

    Raises:
        ValueError: the service is known but has no such method.
    """
    pool = descriptor_pool.Default()
    service_name, _, method_name = name.rpartition(".")
    try:
        service = pool.FindServiceByName(service_name)
    except KeyError:
        return None
    found = service.methods_by_name.get(method_name)
    if found is None:
        known = ", ".join(sorted(service.methods_by_name))
        raise ValueError(f"service {service_name} has no method {method_name!r} (it has {known})")
    return found
