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


def register_hub_rules(key="hub", spokes=200):
    """A rule set Hub → Spoke0…SpokeN → Link → Link…, where a Link may loop back to Hub."""
    if is_registered(key):
        return

    class Hub(Rule):
        multiple_paths = True
        children = [f"Spoke{i}" for i in range(spokes)]

    class Link(Rule):
        multiple_paths = True
        children = ["Link", "Hub"]

    spoke_rules = [type(f"Spoke{i}", (Rule,), {"__doc__": "A spoke.", "children": ["Link"]})
                   for i in range(spokes)]
    register(RuleSet(key, "Hub", root=Hub, rules=[Hub, Link, *spoke_rules]))
    sync_rule_sets()


def hub_document(count, name=None, key="hub", chain=10):
    """An import document of `count` states: a hub with spokes, each leading a chain of
    links; every other chain loops back to the hub, the others end open (so their last
    link may connect to any link: the longest connect lists a page can have)."""
    states = [{"key": "hub", "name": "Hub", "rule": f"{key}.Hub", "settings": {}}]
    edges, spoke = [], 0
    while len(states) < count:
        parent = f"s{spoke}"
        states.append({"key": parent, "name": f"Spoke {spoke}", "rule": f"{key}.Spoke{spoke}",
                       "settings": {}})
        edges.append(["hub", parent])
        for i in range(min(chain - 1, count - len(states))):
            link = f"s{spoke}l{i}"
            states.append({"key": link, "name": f"Link {spoke}.{i}", "rule": f"{key}.Link",
                           "settings": {}})
            edges.append([parent, link])
            parent = link
        if spoke % 2 == 0 and parent != f"s{spoke}":
            edges.append([parent, "hub"])
        spoke += 1
    return {"uuid": str(uuid.uuid4()), "name": name or f"Hub {count}",
            "description": f"{count} states", "rule_set": key, "format": 1,
            "graph": {"root": "hub", "states": states, "transitions": edges}}


def hub_machine(count, name=None, key="hub", chain=10):
    """A machine of `count` states shaped like hub_document (rules registered on demand)."""
    from flowr import interchange

    register_hub_rules(key)
    machine, _ = interchange.apply_document(hub_document(count, name, key, chain))
    return machine
