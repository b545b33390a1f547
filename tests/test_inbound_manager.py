"""InboundManager as a pure unit: registrations, configuration, the pair rule, close."""

from __future__ import annotations

import asyncio
import threading

import pytest

from gorums_mw import (
    GORUMS_CLIENT_KEY,
    Configuration,
    InboundManager,
    PeerAddressMismatchError,
    with_nodes,
)
from gorums_mw._identity.claims import GORUMS_MW_KEY
from gorums_mw._inbound.manager import wiring_of
from gorums_mw._inbound.membership import FIRST_CLIENT_ID
from gorums_mw._telemetry import SPAN_REGISTER, SPAN_TIEBREAK, SPAN_UNREGISTER
from tests import echo_pb2
from tests.conftest import FakeContext, Spans

NODES = {1: "127.0.0.1:9001", 2: "127.0.0.1:9002", 3: "127.0.0.1:9003", 4: "[::1]:9004"}


class FakeStream:
    """Stands in for a stream: records whether it was closed."""

    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True

    async def call(self, *args: object) -> asyncio.Future[object]:
        raise AssertionError("not used")

    async def cast(self, *args: object) -> None:
        raise AssertionError("not used")


def replica_context(node_id: int, port: int = 40000) -> FakeContext:
    addr = NODES[node_id]
    ip = addr.rpartition(":")[0]
    peer = f"ipv6:%5B{ip.strip('[]')}%5D:{port}" if ip.startswith("[") else f"ipv4:{ip}:{port}"
    return FakeContext(peer, (("gorums-addr", addr),))


def manager(my_id: int = 1, **kwargs: object) -> InboundManager:
    return InboundManager(my_id, with_nodes(NODES), **kwargs)  # type: ignore[arg-type]


def test_inbound_manager_register_unregister(spans: Spans) -> None:
    mgr = manager(tracer_provider=spans.provider)
    stream = FakeStream()
    unregister = mgr.register_peer(2, NODES[2], stream, object())
    assert mgr.inbound_config().ids == (2,)
    unregister()
    assert mgr.inbound_config().ids == ()
    assert stream.closed
    unregister()  # idempotent
    assert mgr.inbound_config().ids == ()
    assert [s.attributes["gorums.decision"] for s in spans.named(SPAN_UNREGISTER)] == [
        "unregistered"
    ]


def test_stale_cleanup_never_removes_replacement(spans: Spans) -> None:
    mgr = manager(tracer_provider=spans.provider)
    old, new = FakeStream(), FakeStream()
    cleanup_old = mgr.register_peer(2, NODES[2], old, object())
    mgr.register_peer(2, NODES[2], new, object())
    assert old.closed and not new.closed
    cleanup_old()
    assert mgr.inbound_config().ids == (2,)
    assert mgr.inbound_config()[0].channel is new
    decisions = [s.attributes["gorums.decision"] for s in spans.named(SPAN_REGISTER)]
    assert decisions == ["registered", "replaced"]
    assert spans.named(SPAN_UNREGISTER)[0].attributes["gorums.decision"] == "stale_cleanup"


def test_inbound_manager_config() -> None:
    changes: list[tuple[int, ...]] = []
    mgr = manager(on_config_change=lambda cfg: changes.append(cfg.ids))
    assert changes == []  # not fired at construction
    first = mgr.inbound_config()
    assert isinstance(first, Configuration) and len(first) == 0
    mgr.register_peer(4, NODES[4], FakeStream(), object())
    mgr.register_peer(2, NODES[2], FakeStream(), object())
    cleanup3 = mgr.register_peer(3, NODES[3], FakeStream(), object())
    snapshot = mgr.inbound_config()
    assert snapshot.ids == (2, 3, 4)  # ID-sorted
    assert mgr.inbound_config() is snapshot  # cached until a change
    mgr.register_peer(3, NODES[3], FakeStream(), object())  # reconnect: no membership change
    cleanup3()  # stale
    assert changes == [(4,), (2, 4), (2, 3, 4)]
    assert first.ids == ()  # old snapshots never change
    assert repr(mgr) == "<InboundManager id=1 peers=[2, 3, 4] clients=0>"
    assert mgr.lookup_node_id("127.0.0.1:9003") == 3
    assert mgr.lookup_node_id("[::ffff:127.0.0.1]:9003") == 3
    assert mgr.lookup_node_id("[::1]:9004") == 4
    assert mgr.lookup_node_id("127.0.0.1:1") is None
    assert mgr.lookup_node_id("garbage") is None


