"""Generated rule sets and machines shared by the tests and the benchmarks in bench/."""
import uuid

from django import forms

from flowr import builder
from flowr.rules import Rule, RuleSet, is_registered, register
from flowr.sync import sync_rule_sets


def cycle_machine(length, name=None, key="cycle"):
    """A published machine Head → Link … → Link → Head: one next state everywhere, no end."""
    if not is_registered(key):
        class Link(Rule):
            children = ["Link", "Head"]

        class Head(Rule):
            children = ["Link"]

        register(RuleSet(key, root=Head, rules=[Head, Link]))
        sync_rule_sets()
    machine = builder.create_machine(key, name or f"Cycle {length}")
    state = machine.root_state
    for _ in range(length - 1):
        state = builder.add_child(state, f"{key}.Link")
    builder.connect(state, machine.root_state)
    machine.publish()
    return machine


class StepSettings(forms.Form):
    n = forms.IntegerField(min_value=0)


def register_chain_rules(key="chain"):
    """A rule set whose Step may follow itself and loop back to Start: any chain length."""

    class Start(Rule):
        children = ["Step"]

    class Step(Rule):
        children = ["Step", "Start"]
        multiple_paths = True
        settings_form = StepSettings

    register(RuleSet(key, "Chain", root=Start, rules=[Start, Step]))
    sync_rule_sets()


def chain_document(count, name="Chain", key="chain"):
    """An import document of `count` states: Start → Step 1 → …, every 10th looping back."""
    states = [{"key": "start", "name": "Start", "rule": f"{key}.Start", "settings": {}}]
    states += [{"key": f"s{i}", "name": f"Step {i}", "rule": f"{key}.Step",
                "settings": {"n": i}} for i in range(1, count)]
    keys = [s["key"] for s in states]
    edges = [[a, b] for a, b in zip(keys, keys[1:], strict=False)]
    edges += [[k, "start"] for k in keys[10::10]]
    return {"uuid": str(uuid.uuid4()), "name": name, "description": f"{count} states",
            "rule_set": key, "format": 1,
            "graph": {"root": "start", "states": states, "transitions": edges}}
