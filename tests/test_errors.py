"""The error tree drawn in ``gorums_mw._errors`` is the true one, and errors print as public."""

from __future__ import annotations

import pickle
import re

import grpc
import pytest

import gorums_mw
from gorums_mw import CallError, QuorumCallError
from gorums_mw import _errors as errors_module


def drawn_tree() -> list[tuple[str, str]]:
    """(class, parent) pairs of the hierarchy the module docstring draws."""
    doc = errors_module.__doc__ or ""
    block = doc.split("Hierarchy::\n\n", 1)[1].split("\n\n", 1)[0]
    pairs: list[tuple[str, str]] = []
    stack: list[tuple[int, str]] = []
    for line in block.splitlines():
        match = re.match(r"(\s*)(?:[├└]── )?(\w+)", line.replace("│", " "))
        assert match is not None, line
        depth, name = match.start(2), match.group(2)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            pairs.append((name, stack[-1][1]))
        stack.append((depth, name))
    return pairs


def test_the_drawn_tree_is_the_class_tree() -> None:
    pairs = drawn_tree()
    assert len(pairs) >= 7
    for name, parent in pairs:
        assert getattr(gorums_mw, parent) in getattr(gorums_mw, name).__bases__, (name, parent)
    drawn = {name for pair in pairs for name in pair}
    public = {n for n in gorums_mw.__all__ if n.endswith("Error")}
    assert drawn == public


def test_a_quorum_failure_is_a_call_error_with_the_code_its_nodes_share() -> None:
    late = {n: CallError(grpc.StatusCode.DEADLINE_EXCEEDED, "late", n) for n in (2, 3)}
    error = QuorumCallError("s.S.M", 2, {1: object()}, late)
    assert isinstance(error, CallError) and error.code == grpc.StatusCode.DEADLINE_EXCEEDED
    mixed = {**late, 4: CallError(grpc.StatusCode.UNKNOWN, "boom", 4)}
    assert QuorumCallError("s.S.M", 2, {}, mixed).code == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(CallError):
        raise error


@pytest.mark.parametrize(
    "name", [n for n in gorums_mw.__all__ if isinstance(getattr(gorums_mw, n), type)]
)
def test_public_classes_print_under_gorums_mw(name: str) -> None:
    value = getattr(gorums_mw, name)
    assert repr(value) == f"<class 'gorums_mw.{name}'>"


def test_interceptor_classes_print_under_their_package() -> None:
    from gorums_mw.interceptors import PeerIdentityInterceptor

    assert PeerIdentityInterceptor.__module__ == "gorums_mw.interceptors"


@pytest.mark.parametrize(
    "error",
    [
        gorums_mw.PeerAddressMismatchError("127.0.0.1:1", "ipv4:10.0.0.1:5"),
        gorums_mw.PeerCertificateError("127.0.0.1:1", ["10.0.0.1"]),
        gorums_mw.StreamLimitError("max_streams", 6),
        CallError(grpc.StatusCode.UNAVAILABLE, "gone", 3),
        QuorumCallError("s.S.M", 2, {}, {3: CallError(grpc.StatusCode.UNAVAILABLE, "gone", 3)}),
    ],
)
def test_errors_survive_pickling(error: Exception) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error) and str(copy) == str(error)
    assert vars(copy) == vars(error) or isinstance(error, QuorumCallError)
