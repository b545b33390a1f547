"""identify_peer on every peer form grpc.aio produces, and on bad claims."""

from __future__ import annotations

import pytest

from gorums_mw import InvalidAddressError, PeerAddressMismatchError, identify_peer
from tests.conftest import FakeContext


def claim(peer: str, *values: str) -> FakeContext:
    return FakeContext(peer, tuple(("gorums-addr", value) for value in values))


@pytest.mark.parametrize(
    ("peer", "claimed", "expected"),
    [
        ("ipv4:127.0.0.1:50000", "127.0.0.1:9001", "127.0.0.1:9001"),
        ("ipv6:%5B::1%5D:50000", "[::1]:9001", "[::1]:9001"),
        ("ipv6:%5B::1%5D:50000", "[0:0::1]:9001", "[::1]:9001"),
        ("ipv6:[::1]:50000", "[::1]:9001", "[::1]:9001"),
        ("ipv6:%5B::ffff:127.0.0.1%5D:5", "127.0.0.1:9001", "127.0.0.1:9001"),
        ("ipv4:127.0.0.1:5", "[::ffff:127.0.0.1]:9001", "127.0.0.1:9001"),
        ("ipv6:%5Bfe80::a%5D:5", "[FE80::A]:9001", "[fe80::a]:9001"),
        ("unix:", "127.0.0.1:9001", "127.0.0.1:9001"),
        ("unix:/tmp/x.sock", "[::1]:9001", "[::1]:9001"),
        ("unix:", "127.0.0.2:9001", "127.0.0.2:9001"),
        # localhost is this host's loopback (RFC 6761), written as normalize_addr writes it
        ("ipv4:127.0.0.1:5", "localhost:9001", "127.0.0.1:9001"),
        ("ipv6:%5B::1%5D:5", "LocalHost.:9001", "127.0.0.1:9001"),
        ("unix:", "localhost:9001", "127.0.0.1:9001"),
    ],
)
def test_identify_peer_accepts(peer: str, claimed: str, expected: str) -> None:
    assert identify_peer(claim(peer, claimed)) == expected


@pytest.mark.parametrize(
    ("peer", "claimed"),
    [
        ("ipv4:127.0.0.1:5", "127.0.0.2:9001"),
        ("ipv4:127.0.0.1:5", "[::1]:9001"),
        ("ipv6:%5B::1%5D:5", "127.0.0.1:9001"),
        ("unix:", "10.0.0.1:9001"),
        ("unix:", "[2001:db8::1]:9001"),
        ("ipv4:10.0.0.1:5", "127.0.0.1:9001"),
        ("vsock:1:2", "127.0.0.1:9001"),
        ("ipv4:not-an-ip:5", "127.0.0.1:9001"),
        ("ipv4:10.0.0.1:5", "localhost:9001"),
        ("ipv4:127.0.0.2:5", "localhost:9001"),  # loopback, but not what localhost names
        ("ipv6:%5B::ffff:10.0.0.1%5D:5", "localhost:9001"),
    ],
)
def test_identify_peer_mismatch(peer: str, claimed: str) -> None:
    with pytest.raises(PeerAddressMismatchError) as info:
        identify_peer(claim(peer, claimed))
    assert info.value.actual == peer


@pytest.mark.parametrize("peer", ["", None])
def test_identify_peer_without_peer_information_is_an_external_caller(peer: str | None) -> None:
    # As Go Gorums' identifyPeer: no peer information, no identity (not a crash).
    assert identify_peer(claim(peer, "127.0.0.1:9001")) == ""  # type: ignore[arg-type]
    with pytest.raises(InvalidAddressError):  # a malformed claim is still refused
        identify_peer(claim(peer, "not-an-address"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "empty"),
        ("127.0.0.1", "not host:port"),
        ("127.0.0.1:", "port must be"),
        ("127.0.0.1:abc", "port must be"),
        ("127.0.0.1:99999", "port must be"),
        ("127.0.0.1:0", "port must be"),
        ("127.0.0.1:+80", "port must be"),
        ("127.0.0.1:٣", "non-ASCII"),
        ("hôst:80", "non-ASCII"),
        ("example.com:9001", "IP literal or localhost"),
        ("local-host:9001", "IP literal or localhost"),
        ("127.0.0.1.:9001", "ends in a number"),
        ("::1:9001", "brackets"),
        ("[127.0.0.1]:9001", "only for IPv6"),
        ("1" * 400 + ":1", "longer than"),
        ("127.0.0.1:80\n", "control characters"),
        (":80", "not host:port"),
    ],
)
def test_identify_peer_malformed(value: str, message: str) -> None:
    with pytest.raises(InvalidAddressError, match=message):
        identify_peer(claim("ipv4:127.0.0.1:5", value))


def test_repeated_claim_is_malformed() -> None:
    with pytest.raises(InvalidAddressError, match="more than once"):
        identify_peer(claim("ipv4:127.0.0.1:5", "127.0.0.1:1", "127.0.0.1:1"))


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ((("gorums-addr", "127.0.0.1:1"), ("gorums-client", "1")), "client peer"),
        ((("gorums-addr", "127.0.0.1:1"), ("gorums-node-id", "0")), "client peer"),
        ((("gorums-addr", "127.0.0.1:1"), ("gorums-node-id", "x")), "not a node ID"),
        ((("gorums-addr", b"127.0.0.1:1"),), "must be text"),
    ],
)
def test_identify_peer_reads_claims_as_the_interceptor_does(
    metadata: tuple[tuple[str, str | bytes], ...], message: str
) -> None:
    with pytest.raises(InvalidAddressError, match=message):
        identify_peer(FakeContext("ipv4:127.0.0.1:5", metadata))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "metadata",
    [(), (("gorums-node-id", "2"),), (("gorums-client", "1"),), (("other", "x"),)],
)
def test_identify_peer_without_an_address_is_an_external_caller(
    metadata: tuple[tuple[str, str], ...],
) -> None:
    assert identify_peer(FakeContext("ipv4:127.0.0.1:5", metadata)) == ""


def test_identify_peer_never_resolves_names(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    def no_dns(*args: object, **kwargs: object) -> object:
        raise AssertionError("DNS lookup on the call path")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with pytest.raises(InvalidAddressError):
        identify_peer(claim("ipv4:127.0.0.1:5", "example.com:80"))
    assert identify_peer(claim("ipv4:127.0.0.1:5", "127.0.0.1:80")) == "127.0.0.1:80"
    assert identify_peer(claim("ipv4:127.0.0.1:5", "localhost:80")) == "127.0.0.1:80"
