"""Claims: each dialect parsed and written by the one family, and bad hosts refused.

Pure units; the same claims on a real server: tests/interceptors/test_claim_syntax.py.
"""

from __future__ import annotations

import pytest

from gorums_mw import ConfigurationError, InvalidAddressError
from gorums_mw._identity.address import parse_node_address
from gorums_mw._identity.claims import (
    AddrClaim,
    Claim,
    ClientClaim,
    NodeIdClaim,
    claimed_text,
    dialer_metadata,
    parse_claim,
    write_claim,
)

MALFORMED_HOSTS = [
    "127.000.000.001",  # leading zeros
    "0x7f000001",  # hex
    "0177.0.0.1",  # octal
    "127.1",  # shorthand
    "2130706433",  # one number
    "1.2.3.4.5",  # five parts
    "example.123",  # a name ending in a number
    "example.0x1f",
    "127.0.0.1.",  # a trailing dot makes it no IP literal
    "unix localhost",  # a space
    "-lead.example",
    "trail-.example",
    "a..example",
    "a" * 64 + ".example",
    ("a" * 62 + ".") * 4 + "ab",  # 254 characters
    "ex*ample",
]


@pytest.mark.parametrize(
    "claim",
    [
        AddrClaim(parse_node_address("127.0.0.1:9001")),
        AddrClaim(parse_node_address("[::1]:9001"), 7, gorums_mw=True),
        AddrClaim(parse_node_address("store-2.store:9001"), None, gorums_mw=True),
        AddrClaim(parse_node_address("localhost:9001"), 4),
        NodeIdClaim(2),
        NodeIdClaim(2**32 - 1, gorums_mw=True),
        ClientClaim(),
    ],
    ids=repr,
)
def test_the_writer_writes_what_the_parser_reads(claim: Claim) -> None:
    metadata = write_claim(claim)
    assert parse_claim(metadata) == claim
    assert parse_claim((("user-agent", "grpc"), *metadata, ("x-other", "1"))) == claim


def test_each_dialect_on_the_wire() -> None:
    assert write_claim(AddrClaim(parse_node_address("127.0.0.1:1"), 3, gorums_mw=True)) == (
        ("gorums-addr", "127.0.0.1:1"),
        ("gorums-mw", "1"),
        ("gorums-node-id", "3"),
    )
    assert write_claim(NodeIdClaim(3)) == (("gorums-node-id", "3"),)
    assert write_claim(ClientClaim()) == (("gorums-client", "1"), ("gorums-node-id", "0"))
    assert parse_claim((("gorums-node-id", "0"),)) == ClientClaim()  # Go Gorums' client peer


def test_every_claim_reads_through_the_same_fields() -> None:
    by_addr = parse_claim((("gorums-addr", "LOCALHOST:1"), ("gorums-node-id", "5")))
    by_id = parse_claim((("gorums-node-id", "5"), ("gorums-mw", "1")))
    client = parse_claim((("gorums-client", "1"),))
    assert by_addr is not None and by_id is not None and client is not None
    assert (by_addr.address, by_addr.node_id, by_addr.gorums_mw) == (
        parse_node_address("localhost:1"),
        5,
        False,
    )
    assert (by_id.address, by_id.node_id, by_id.gorums_mw) == (None, 5, True)
    assert (client.address, client.node_id, client.gorums_mw) == (None, 0, False)
    assert [claimed_text(c) for c in (by_addr, by_id, client)] == ["localhost:1", "node 5", ""]


@pytest.mark.parametrize("metadata", [(), (("user-agent", "grpc"),), (("gorums-mw", "1"),)])
def test_metadata_without_a_claim(metadata: tuple[tuple[str, str], ...]) -> None:
    assert parse_claim(metadata) is None


def test_equal_metadata_gives_the_same_claim_object() -> None:
    # The Identifier remembers a connection's accepted claim by identity.
    metadata = (("gorums-addr", "127.0.0.1:9001"),)
    assert parse_claim(metadata) is parse_claim(list(metadata))


@pytest.mark.parametrize("host", MALFORMED_HOSTS)
def test_a_claim_with_a_malformed_host_is_refused(host: str) -> None:
    with pytest.raises(InvalidAddressError, match="gorums-addr") as info:
        parse_claim((("gorums-addr", f"{host}:9001"),))
    assert repr(host)[:40].rstrip("'") in str(info.value)  # the message names the bad value


@pytest.mark.parametrize(
    ("host", "text"),
    [
        ("127.0.0.1", "127.0.0.1:9001"),
        ("Store-2.Store", "store-2.store:9001"),
        ("store-2.store.", "store-2.store:9001"),
        ("my_db", "my_db:9001"),
        ("1.example", "1.example:9001"),
        ("example.1x", "example.1x:9001"),
        ("x" * 63, "x" * 63 + ":9001"),
        (("a" * 62 + ".") * 4 + "a", ("a" * 62 + ".") * 4 + "a:9001"),  # 253 characters
    ],
)
def test_a_claim_with_a_host_name_is_read(host: str, text: str) -> None:
    claim = parse_claim((("gorums-addr", f"{host}:9001"),))
    assert claim is not None and claim.address is not None
    assert claim.address.text == text


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ((("gorums-addr", "127.0.0.1:1"), ("gorums-addr", "127.0.0.1:1")), "more than once"),
        ((("gorums-node-id", "1"), ("gorums-node-id", "1")), "more than once"),
        ((("gorums-node-id", "-1"),), "not a node ID"),
        ((("gorums-node-id", "4294967296"),), "outside 0..4294967295"),
        ((("gorums-addr", "127.0.0.1:1"), ("gorums-client", "1")), "client peer"),
        ((("gorums-node-id", b"1"),), "must be text"),
        ((("gorums-client", "1"), ("gorums-client", "1")), "gorums-client sent more than once"),
        ((("gorums-node-id", "1"), ("gorums-mw", "1"), ("gorums-mw", "1")), "gorums-mw sent"),
    ],
)
def test_malformed_claims(metadata: tuple[tuple[str, str | bytes], ...], message: str) -> None:
    with pytest.raises(InvalidAddressError, match=message):
        parse_claim(metadata)


@pytest.mark.parametrize(
    ("my_addr", "my_id", "client_peer", "metadata"),
    [
        (None, None, False, ()),
        (
            "127.0.0.1:9001",
            None,
            False,
            (("gorums-addr", "127.0.0.1:9001"), ("gorums-mw", "1")),
        ),
        (
            "Replica-1.Test:9001",
            1,
            False,
            (("gorums-addr", "replica-1.test:9001"), ("gorums-mw", "1"), ("gorums-node-id", "1")),
        ),
        (None, None, True, (("gorums-client", "1"), ("gorums-node-id", "0"))),
    ],
)
def test_dialer_metadata(
    my_addr: str | None, my_id: int | None, client_peer: bool, metadata: tuple[object, ...]
) -> None:
    assert dialer_metadata(my_addr, my_id, client_peer) == metadata


@pytest.mark.parametrize(
    ("my_addr", "my_id", "client_peer", "message"),
    [
        ("127.1:9001", None, False, "my_addr: .*ends in a number"),
        ("127.0.0.1:9001", 0, False, "reserved for external clients"),
        (None, 1, False, "my_id needs my_addr"),
        ("127.0.0.1:9001", None, True, "not both"),
    ],
)
def test_dialer_metadata_refuses(
    my_addr: str | None, my_id: int | None, client_peer: bool, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        dialer_metadata(my_addr, my_id, client_peer)
