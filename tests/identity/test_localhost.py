"""``localhost`` means this host's loopback, 127.0.0.1 and ::1 (RFC 6761), in every place
that reads an address, and is never looked up.

The same on real servers: tests/interceptors/test_claims_on_server.py.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from gorums_mw import (
    ConfigurationError,
    InboundManager,
    PeerAddressMismatchError,
    normalize_addr,
    with_nodes,
)
from gorums_mw._identity.address import parse_node_address
from gorums_mw._identity.address_book import AddressBook
from gorums_mw._identity.claims import parse_claim
from gorums_mw._identity.identifier import Identifier
from gorums_mw._settings import NameResolution

SPELLINGS = ["localhost:9001", "LocalHost:9001", "localhost.:9001"]


@pytest.fixture(autouse=True)
def no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> object:
        raise AssertionError("localhost was looked up")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_normalize_addr(spelling: str) -> None:
    assert normalize_addr(spelling) == "127.0.0.1:9001"


@pytest.mark.parametrize("spelling", SPELLINGS)
@pytest.mark.parametrize("loopback", ["127.0.0.1:9001", "[::1]:9001", "[::ffff:127.0.0.1]:9001"])
def test_with_nodes_duplicate_check(spelling: str, loopback: str) -> None:
    for nodes in ({7: spelling, 8: loopback}, {7: loopback, 8: spelling}):
        with pytest.raises(ConfigurationError, match=r"node 8: .* is already node 7") as info:
            with_nodes(nodes)
        assert "localhost always means this host's loopback" in str(info.value)
    assert dict(with_nodes({7: spelling, 8: "127.0.0.2:9001"}).nodes) == {
        7: "localhost:9001",  # kept as configured: grpc dials it
        8: "127.0.0.2:9001",  # loopback, but not what localhost names
    }


@pytest.mark.parametrize(
    ("configured", "looked_up", "found"),
    [
        ("localhost:9001", "127.0.0.1:9001", 7),  # the seed's lookupNodeID normalizes
        ("localhost:9001", "[::1]:9001", 7),
        ("localhost:9001", "LOCALHOST.:9001", 7),
        ("127.0.0.1:9001", "localhost:9001", 7),
        ("[::1]:9001", "localhost:9001", 7),
        ("localhost:9001", "127.0.0.2:9001", None),
        ("localhost:9001", "localhost:9002", None),
        ("10.0.0.1:9001", "localhost:9001", None),
    ],
)
def test_lookup_node_id(configured: str, looked_up: str, found: int | None) -> None:
    manager = InboundManager(1, with_nodes({1: "10.9.9.9:1", 7: configured}))
    assert manager.lookup_node_id(looked_up) == found


def test_lookup_node_id_prefers_ipv4_when_both_loopbacks_are_nodes() -> None:
    manager = InboundManager(1, with_nodes({1: "[::1]:9001", 2: "127.0.0.1:9001"}))
    assert manager.lookup_node_id("localhost:9001") == 2  # as normalize_addr writes it


def identifier(nodes: dict[int, str]) -> Identifier:
    book = AddressBook({i: parse_node_address(a) for i, a in nodes.items()}, NameResolution())
    return Identifier(book, require_certificate=False)


@pytest.mark.parametrize(
    ("configured", "claimed", "connection"),
    [
        ("localhost:9001", "localhost:9001", "ipv4:127.0.0.1:5"),
        ("localhost:9001", "localhost:9001", "ipv6:%5B::1%5D:5"),
        ("localhost:9001", "localhost:9001", "unix:"),
        ("localhost:9001", "127.0.0.1:9001", "ipv4:127.0.0.1:5"),
        ("localhost:9001", "[::1]:9001", "ipv6:%5B::1%5D:5"),
        ("127.0.0.1:9001", "localhost:9001", "ipv4:127.0.0.1:5"),
        ("[::1]:9001", "localhost:9001", "ipv6:%5B::1%5D:5"),
    ],
)
def test_claims(configured: str, claimed: str, connection: str) -> None:
    claim = parse_claim((("gorums-addr", claimed), ("gorums-node-id", "7")))
    assert claim is not None
    peer = identifier({1: "10.9.9.9:1", 7: configured}).identify(connection, claim, None)
    assert (peer.id, peer.address) == (7, str(parse_node_address(configured)))


@pytest.mark.parametrize("connection", ["ipv4:10.0.0.1:5", "ipv4:127.0.0.2:5"])
def test_a_localhost_claim_from_elsewhere_is_a_mismatch(connection: str) -> None:
    claim = parse_claim((("gorums-addr", "localhost:9001"),))
    assert claim is not None
    for configured in ("localhost:9001", "127.0.0.1:9001", "10.0.0.1:9001"):
        ident = identifier({7: configured})
        with pytest.raises(PeerAddressMismatchError):
            ident.identify(connection, claim, None)


async def test_an_address_book_never_resolves_localhost(monkeypatch: pytest.MonkeyPatch) -> None:
    async def refuse(*args: object, **kwargs: object) -> object:
        raise AssertionError("localhost was looked up")

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", refuse)
    book = AddressBook({7: parse_node_address("localhost:9001")}, NameResolution())
    assert not book.has_names
    await book.resolve_all()
    book.refresh(7)
    await asyncio.sleep(0)
    assert sorted(map(str, book.ips_of(7))) == ["127.0.0.1", "::1"]
