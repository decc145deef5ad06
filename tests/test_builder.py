"""The builder enforces every graph invariant of spec §2 and names what is involved."""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowr import builder
from flowr.builder import MachineGraph
from flowr.exceptions import GraphError, SettingsInvalid
from flowr.models import State, Transition
from flowr.rules import Rule, RuleSet, is_registered, register

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

EX = "flowr_example"


def states(machine):
    return sorted(machine.states.values_list("name", flat=True))


def edges(machine):
    return sorted(Transition.objects.filter(machine=machine)
                  .values_list("parent__name", "child__name"))


@pytest.fixture
def ex():
    return builder.create_machine(EX, "Ex")


def test_create_machine_makes_the_root_state(ex):
    root = ex.root_state
    assert (root.name, root.rule_key, root.is_root) == ("A", "flowr_example.A", True)


def test_create_machine_of_an_unknown_or_unsynced_rule_set_is_a_flowr_error(db):
    from flowr.exceptions import RuleNotRegistered

    with pytest.raises(RuleNotRegistered, match="Rule set 'no_such_key' is not registered"):
        builder.create_machine("no_such_key", "Nope")

    class Lone(Rule):
        pass

    register(RuleSet("unsynced", root=Lone, rules=[Lone]))  # registered, never synced
    with pytest.raises(RuleNotRegistered, match="run `manage.py syncrulesets`"):
        builder.create_machine("unsynced", "Nope")


def test_flowr_example_machines_that_must_work(ex):
    a = ex.root_state
    # A→C→D, then A→C→(D|E) and the loop E→A.
    c = builder.add_child(a, f"{EX}.C")
    builder.add_child(c, f"{EX}.D")
    e = builder.add_child(c, f"{EX}.E")
    builder.connect(e, a)
    assert edges(ex) == [("A", "C"), ("C", "D"), ("C", "E"), ("E", "A")]
    assert MachineGraph.load(ex).errors() == []
    other = builder.create_machine(EX, "Ex2")
    builder.add_child(other.root_state, f"{EX}.B")  # A→B
    assert edges(other) == [("A", "B")]


def test_a_to_d_is_refused_naming_states_and_rules(ex):
    with pytest.raises(GraphError) as err:
        builder.add_child(ex.root_state, f"{EX}.D")
    assert "flowr_example.A" in str(err.value) and "flowr_example.D" in str(err.value)
    assert "allowed children: flowr_example.B, flowr_example.C" in str(err.value)
    assert states(ex) == ["A"]


def test_a_to_b_to_c_is_refused(ex):
    b = builder.add_child(ex.root_state, f"{EX}.B")
    with pytest.raises(GraphError, match="does not allow a child of rule flowr_example.C"):
        builder.add_child(b, f"{EX}.C")
    assert states(ex) == ["A", "B"]


def test_single_path_rule_takes_at_most_one_child(ex):
    builder.add_child(ex.root_state, f"{EX}.B")
    with pytest.raises(GraphError, match="allows at most 1 .multiple_paths is off"):
        builder.add_child(ex.root_state, f"{EX}.C")


def test_multiple_paths_rule_takes_at_most_len_children_and_never_a_rule_twice(ex):
    c = builder.add_child(ex.root_state, f"{EX}.C")
    d = builder.add_child(c, f"{EX}.D")
    with pytest.raises(GraphError, match="already has a child of rule flowr_example.D: 'D'"):
        builder.add_child(c, f"{EX}.D")
    builder.add_child(c, f"{EX}.E")
    assert MachineGraph.load(ex).addable_rules(c) == []
    # a second D state elsewhere cannot be connected under C either (limit reached)
    with pytest.raises(GraphError):
        builder.connect(c, d)


def test_connect_to_existing_state_makes_a_cycle(ex):
    c = builder.add_child(ex.root_state, f"{EX}.C")
    e = builder.add_child(c, f"{EX}.E")
    builder.connect(e, ex.root_state)
    with pytest.raises(GraphError, match="already connected"):
        builder.connect(e, ex.root_state)


def test_self_reference_is_allowed_when_the_rule_is_its_own_child():
    class Loop(Rule):
        children = ["Loop"]

    register(RuleSet("selfref", root=Loop, rules=[Loop]))
    from flowr.sync import sync_rule_sets

    sync_rule_sets()
    machine = builder.create_machine("selfref", "Self")
    builder.connect(machine.root_state, machine.root_state)
    assert edges(machine) == [("Loop", "Loop")]


def test_remove_that_would_split_the_graph_is_refused(ex):
    c = builder.add_child(ex.root_state, f"{EX}.C")
    builder.add_child(c, f"{EX}.D")
    with pytest.raises(GraphError, match="would leave 'D' unreachable from the root; use prune"):
        builder.remove_state(c)
    assert states(ex) == ["A", "C", "D"]


def test_remove_a_leaf_and_a_state_still_reachable_another_way(ex):
    c = builder.add_child(ex.root_state, f"{EX}.C")
    d = builder.add_child(c, f"{EX}.D")
    builder.remove_state(d)
    assert states(ex) == ["A", "C"]


def test_root_cannot_be_removed_or_pruned(ex):
    with pytest.raises(GraphError, match="root cannot be removed"):
        builder.remove_state(ex.root_state)
    with pytest.raises(GraphError, match="root cannot be pruned"):
        builder.prune_state(ex.root_state)


