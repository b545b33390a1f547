"""Configuration algebra as a pure unit: set laws, order, stable handles, clear errors."""

from __future__ import annotations

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gorums_mw import CallError, Configuration, Node, QuorumCallError

UNIVERSE = {node_id: Node(node_id, f"127.0.0.1:{9000 + node_id}") for node_id in range(1, 9)}


def config(ids: set[int] | list[int]) -> Configuration:
    return Configuration([UNIVERSE[i] for i in set(ids)], lookup=UNIVERSE.get)


id_sets = st.sets(st.integers(min_value=1, max_value=8))


@given(id_sets, id_sets)
def test_union_is_commutative_and_keeps_handles(a: set[int], b: set[int]) -> None:
    union = config(a) | config(b)
    assert union == config(b) | config(a)
    assert set(union.ids) == a | b
    assert list(union.ids) == sorted(a | b)
    assert all(node is UNIVERSE[node.id] for node in union)


@given(id_sets, id_sets, id_sets)
def test_union_and_intersection_are_associative(a: set[int], b: set[int], c: set[int]) -> None:
    x, y, z = config(a), config(b), config(c)
    assert (x | y) | z == x | (y | z)
    assert (x & y) & z == x & (y & z)
    assert set((x & y).ids) == a & b


@given(id_sets, id_sets)
def test_difference_is_disjoint_from_what_it_removes(a: set[int], b: set[int]) -> None:
    difference = config(a) - config(b)
    assert set(difference.ids) == a - b
    assert not set(difference.ids) & set(config(b).ids)
    assert (difference | (config(a) & config(b))) == config(a)


@given(st.lists(st.integers(min_value=1, max_value=8), unique=True), st.data())
def test_sorting_is_stable(ids: list[int], data: st.DataObject) -> None:
    ranks = {i: data.draw(st.integers(0, 2)) for i in ids}
    ordered = config(ids).sorted_by(lambda node: ranks[node.id])
    assert list(ordered.ids) == sorted(sorted(ids), key=lambda i: ranks[i])  # ties keep ID order
    assert set(ordered) == set(config(ids))


def test_membership_add_remove_and_contains() -> None:
    base = config([1, 2, 3])
    assert 2 in base and UNIVERSE[2] in base and 5 not in base
    assert Node(2, "127.0.0.1:9002") not in base  # a different handle, same ID
    assert base.add(5, 2).ids == (1, 2, 3, 5)
    assert base.remove(2, 7).ids == (1, 3)
    assert base.add().ids == base.ids and base.ids == (1, 2, 3)  # immutable
    with pytest.raises(KeyError, match="node 42 is not a node this configuration's manager knows"):
        base.add(42)


def test_nodes_without_latency_sort_last() -> None:
    base = config([1, 2, 3])
    UNIVERSE[3].observe(0.002, None)
    UNIVERSE[1].observe(0.001, None)
    assert base.sorted_by(lambda node: node.latency).ids[:2] == (1, 3)
    assert base.sorted_by(lambda node: node.latency).ids[2] == 2


def test_without_errors_drops_the_failed_nodes() -> None:
    base = config([1, 2, 3, 4])
    error = QuorumCallError(
        "x.Y.Z",
        3,
        {1: object()},
        {
            2: CallError(grpc.StatusCode.UNAVAILABLE, "down", 2),
            3: CallError(grpc.StatusCode.DEADLINE_EXCEEDED, "slow", 3),
        },
    )
    assert base.without_errors(error).ids == (1, 4)
    assert base.without_errors(error, grpc.StatusCode.UNAVAILABLE).ids == (1, 3, 4)


def test_configurations_of_different_managers_combine_only_without_clashes() -> None:
    mine = config([1, 2])
    other_manager = Configuration([Node(2, "127.0.0.1:9002"), Node(9, "127.0.0.1:9009")])
    with pytest.raises(ValueError, match="node 2 is a different node in each configuration"):
        mine | other_manager
    with pytest.raises(ValueError, match="different node"):
        mine & other_manager
    distinct = Configuration([Node(9, "127.0.0.1:9009")])
    assert (mine | distinct).ids == (1, 2, 9)
    assert (mine - other_manager).ids == (1,)  # by ID: nothing to confuse
    with pytest.raises(TypeError):
        mine | [UNIVERSE[3]]  # type: ignore[operator]
