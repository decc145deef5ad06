"""What removing a state or a transition strands: the one-pass dominator index against
the plain reachability search it replaces, on hand-made and generated graphs."""
from hypothesis import given, settings
from hypothesis import strategies as st

from flowr import graph
from flowr.graph import StrandIndex, dominators, reachable


def naive_removal(states, edges, root, key):
    return set(states) - reachable(root, edges, removed={key}) - {key}


def naive_disconnect(states, edges, root, parent, child):
    return set(states) - reachable(root, [e for e in edges if e != (parent, child)])


def stranded(index, answer):
    """The full set behind a (few, count) answer, checked for consistency."""
    few, count = answer
    assert len(few) == min(count, graph.FEW)
    return few, count


EXAMPLE = {"a": "A", "c": "C", "d": "D", "e": "E"}
EXAMPLE_EDGES = [("a", "c"), ("c", "d"), ("c", "e"), ("e", "a")]


def test_dominators_of_the_flowr_example():
    assert dominators("a", EXAMPLE_EDGES) == {"a": "a", "c": "a", "d": "c", "e": "c"}


def test_removal_and_disconnect_of_the_flowr_example():
    index = StrandIndex(EXAMPLE, EXAMPLE_EDGES, "a")
    assert index.removal("c") == (["d", "e"], 2)
    assert index.removal("d") == ([], 0)
    assert index.disconnect("a", "c")[1] == 3
    assert index.disconnect("e", "a") == ([], 0)  # the loop back strands nothing
    assert index.removal_error("a", EXAMPLE) == ("State 'A' is the root; the root cannot be "
                                                 "removed.")
    assert index.removal_error("c", EXAMPLE) == (
        "Removing state 'C' would leave 'D' and 'E' unreachable from the root; use prune to "
        "remove it with everything only reachable through it.")


def test_long_chains_name_a_few_states_and_count_the_rest():
    keys = [f"s{i}" for i in range(500)]
    edges = list(zip(keys, keys[1:], strict=False))
    names = {k: k.upper() for k in keys}
    message = StrandIndex(names, edges, "s0").removal_error("s1", names)
    assert message.startswith("Removing state 'S1' would leave 'S2', 'S3', 'S4' and 495 "
                              "more states unreachable")
    assert len(message) < 200
    assert "and 494 more states" in StrandIndex(names, edges, "s0").disconnect_error(
        "s2", "s3", names)


def test_a_state_with_a_second_way_in_is_not_stranded():
    edges = [("r", "a"), ("r", "b"), ("a", "c"), ("b", "c"), ("c", "d"), ("d", "c")]
    index = StrandIndex(dict.fromkeys("rabcd", "X"), edges, "r")
    assert index.removal("a") == ([], 0)
    assert index.disconnect("a", "c") == ([], 0)
    assert index.disconnect("c", "d") == (["d"], 1)
    assert index.disconnect("d", "c") == ([], 0)  # d is only reachable through c


def test_states_already_unreachable_count_as_stranded_like_the_plain_search():
    states = dict.fromkeys("rabx", "X")
    edges = [("r", "a"), ("a", "b"), ("x", "b")]
    index = StrandIndex(states, edges, "r")
    for key in "abx":
        few, count = index.removal(key)
        assert count == len(naive_removal(states, edges, "r", key)), key
    assert index.removal("x") == ([], 0)
    assert index.disconnect("a", "b")[1] == 2  # b, and x that was never reachable


graphs = st.integers(min_value=1, max_value=12).flatmap(lambda n: st.tuples(
    st.just(n),
    st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=3 * n,
             unique=True)))


@settings(max_examples=300, deadline=None)
@given(graphs)
def test_index_agrees_with_reachability_search_on_any_graph(generated):
    n, pairs = generated
    states = {f"s{i}": "X" for i in range(n)}
    edges = [(f"s{a}", f"s{b}") for a, b in pairs]
    index = StrandIndex(states, edges, "s0")
    for key in states:
        if key == "s0":
            continue
        expected = naive_removal(states, edges, "s0", key)
        few, count = stranded(index, index.removal(key))
        assert count == len(expected) and set(few) <= expected, key
        assert (index.removal_error(key) is None) == (not expected)
    for parent, child in edges:
        expected = naive_disconnect(states, edges, "s0", parent, child)
        few, count = stranded(index, index.disconnect(parent, child))
        assert count == len(expected) and set(few) <= expected, (parent, child)


@settings(max_examples=200, deadline=None)
@given(graphs)
def test_dominators_match_the_definition(generated):
    n, pairs = generated
    edges = [(f"s{a}", f"s{b}") for a, b in pairs]
    idom = dominators("s0", edges)
    assert set(idom) == reachable("s0", edges)
    for key, dom in idom.items():
        if key == "s0":
            continue
        assert key not in reachable("s0", edges, removed={dom})  # dom dominates key