def test_prune_removes_everything_only_reachable_through_the_state(ex):
    a = ex.root_state
    c = builder.add_child(a, f"{EX}.C")
    builder.add_child(c, f"{EX}.D")
    e = builder.add_child(c, f"{EX}.E")
    builder.connect(e, a)
    graph = MachineGraph.load(ex)
    assert sorted(s.name for s in graph.prune_preview(graph.by_key[c.key])) == ["C", "D", "E"]
    assert sorted(builder.prune_state(c)) == ["C", "D", "E"]
    assert states(ex) == ["A"] and edges(ex) == []


def test_disconnect_refused_when_it_strands_states(ex):
    a = ex.root_state
    c = builder.add_child(a, f"{EX}.C")
    e = builder.add_child(c, f"{EX}.E")
    builder.connect(e, a)
    with pytest.raises(GraphError, match="would leave"):
        builder.disconnect(a, c)
    builder.disconnect(e, a)
    assert edges(ex) == [("A", "C"), ("C", "E")]


def test_names_are_unique_and_default_from_the_rule(ex):
    a = ex.root_state
    c = builder.add_child(a, f"{EX}.C", name="Check")
    assert c.name == "Check"
    d = builder.add_child(c, f"{EX}.D")
    with pytest.raises(GraphError, match="already exists"):
        builder.update_state(d, name="Check")
    builder.update_state(d, name="Done")
    assert states(ex) == ["A", "Check", "Done"]


def test_settings_are_validated_by_the_rules_form(demo_machines):
    approved = demo_machines["orders"].states.get(rule_key="orders.Approved")
    with pytest.raises(SettingsInvalid, match="max_amount"):
        builder.update_state(approved, settings={"max_amount": -5})
    builder.update_state(approved, settings={"max_amount": "250"})
    approved.refresh_from_db()
    assert approved.settings == {"max_amount": 250}
    draft = demo_machines["orders"].root_state
    with pytest.raises(SettingsInvalid, match="takes no settings"):
        builder.update_state(draft, settings={"x": 1})


def test_unknown_rule_is_refused(ex):
    with pytest.raises(GraphError, match="not a rule of rule set flowr_example"):
        builder.add_child(ex.root_state, "orders.Approved")


def test_graph_check_after_a_rule_is_removed_from_code(ex):
    builder.add_child(ex.root_state, f"{EX}.B")
    from flowr.rules import unregister

    unregister(EX)
    errors = MachineGraph.load(ex).errors()
    assert errors and "not registered" in errors[0]


# -- property-based: random operations never break the invariants ----------------------

class _Fan(Rule):
    """Root of a wide set."""
    children = ["P", "Q", "R"]
    multiple_paths = True


class P(Rule):
    children = ["Q", "R", "Fan"]
    multiple_paths = True


class Q(Rule):
    children = ["P"]


class R(Rule):
    children = ["R", "Q"]
    multiple_paths = True


_Fan.__name__ = "Fan"
OPS = st.lists(st.tuples(st.sampled_from(["add", "connect", "remove", "prune", "disconnect"]),
                         st.integers(0, 30), st.integers(0, 30), st.integers(0, 3)),
               max_size=25)


def _check_invariants(machine):
    graph = MachineGraph.load(machine)
    assert graph.errors() == []
    rule_set = graph.rule_set
    for state in graph.states:
        kids = graph.children(state)
        assert len(kids) <= rule_set.max_children(state.rule_key)
        assert len({k.rule_key for k in kids}) == len(kids)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=OPS)
def test_random_builder_operations_keep_the_graph_valid(ops):
    from django.db import transaction

    if not is_registered("fan"):
        register(RuleSet("fan", root=_Fan, rules=[_Fan, P, Q, R]))
        from flowr.sync import sync_rule_sets

        sync_rule_sets()
    with transaction.atomic():
        machine = builder.create_machine("fan", "Fuzz")
        for op, i, j, r in ops:
            all_states = list(State.objects.filter(machine=machine).order_by("id"))
            s1, s2 = all_states[i % len(all_states)], all_states[j % len(all_states)]
            try:
                if op == "add":
                    builder.add_child(s1, ["fan.Fan", "fan.P", "fan.Q", "fan.R"][r])
                elif op == "connect":
                    builder.connect(s1, s2)
                elif op == "remove":
                    builder.remove_state(s1)
                elif op == "prune":
                    builder.prune_state(s1)
                else:
                    builder.disconnect(s1, s2)
            except GraphError:
                pass
            _check_invariants(machine)
        transaction.set_rollback(True)


def test_changes_to_a_state_removed_meanwhile_are_refused(ex):
    c = builder.add_child(ex.root_state, f"{EX}.C")
    stale = State.objects.get(pk=c.pk)
    builder.prune_state(c)
    for change in (lambda: builder.add_child(stale, f"{EX}.D"),
                   lambda: builder.update_state(stale, name="X"),
                   lambda: builder.remove_state(stale),
                   lambda: builder.connect(stale, ex.root_state)):
        with pytest.raises(GraphError, match="no longer exists in machine 'Ex'"):
            change()
    assert states(ex) == ["A"]
