"""The Identifier remembers an accepted claim per connection, and only while that is sound."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from gorums_mw import PeerAddressMismatchError, PeerCertificateError
from gorums_mw._identity.address import parse_node_address
from gorums_mw._identity.address_book import AddressBook
from gorums_mw._identity.claims import Claim, parse_claim
from gorums_mw._identity.identifier import Identifier
from gorums_mw._settings import NameResolution

CONNECTION = "ipv4:127.0.0.1:50000"


def address_book(nodes: dict[int, str]) -> AddressBook:
    return AddressBook(
        {node_id: parse_node_address(addr) for node_id, addr in nodes.items()}, NameResolution()
    )


def identifier(nodes: dict[int, str], *, require_certificate: bool = False) -> Identifier:
    return Identifier(address_book(nodes), require_certificate=require_certificate)


def claim(addr: str) -> Claim:
    parsed = parse_claim((("gorums-addr", addr),))
    assert parsed is not None
    return parsed


class CertifiedContext:
    """A context whose TLS client certificate names ``ip``."""

    def __init__(self, ip: str) -> None:
        self._ip = ip

    def auth_context(self) -> dict[str, list[bytes]]:
        return {"peer_ip": [self._ip.encode()]}


def test_an_accepted_claim_is_remembered_for_its_connection() -> None:
    ident = identifier({1: "127.0.0.1:9001", 2: "127.0.0.1:9002"})
    first = ident.identify(CONNECTION, claim("127.0.0.1:9002"), None)
    assert first.id == 2
    assert ident.identify(CONNECTION, claim("127.0.0.1:9002"), None) is first  # not re-verified
    other = ident.identify("ipv4:127.0.0.1:50001", claim("127.0.0.1:9002"), None)
    assert other is not first and other.real_address == "ipv4:127.0.0.1:50001"


def test_another_claim_on_a_connection_is_verified_again() -> None:
    ident = identifier({1: "127.0.0.1:9001", 2: "127.0.0.1:9002"})
    assert ident.identify(CONNECTION, claim("127.0.0.1:9002"), None).id == 2
    with pytest.raises(PeerAddressMismatchError):
        ident.identify(CONNECTION, claim("10.0.0.1:9002"), None)
    assert ident.identify(CONNECTION, claim("127.0.0.1:9001"), None).id == 1


def test_a_refused_claim_is_refused_every_time() -> None:
    ident = identifier({1: "10.0.0.1:9001"})
    for _ in range(2):
        with pytest.raises(PeerAddressMismatchError):
            ident.identify(CONNECTION, claim("10.0.0.1:9001"), None)


async def test_a_change_of_a_names_ips_forgets_what_was_remembered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def resolve(host: str, port: object, **kwargs: object) -> list[tuple[Any, ...]]:
        assert host == "replica-2.test"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 0))]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", resolve)
    book = address_book({1: "127.0.0.1:9001", 2: "replica-2.test:9002"})
    ident = Identifier(book, require_certificate=False)
    await book.resolve_all()
    first = ident.identify(CONNECTION, claim("127.0.0.1:9002"), None)
    assert first.id == 2
    assert ident.identify(CONNECTION, claim("127.0.0.1:9002"), None) is first
    await book.resolve_all()  # the name's IPs were read again: they may have changed
    again = ident.identify(CONNECTION, claim("127.0.0.1:9002"), None)
    assert again == first and again is not first


def test_nothing_is_remembered_when_a_certificate_must_vouch() -> None:
    ident = identifier({1: "127.0.0.1:9001"}, require_certificate=True)
    certified = CertifiedContext("127.0.0.1")
    assert ident.identify(CONNECTION, claim("127.0.0.1:9001"), certified).id == 1
    # The same connection string, now with a certificate for another host (a reused port).
    with pytest.raises(PeerCertificateError):
        ident.identify(CONNECTION, claim("127.0.0.1:9001"), CertifiedContext("10.9.9.9"))
