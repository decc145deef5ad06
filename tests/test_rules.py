"""Rules and the rule-set registry."""
import pytest

from flowr.exceptions import RuleConfigurationError, RuleNotRegistered
from flowr.rules import (
    Rule, RuleSet, get_rule, get_rule_set, get_rule_sets, is_registered, register, unregister,
)


def make_set(key="t", **extra):
    class Start(Rule):
        """The   first state.

        Spans lines."""
        children = ["Loop", "End"]
        multiple_paths = True

    class Loop(Rule):
        children = ["Loop", Start]  # self-reference and a class reference

    class End(Rule):
        display_name = "The end"

    return RuleSet(key, "Test", root=Start, rules=[Start, Loop, End], **extra)


def test_register_and_look_up_by_stable_key():
    rule_set = register(make_set())
    assert is_registered("t") and get_rule_set("t") is rule_set
    assert get_rule("t.Loop").__name__ == "Loop"
    assert rule_set.root_key == "t.Start"
    assert rule_set.children_keys("t.Loop") == ("t.Loop", "t.Start")
    assert rule_set.max_children("t.Start") == 2
    assert rule_set.max_children("t.Loop") == 1  # multiple_paths off
    assert rule_set.max_children("t.End") == 0


def test_display_name_and_description_from_docstring():
    rule_set = register(make_set())
    start, end = rule_set.get("t.Start"), rule_set.get("t.End")
    assert start.get_description() == "The first state. Spans lines."
    assert start.get_display_name() == "Start"
    assert end.get_display_name() == "The end"


def test_duplicate_key_is_refused_naming_it():
    register(make_set())
    with pytest.raises(RuleConfigurationError, match="'t' is already registered"):
        register(make_set())


def test_unregister_then_lookups_fail_clearly():
    register(make_set())
    unregister("t")
    assert not is_registered("t")
    with pytest.raises(RuleNotRegistered, match="Rule set 't' is not registered"):
        get_rule_set("t")
    with pytest.raises(RuleNotRegistered):
        unregister("t")


def test_child_outside_the_set_is_a_configuration_error():
    class Outside(Rule):
        pass

    class Root(Rule):
        children = [Outside]

    with pytest.raises(RuleConfigurationError, match="rule 'Root' names child 'Outside'"):
        register(RuleSet("bad", root=Root, rules=[Root]))
    assert not is_registered("bad")


def test_unknown_child_name_is_a_configuration_error():
    class Root(Rule):
        children = ["Nope"]

    with pytest.raises(RuleConfigurationError, match="'Nope'"):
        register(RuleSet("bad", root=Root, rules=[Root]))


def test_missing_root_is_a_configuration_error():
    class Root(Rule):
        pass

    class Other(Rule):
        pass

    with pytest.raises(RuleConfigurationError, match="root rule 'Root' is missing"):
        register(RuleSet("bad", root=Root, rules=[Other]))


def test_duplicate_rule_names_and_bad_keys_are_refused():
    class Root(Rule):
        pass

    with pytest.raises(RuleConfigurationError, match="two rules named 'Root'"):
        register(RuleSet("bad", root=Root, rules=[Root, Root]))
    with pytest.raises(RuleConfigurationError, match="no dot"):
        register(RuleSet("a.b", root=Root, rules=[Root]))


def test_mutual_references_after_definition():
    class A(Rule):
        pass

    class E(Rule):
        children = [A]

    A.children = [E]  # assigned after both exist
    rule_set = register(RuleSet("mutual", root=A, rules=[A, E]))
    assert rule_set.children_keys("mutual.A") == ("mutual.E",)
    assert rule_set.children_keys("mutual.E") == ("mutual.A",)


def test_demo_rule_sets_are_discovered_at_start_up():
    assert {"flowr_example", "orders", "support"} <= {s.key for s in get_rule_sets()}


def test_rule_set_rows_are_synced(db):
    from flowr.models import RuleSetRecord
    from flowr.sync import sync_rule_sets

    assert RuleSetRecord.objects.filter(key="orders", is_registered=True).exists()
    register(make_set("fresh"))
    assert sync_rule_sets()[0] == 1
    assert RuleSetRecord.objects.get(key="fresh").root_rule_key == "fresh.Start"
    unregister("fresh")
    sync_rule_sets()
    assert RuleSetRecord.objects.get(key="fresh").is_registered is False


def test_syncrulesets_command(db, capsys):
    from django.core.management import call_command

    call_command("syncrulesets")
    assert "Rule sets:" in capsys.readouterr().out


def test_register_works_as_a_class_decorator():
    class Only(Rule):
        children = ["Only"]

    @register
    class Loops(RuleSet):
        """Loops   forever."""
        key, root, rules = "loops", Only, [Only]

    assert Loops.__name__ == "Loops"  # the decorator gives the class back
    rule_set = get_rule_set("loops")
    assert (rule_set.name, rule_set.description) == ("Loops", "Loops forever.")
    assert rule_set.children_keys("loops.Only") == ("loops.Only",)
    with pytest.raises(RuleConfigurationError, match="lacks root, rules"):
        @register
        class Broken(RuleSet):
            key = "broken"
