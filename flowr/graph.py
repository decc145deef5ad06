"""Pure graph functions: validate a machine graph against its rules, reachability, prune.

A graph here is plain data, so the builder, the importer and the engine share one
implementation:

    states: {state_key: rule_key}
    edges:  [(parent_key, child_key), ...]
    rules:  {rule_key: (allowed child rule keys, max children)}  (RuleSet.graph_rules())
    names:  {state_key: display name}  (for messages only)
"""
from collections import defaultdict


def children_map(edges):
    result = defaultdict(list)
    for parent, child in edges:
        result[parent].append(child)
    return result


def reachable(root, edges, removed=()):
    """State keys reachable from `root`, ignoring states in `removed`."""
    if root is None or root in removed:
        return set()
    kids = children_map(edges)
    seen, todo = {root}, [root]
    while todo:
        for child in kids.get(todo.pop(), ()):
            if child not in seen and child not in removed:
                seen.add(child)
                todo.append(child)
    return seen


def _label(names, states, key):
    return f"'{names.get(key, key)}' ({states.get(key, '?')})"


def edge_error(states, edges, rules, parent, child, names=None):
    """Why the edge parent→child may not be added (a message), or None if it may."""
    names = names or {}
    p_rule, c_rule = states[parent], states[child]
    if p_rule not in rules:
        return f"State {_label(names, states, parent)} uses a rule that is not registered."
    allowed, max_children = rules[p_rule]
    existing = [c for p, c in edges if p == parent]
    if child in existing:
        return (f"State {_label(names, states, parent)} is already connected to "
                f"{_label(names, states, child)}.")
    if c_rule not in allowed:
        allowed_text = ", ".join(allowed) or "none"
        return (f"Rule {p_rule} of state '{names.get(parent, parent)}' does not allow a "
                f"child of rule {c_rule} (state '{names.get(child, child)}'); "
                f"allowed children: {allowed_text}.")
    if len(existing) >= max_children:
        return (f"State {_label(names, states, parent)} already has {len(existing)} "
                f"child{'ren' if len(existing) != 1 else ''}; rule {p_rule} allows at most "
                f"{max_children}" + ("" if max_children > 1 else " (multiple_paths is off)") + ".")
    for other in existing:
        if states[other] == c_rule:
            return (f"State {_label(names, states, parent)} already has a child of rule "
                    f"{c_rule}: '{names.get(other, other)}'; two children of one state "
                    f"never share a rule.")
    return None


def validate(states, edges, rules, root, root_rule, names=None):
    """Every rule violation of a whole graph, as a list of messages (empty when valid)."""
    names = names or {}
    errors = []
    if root not in states:
        return [f"The graph has no root state (expected one of rule {root_rule})."]
    if states[root] != root_rule:
        errors.append(f"Root state {_label(names, states, root)} must use the root rule "
                      f"{root_rule}.")
    for key, rule_key in states.items():
        if rule_key not in rules:
            errors.append(f"State {_label(names, states, key)} uses rule {rule_key}, which is "
                          f"not registered in this rule set.")
    accepted = []
    for parent, child in edges:
        if parent not in states or child not in states:
            missing = parent if parent not in states else child
            errors.append(f"A transition refers to unknown state '{missing}'.")
            continue
        if states[parent] not in rules:
            continue
        problem = edge_error(states, accepted, rules, parent, child, names)
        if problem:
            errors.append(problem)
        else:
            accepted.append((parent, child))
    unreachable = set(states) - reachable(root, edges)
    for key in sorted(unreachable, key=lambda k: names.get(k, k)):
        errors.append(f"State {_label(names, states, key)} is not reachable from the root.")
    return errors


def removal_error(states, edges, root, key, names=None):
    """Why removing one state would split the graph (a message), or None."""
    names = names or {}
    if key == root:
        return f"State '{names.get(key, key)}' is the root; the root cannot be removed."
    left = reachable(root, edges, removed={key})
    stranded = set(states) - left - {key}
    if stranded:
        listed = ", ".join(sorted(f"'{names.get(k, k)}'" for k in stranded))
        return (f"Removing state '{names.get(key, key)}' would leave {listed} unreachable "
                f"from the root; use prune to remove it with everything only reachable "
                f"through it.")
    return None


def prune_set(states, edges, root, key):
    """The state keys prune(key) removes: `key` and all only reachable through it."""
    if key == root:
        return set(states)
    return set(states) - reachable(root, edges, removed={key})


def disconnect_error(states, edges, root, parent, child, names=None):
    """Why removing the transition parent→child would strand states, or None."""
    names = names or {}
    rest = [e for e in edges if e != (parent, child)]
    stranded = set(states) - reachable(root, rest)
    if stranded:
        listed = ", ".join(sorted(f"'{names.get(k, k)}'" for k in stranded))
        return (f"Removing the transition '{names.get(parent, parent)}' → "
                f"'{names.get(child, child)}' would leave {listed} unreachable from the root.")
    return None


def layers(root, edges, keys):
    """Breadth-first depth of each state from the root (for simple layouts and ordering)."""
    depth = {root: 0}
    order = [root]
    kids = children_map(edges)
    for key in order:
        for child in kids.get(key, ()):
            if child not in depth:
                depth[child] = depth[key] + 1
                order.append(child)
    for key in keys:
        depth.setdefault(key, max(depth.values(), default=0) + 1)
    return depth