def test_on_config_change_may_reenter_manager() -> None:
    seen: list[tuple[int, ...]] = []

    def callback(cfg: Configuration) -> None:
        seen.append(mgr.inbound_config().ids)  # re-enters; must not deadlock
        if cfg.ids == (2,):
            mgr.register_peer(3, NODES[3], FakeStream(), object())

    mgr = manager(on_config_change=callback)
    mgr.register_peer(2, NODES[2], FakeStream(), object())
    assert mgr.inbound_config().ids == (2, 3)
    assert (2, 3) in seen


def test_identify_peer() -> None:
    from gorums_mw import identify_peer

    assert identify_peer(replica_context(2)) == "127.0.0.1:9002"
    assert identify_peer(replica_context(4)) == "[::1]:9004"
    with pytest.raises(PeerAddressMismatchError) as info:
        identify_peer(FakeContext("ipv4:127.0.0.5:1", (("gorums-addr", "127.0.0.1:9002"),)))
    assert "127.0.0.1:9002" in str(info.value) and "127.0.0.5" in str(info.value)


def test_identify_peer_external() -> None:
    from gorums_mw import identify_peer

    assert identify_peer(FakeContext("ipv4:127.0.0.1:5555", ())) == ""
    assert identify_peer(FakeContext("ipv4:127.0.0.1:5555", (("other", "x"),))) == ""
    mgr = manager()
    # A valid claim to an address that is not a known node: an external client.
    ctx = FakeContext("ipv4:127.0.0.1:5555", (("gorums-addr", "127.0.0.1:7777"),))
    assert mgr.handle_stream(ctx) is None
    assert mgr.peer(ctx).id == 0
    assert mgr.inbound_config().ids == ()


def test_handle_stream(spans: Spans) -> None:
    mgr = manager(tracer_provider=spans.provider)
    ctx = replica_context(3)
    cleanup = mgr.handle_stream(ctx, FakeStream())
    assert cleanup is not None
    assert mgr.inbound_config().ids == (3,)
    assert mgr.peer(ctx).id == 3 and mgr.peer(ctx).address == "127.0.0.1:9003"
    assert mgr.handle_stream(ctx) is cleanup  # same context: same registration
    spoofed = FakeContext("ipv4:127.0.0.9:1", (("gorums-addr", NODES[2]),))
    with pytest.raises(PeerAddressMismatchError):
        mgr.handle_stream(spoofed)
    assert mgr.inbound_config().ids == (3,)
    reject = spans.named("gorums.peer.reject")[0]
    assert reject.attributes["gorums.peer.claimed_address"] == NODES[2]
    assert reject.attributes["gorums.peer.real_address"] == "ipv4:127.0.0.9:1"
    register = spans.named(SPAN_REGISTER)[0]
    assert register.attributes["gorums.peer.id"] == 3
    assert register.attributes["gorums.config.size"] == 1


def test_handle_stream_returns_cleanup() -> None:
    mgr = manager()
    assert mgr.handle_stream(FakeContext("ipv4:127.0.0.1:1", ())) is None
    ctx = replica_context(2)
    cleanup = mgr.handle_stream(ctx, FakeStream())
    assert cleanup is not None
    cleanup()
    assert mgr.inbound_config().ids == ()
    assert mgr.peer(ctx).id == 2  # still identifiable from its metadata
    # The node's own ID is never registered as a peer of itself.
    assert mgr.handle_stream(replica_context(1), FakeStream()) is None


