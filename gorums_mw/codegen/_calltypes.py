"""The call types of generated methods, and the keywords each one passes on.

This table is the one place that says which string-API method a generated
method calls and which keyword arguments it forwards unchanged. A keyword
the string API gains is one line here, then ``scripts/gen-protos``. A test
compares this table with the string API's signatures, so a keyword added
there and not here fails it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Keyword:
    """A keyword-only parameter a generated method takes and passes on as is.

    Attributes:
        name: the parameter, the same in the generated method and the string API.
        annotation: its type in the stub, written with the stub's imports
            (``_abc`` is ``collections.abc``, ``_typing``, ``_gorums_mw``);
            ``{request}`` and ``{reply}`` stand for the method's message
            types (``typing.Any`` as the reply of a one-way call).
        default: its default, as Python source.
    """

    name: str
    annotation: str
    default: str

    def parameter(self, request: str, reply: str) -> str:
        """``name: annotation = default`` for a stub."""
        annotation = self.annotation.format(request=request, reply=reply)
        return f"{self.name}: {annotation} = {self.default}"


TIMEOUT: Final = Keyword("timeout", "float | None", "None")
IGNORE_ERRORS: Final = Keyword("ignore_errors", "bool", "False")
METADATA: Final = Keyword("metadata", "_abc.Sequence[tuple[str, str]]", "()")
INTERCEPTORS: Final = Keyword(
    "interceptors", "_abc.Sequence[_gorums_mw.QuorumInterceptor[{request}, {reply}]]", "()"
)

EVERY_CALL: Final[tuple[Keyword, ...]] = (METADATA,)
"""Keywords every call type forwards."""
ON_CONFIGURATION: Final[tuple[Keyword, ...]] = (INTERCEPTORS,)
"""Keywords the calls on a configuration forward."""


class CallType(enum.Enum):
    """What a method is called as, from its gorums option and its streaming."""

    RPC = "rpc"
    UNICAST = "unicast"
    MULTICAST = "multicast"
    QUORUM_CALL = "quorumcall"
    CORRECTABLE = "correctable"

    @property
    def on_node(self) -> bool:
        """Whether the call is made on one node (else on a configuration)."""
        return self in (CallType.RPC, CallType.UNICAST)


API: Final[Mapping[CallType, str]] = {
    CallType.RPC: "rpc",
    CallType.UNICAST: "unicast",
    CallType.MULTICAST: "multicast",
    CallType.QUORUM_CALL: "quorum_call",
    CallType.CORRECTABLE: "correctable",
}
"""The string-API method (of ``Node`` or ``Configuration``) each call type calls."""

REPLIES_API: Final = "replies"
"""The ``Configuration`` method behind the per-node replies of a quorum call."""

FORWARDED: Final[Mapping[str, tuple[Keyword, ...]]] = {
    "quorum_call": (TIMEOUT, *EVERY_CALL, *ON_CONFIGURATION),  # and quorum=, quorum_function=
    "replies": (TIMEOUT, IGNORE_ERRORS, *EVERY_CALL, *ON_CONFIGURATION),
    "correctable": (TIMEOUT, IGNORE_ERRORS, *EVERY_CALL, *ON_CONFIGURATION),  # and quorum_function=
    "multicast": (*EVERY_CALL, *ON_CONFIGURATION),
    "rpc": (TIMEOUT, *EVERY_CALL),
    "unicast": (*EVERY_CALL,),
}
"""The keywords each string-API method gets from its generated callers, as they are."""

OVERLOADED: Final[Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "quorum_call": (("quorum",), ("quorum_function",)),
    "correctable": ((), ("quorum_function",)),
}
"""Keywords the generated overloads spell out themselves, as (before, after) the
forwarded ones: they choose the return type. Their default is None."""
