"""Node options: with_nodes, with_node_list and their validation."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gorums_mw import (
    ConfigurationError,
    InboundManager,
    InboundNodeOption,
    InvalidAddressError,
    NodeListOption,
    normalize_addr,
    with_node_list,
    with_nodes,
)


def test_inbound_node_option() -> None:
    option = with_nodes({3: "Store-2.Store:9003", 1: "127.0.0.1:9001", 2: "[0:0::1]:9002"})
    assert isinstance(option, InboundNodeOption) and isinstance(option, NodeListOption)
    assert list(option.nodes.items()) == [
        (1, "127.0.0.1:9001"),
        (2, "[::1]:9002"),  # IP literals canonical
        (3, "store-2.store:9003"),  # names kept, lower-cased, not resolved
    ]
    manager = InboundManager(1, option)
    assert manager.lookup_node_id("[0:0::1]:9002") == 2
    assert manager.lookup_node_id("STORE-2.store:9003") == 3
    assert manager.lookup_node_id("store-2:9003") is None  # no name is resolved to look up
    assert manager.lookup_node_id("localhost:9002") == 2  # localhost is 127.0.0.1 and ::1
    assert manager.lookup_node_id("127.1:9001") is None  # not an address at all
    listed = with_node_list(["127.0.0.1:9001", "[::1]:9002"])
    assert not isinstance(listed, InboundNodeOption)
    assert dict(listed.nodes) == {1: "127.0.0.1:9001", 2: "[::1]:9002"}


@pytest.mark.parametrize(
    ("nodes", "message"),
    [
        ({0: "127.0.0.1:1"}, "reserved for external clients"),
        ({-1: "127.0.0.1:1"}, "outside 1..4294967295"),
        ({2**32: "127.0.0.1:1"}, "outside 1..4294967295"),
        ({True: "127.0.0.1:1"}, "must be an int"),
        ({"1": "127.0.0.1:1"}, "must be an int"),
        ({1: "127.0.0.1"}, "not host:port"),
        ({1: "127.0.0.1:0"}, "port must be 1..65535"),
        ({1: "127.0.0.1:65536"}, "port must be 1..65535"),
        ({1: "::1:80"}, "in brackets"),
        ({1: 9001}, "must be a str"),
        ({1: "127.0.0.1:1", 2: "[::ffff:127.0.0.1]:1"}, "already node 1"),
        ({1: "a.example:1", 2: "A.Example:1"}, "already node 1"),
        ({1: "0.0.0.0:9001"}, "unspecified address"),
        ({1: "[::]:9001"}, "unspecified address"),
        ({1: "http://host:9001"}, "no URL scheme"),
        ({1: "bad host:1"}, "invalid host"),
        ({1: "unix localhost:1"}, "invalid host"),
        ({1: "127.000.000.001:1"}, "ends in a number"),
        ({1: "0x7f000001:1"}, "ends in a number"),
        ({1: "0177.0.0.1:1"}, "ends in a number"),
        ({1: "127.1:1"}, "ends in a number"),
        ({1: "2130706433:1"}, "ends in a number"),
        ({1: "host.0x:1"}, "ends in a number"),
        ({1: "-host:1"}, "neither an IP nor a host name"),
        ({1: "a..b:1"}, "neither an IP nor a host name"),
        ({1: "a" * 64 + ".b:1"}, "neither an IP nor a host name"),
        ({1: "a!b:1"}, "neither an IP nor a host name"),
        ({1: "localhost:9001", 2: "127.0.0.1:9001"}, r"already node 1 \(localhost:9001: localhost"),
        ({1: "127.0.0.1:9001", 2: "localhost:9001"}, r"already node 1 \(127.0.0.1:9001: localhost"),
        ({1: "[::1]:9001", 2: "LOCALHOST.:9001"}, "already node 1"),
        ({1: "localhost:9001", 2: "localhost.:9001"}, "already node 1"),
        ({}, "at least one node"),
    ],
)
def test_inbound_node_option_validation(nodes: dict[object, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        with_nodes(nodes)  # type: ignore[arg-type]


def test_node_list_validation() -> None:
    with pytest.raises(ConfigurationError, match="already node 1"):
        with_node_list(["127.0.0.1:1", "127.0.0.1:1"])
    with pytest.raises(ConfigurationError, match="not one string"):
        with_node_list("127.0.0.1:1")
    with pytest.raises(ConfigurationError, match="at least one"):
        with_node_list([])


@pytest.mark.parametrize(
    "nodes",
    [
        {1: "localhost:9001", 2: "localhost:9002", 3: "127.0.0.2:9001"},
        {1: "127.0.0.1:9001", 2: "[::1]:9001"},  # two sockets; localhost:9001 finds node 1
        {1: "my_db:9001", 2: "_grpc.example:9001"},  # underscores, as Go's resolver allows
        {1: "1.example:9001", 2: "example.1x:9001", 3: "x" * 63 + ".example:9001"},
    ],
)
def test_inbound_node_option_accepts(nodes: dict[int, str]) -> None:
    assert dict(with_nodes(nodes).nodes) == {key: value.lower() for key, value in nodes.items()}


@pytest.mark.parametrize(
    ("addr", "normalized"),
    [
        ("localhost:9001", "127.0.0.1:9001"),
        ("LOCALHOST.:9001", "127.0.0.1:9001"),
        ("127.0.0.1:9001", "127.0.0.1:9001"),
        ("[::1]:9001", "[::1]:9001"),
        ("[0:0:0:0:0:0:0:1]:9001", "[::1]:9001"),
        ("[::FFFF:127.0.0.1]:9001", "127.0.0.1:9001"),
        ("[FE80::1]:1", "[fe80::1]:1"),
    ],
)
def test_normalize_addr(addr: str, normalized: str) -> None:
    assert normalize_addr(addr) == normalized


@pytest.mark.parametrize(
    "addr", ["127.1:9001", "0x7f000001:9001", "2130706433:9001", "0177.0.0.1:9001", "a b:9001"]
)
def test_normalize_addr_refuses_what_with_nodes_refuses(
    addr: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", _no_dns)  # refused by syntax, never looked up
    with pytest.raises(InvalidAddressError, match=r"ends in a number|invalid host"):
        normalize_addr(addr)
    with pytest.raises(ConfigurationError, match=r"ends in a number|invalid host"):
        with_nodes({1: addr})


def test_normalize_addr_never_looks_localhost_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", _no_dns)
    assert normalize_addr("localhost:9001") == "127.0.0.1:9001"


def _no_dns(*args: object, **kwargs: object) -> object:
    raise AssertionError("DNS lookup")


def test_with_node_list_for_inbound_manager_is_a_mypy_error(tmp_path: Path) -> None:
    snippet = tmp_path / "snippet.py"
    snippet.write_text(
        textwrap.dedent(
            """
            from gorums_mw import InboundManager, with_node_list, with_nodes

            InboundManager(1, with_nodes({1: "127.0.0.1:1"}))
            InboundManager(1, with_node_list(["127.0.0.1:1"]))
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(snippet)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1, result.stdout
    assert "snippet.py:5:" in errors[0]
    assert '"NodeListOption"' in errors[0] and '"InboundNodeOption"' in errors[0]