def test_client_peers_get_ids_above_node_range() -> None:
    mgr = manager()
    ctx_a = FakeContext("ipv4:10.0.0.1:1", ((GORUMS_CLIENT_KEY, "1"),))
    ctx_b = FakeContext("ipv4:10.0.0.2:1", ((GORUMS_CLIENT_KEY, "1"),))
    cleanup_a = mgr.handle_stream(ctx_a, FakeStream())
    mgr.handle_stream(ctx_b, FakeStream())
    assert mgr.client_config().ids == (FIRST_CLIENT_ID, FIRST_CLIENT_ID + 1)
    assert mgr.inbound_config().ids == ()
    assert cleanup_a is not None
    cleanup_a()
    assert mgr.client_config().ids == (FIRST_CLIENT_ID + 1,)
    assert repr(mgr) == "<InboundManager id=1 peers=[] clients=1>"


@pytest.mark.parametrize("inbound_first", [True, False])
def test_symmetric_stream_tiebreaker(spans: Spans, inbound_first: bool) -> None:
    """Replicas 1 and 2 dial each other: both use the stream dialed by 1."""
    low = manager(1, tracer_provider=spans.provider)
    high = manager(2, tracer_provider=spans.provider)
    # The stream 1 dialed: outbound at 1, inbound at 2. And the other way round.
    s12_out, s12_in = FakeStream(), FakeStream()
    s21_out, s21_in = FakeStream(), FakeStream()
    ctx12, ctx21 = object(), object()

    def dial_12() -> None:
        wiring_of(low).add_outbound(2, s12_out, s12_out.close)
        high.register_peer(1, NODES[1], s12_in, ctx12)

    def dial_21() -> None:
        wiring_of(high).add_outbound(1, s21_out, s21_out.close)
        low.register_peer(2, NODES[2], s21_in, ctx21)

    for step in (dial_21, dial_12) if inbound_first else (dial_12, dial_21):
        step()
    assert low.inbound_config()[0].channel is s12_out  # low keeps its outbound
    assert high.inbound_config()[0].channel is s12_in  # high uses the inbound one
    assert s21_out.closed  # high closed its outbound stream
    assert not s12_out.closed and not s12_in.closed
    assert low.inbound_config().ids == (2,) and high.inbound_config().ids == (1,)
    decisions = {
        (s.attributes["gorums.node.id"], s.attributes["gorums.decision"])
        for s in spans.named(SPAN_TIEBREAK)
    }
    assert decisions == {(1, "kept_outbound"), (2, "kept_inbound")}


def test_the_stream_a_tiebreak_closes_is_retired_not_unregistered(spans: Spans) -> None:
    """The lower ID sees the higher one's stream end; the peer stays connected."""
    low = manager(1, tracer_provider=spans.provider)
    inbound, outbound = FakeStream(), FakeStream()
    cleanup = low.register_peer(2, NODES[2], inbound, object())  # 2 dialed first
    wiring_of(low).add_outbound(2, outbound, outbound.close)  # then 1 dialed: its stream wins
    cleanup()  # 2 closed (retired) the stream it dialed
    assert low.inbound_config().ids == (2,) and low.inbound_config()[0].channel is outbound
    (unregister,) = spans.named(SPAN_UNREGISTER)
    assert unregister.attributes is not None
    assert unregister.attributes["gorums.decision"] == "retired"
    assert unregister.attributes["gorums.config.size"] == 1
    cleanup_outbound = wiring_of(low).add_outbound(2, FakeStream(), FakeStream().close)
    cleanup_outbound()
    assert low.inbound_config().ids == ()


async def test_a_peer_that_keeps_both_streams_keeps_ours(spans: Spans) -> None:
    """Go Gorums dials with gorums-node-id only and keeps both streams of a pair."""
    high = manager(2, tracer_provider=spans.provider)
    go_dialed, ours = FakeStream(), FakeStream()
    context = FakeContext("ipv4:127.0.0.1:5", [("gorums-node-id", "1")])
    assert high.handle_stream(context, go_dialed) is not None
    wiring_of(high).add_outbound(1, ours, ours.close)
    assert not ours.closed and not go_dialed.closed  # both kept
    await asyncio.wait_for(wiring_of(high).wait_to_dial(1), 5)  # and it keeps dialing
    decisions = [s.attributes["gorums.decision"] for s in spans.named(SPAN_TIEBREAK)]
    assert decisions == ["kept_both"]


@pytest.mark.parametrize("inbound_first", [True, False])
async def test_peer_keeping_both_streams_is_called_over_ours(inbound_first: bool) -> None:
    """A Go Gorums peer (``gorums-node-id`` only) with a lower ID keeps both streams;
    we keep ours and call it over ours: Go serves a stream it accepted in order and
    knows the caller, a stream it dialed neither."""
    mgr = manager(3)
    ours, theirs = FakeStream(), FakeStream()
    go_context = FakeContext("ipv4:127.0.0.1:40000", (("gorums-node-id", "1"),))
    steps = [
        lambda: wiring_of(mgr).add_outbound(1, ours, ours.close),
        lambda: mgr.handle_stream(go_context, theirs),
    ]
    for step in reversed(steps) if inbound_first else steps:
        step()
    assert mgr.inbound_config().ids == (1,)
    assert mgr.inbound_config()[0].channel is ours
    assert not ours.closed and not theirs.closed
    await asyncio.wait_for(wiring_of(mgr).wait_to_dial(1), 5)
    assert mgr.stats().inbound == (1,) and mgr.stats().outbound == (1,)


async def test_the_higher_id_dials_again_only_once_the_lower_ids_stream_ends() -> None:
    """The dialer consults the pair rule: a gorums-mw peer with a lower ID
    connects the pair over its stream, so the higher ID waits while that is up."""
    high, low = manager(2), manager(1)
    marked = FakeContext("ipv4:127.0.0.1:1", (("gorums-addr", NODES[1]), (GORUMS_MW_KEY, "1")))
    assert high.handle_stream(marked, FakeStream()) is not None
    waiting = asyncio.create_task(wiring_of(high).wait_to_dial(1))
    await asyncio.wait_for(wiring_of(low).wait_to_dial(2), 5)  # the lower ID dials at once
    high.register_peer(1, NODES[1], FakeStream(), object())  # a reconnect: still waiting
    await asyncio.sleep(0)
    assert not waiting.done()
    high.close()  # ends the peer's streams
    await asyncio.wait_for(waiting, 5)


def test_reconnect_replaces_inbound_even_for_lower_peer() -> None:
    """The seed's bug: a reconnect must never make a peer vanish."""
    mgr = manager(2)
    first, second = FakeStream(), FakeStream()
    cleanup_first = mgr.register_peer(1, NODES[1], first, object())
    mgr.register_peer(1, NODES[1], second, object())
    cleanup_first()
    assert mgr.inbound_config().ids == (1,)
    assert mgr.inbound_config()[0].channel is second


async def test_wait_for_config_wakes_on_change_from_another_thread() -> None:
    mgr = manager()
    waiting = asyncio.create_task(mgr.wait_for_config(lambda c: 3 in c.ids, timeout=5))
    await asyncio.sleep(0)
    thread = threading.Thread(target=mgr.register_peer, args=(3, NODES[3], FakeStream(), object()))
    thread.start()
    config = await waiting
    thread.join()
    assert config.ids == (3,)
    with pytest.raises(TimeoutError):
        await mgr.wait_for_config(lambda c: 2 in c.ids, timeout=0.05)


def test_concurrent_registrations_from_threads() -> None:
    mgr = manager()
    node_ids = [2, 3, 4]
    cleanups: list[object] = []

    def churn(node_id: int) -> None:
        for _ in range(200):
            cleanup = mgr.register_peer(node_id, NODES[node_id], FakeStream(), object())
            cleanup()
        cleanups.append(mgr.register_peer(node_id, NODES[node_id], FakeStream(), object()))

    threads = [threading.Thread(target=churn, args=(n,)) for n in node_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert mgr.inbound_config().ids == (2, 3, 4)
    assert mgr.stats().registrations == 3


def test_with_node_list_is_a_type_error_at_run_time() -> None:
    from gorums_mw import with_node_list

    with pytest.raises(TypeError, match="with_nodes"):
        InboundManager(1, with_node_list(["127.0.0.1:1"]))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        InboundManager(0, with_nodes(NODES))


def test_snapshots_are_immutable_while_held() -> None:
    mgr = manager()
    mgr.register_peer(2, NODES[2], FakeStream(), object())
    held = mgr.inbound_config()
    cleanup = mgr.register_peer(3, NODES[3], FakeStream(), object())
    assert held.ids == (2,)
    newer = mgr.inbound_config()
    assert newer.ids == (2, 3)
    cleanup()
    mgr.register_peer(4, NODES[4], FakeStream(), object())
    assert held.ids == (2,) and newer.ids == (2, 3)
    assert mgr.inbound_config().ids == (2, 4)
    del held, newer  # no snapshot alive: changes need no copy, and stay correct
    mgr.register_peer(3, NODES[3], FakeStream(), object())
    assert mgr.inbound_config().ids == (2, 3, 4)


async def test_close_ends_streams_and_stops_calls(spans: Spans) -> None:
    mgr = manager(tracer_provider=spans.provider)
    peer_stream, client_stream = FakeStream(), FakeStream()
    mgr.register_peer(2, NODES[2], peer_stream, object())
    mgr.handle_stream(FakeContext("ipv4:10.0.0.1:1", ((GORUMS_CLIENT_KEY, "1"),)), client_stream)
    held, clients = mgr.inbound_config(), mgr.client_config()
    mgr.close()
    assert peer_stream.closed and client_stream.closed
    assert mgr.inbound_config().ids == () and mgr.client_config().ids == ()
    assert repr(mgr) == "<InboundManager id=1 closed peers=[] clients=0>"
    decisions = [s.attributes["gorums.decision"] for s in spans.named(SPAN_UNREGISTER)]
    assert decisions == ["unregistered", "unregistered"]
    request, reply = echo_pb2.EchoRequest(), echo_pb2.EchoReply
    with pytest.raises(RuntimeError, match="InboundManager 1 was stopped"):
        await held.quorum_call("echo.Echo.Say", request, reply, timeout=1)
    with pytest.raises(RuntimeError, match="InboundManager 1 was stopped"):
        await clients.quorum_call("echo.Echo.Say", request, reply, timeout=1)
    with pytest.raises(RuntimeError, match="InboundManager 1 was stopped"):
        await held.node(2).rpc("echo.Echo.Say", request, reply, timeout=1)
    with pytest.raises(RuntimeError, match="InboundManager 1 was stopped"):
        mgr.register_peer(3, NODES[3], FakeStream(), object())
    with pytest.raises(RuntimeError, match="InboundManager 1 was stopped"):
        mgr.handle_stream(replica_context(3), FakeStream())
    mgr.close()  # idempotent
    assert len(spans.named(SPAN_UNREGISTER)) == 2


def test_public_surface_is_what_users_call() -> None:
    """The wiring a System needs is private (``wiring_of``), not manager methods."""
    public = {name for name in dir(InboundManager) if not name.startswith("_")}
    assert public == {
        "client_config",
        "close",
        "handle_stream",
        "identify",
        "inbound_config",
        "known_nodes",
        "limits",
        "lookup_node_id",
        "my_id",
        "peer",
        "register_peer",
        "stats",
        "wait_for_clients",
        "wait_for_config",
    }
