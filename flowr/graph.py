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
    return _edge_problem(states, [c for p, c in edges if p == parent], rules, parent, child,
                         names or {})


def _edge_problem(states, existing, rules, parent, child, names):
    """edge_error() given the parent's current children (`existing`)."""
    p_rule, c_rule = states[parent], states[child]
    if p_rule not in rules:
        return f"State {_label(names, states, parent)} uses a rule that is not registered."
    allowed, max_children = rules[p_rule]
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
    accepted = defaultdict(list)  # parent -> children accepted so far
    for parent, child in edges:
        if parent not in states or child not in states:
            missing = parent if parent not in states else child
            errors.append(f"A transition refers to unknown state '{missing}'.")
            continue
        if states[parent] not in rules:
            continue
        problem = _edge_problem(states, accepted[parent], rules, parent, child, names)
        if problem:
            errors.append(problem)
        else:
            accepted[parent].append(child)
    unreachable = set(states) - reachable(root, edges)
    for key in sorted(unreachable, key=lambda k: names.get(k, k)):
        errors.append(f"State {_label(names, states, key)} is not reachable from the root.")
    return errors


def removal_error(states, edges, root, key, names=None):
    """Why removing one state would split the graph (a message), or None."""
    return StrandIndex(states, edges, root).removal_error(key, names)


def prune_set(states, edges, root, key):
    """The state keys prune(key) removes: `key` and all only reachable through it."""
    if key == root:
        return set(states)
    return set(states) - reachable(root, edges, removed={key})


def disconnect_error(states, edges, root, parent, child, names=None):
    """Why removing the transition parent→child would strand states, or None."""
    return StrandIndex(states, edges, root).disconnect_error(parent, child, names)


# -- what every removal would strand, in one pass (dominator tree) --------------------

def _postorder(root, kids):
    """States reachable from `root` in depth-first postorder (iterative: no recursion limit)."""
    seen, order = {root}, []
    stack = [(root, iter(kids.get(root, ())))]
    while stack:
        node, todo = stack[-1]
        for child in todo:
            if child not in seen:
                seen.add(child)
                stack.append((child, iter(kids.get(child, ()))))
                break
        else:
            stack.pop()
            order.append(node)
    return order


def dominators(root, edges):
    """{state: its immediate dominator} for every state reachable from `root` (root → root).

    Cooper, Harvey and Kennedy, "A Simple, Fast Dominance Algorithm" (2001): iterate
    over the states in reverse postorder until the immediate dominators settle.
    """
    rpo = _postorder(root, children_map(edges))[::-1]
    number = {key: i for i, key in enumerate(rpo)}
    preds = [[] for _ in rpo]
    for parent, child in edges:
        if parent in number and child in number:
            preds[number[child]].append(number[parent])
    idom = [None] * len(rpo)
    idom[0] = 0

    def intersect(a, b):
        while a != b:
            while a > b:
                a = idom[a]
            while b > a:
                b = idom[b]
        return a

    changed = True
    while changed:
        changed = False
        for i in range(1, len(rpo)):
            done = [p for p in preds[i] if idom[p] is not None]
            new = done[0]  # a predecessor earlier in reverse postorder is always done
            for p in done[1:]:
                new = intersect(p, new)
            if idom[i] != new:
                idom[i], changed = new, True
    return {key: rpo[idom[i]] for i, key in enumerate(rpo)}


class StrandIndex:
    """What removing any state or transition would leave unreachable, answered in O(1).

    A state is stranded by removing `v` exactly when `v` dominates it (every path from
    the root passes through `v`). Removing the transition u→v strands `v` and what it
    dominates exactly when every other parent of `v` is itself dominated by `v` (only
    reachable through `v`). States already unreachable count as stranded by any change,
    as reachable() would find.
    """

    def __init__(self, states, edges, root):
        self.states, self.root = states, root
        idom = dominators(root, edges) if root in states else {}
        self.unreachable = [k for k in states if k not in idom]
        # Children in the states' own order, so messages name states as the page lists them.
        tree = children_map((idom[k], k) for k in states if k in idom and k != root)
        self.preorder, self.first, self.size = [], {}, {}
        if idom:
            self._number(tree)
        self.parents = defaultdict(list)
        for parent, child in edges:
            self.parents[child].append(parent)

    def _number(self, tree):
        """Preorder of the dominator tree and each subtree's size (iteratively)."""
        stack = [self.root]
        while stack:
            key = stack.pop()
            self.first[key] = len(self.preorder)
            self.preorder.append(key)
            stack.extend(reversed(tree.get(key, ())))
        for key in reversed(self.preorder):
            self.size[key] = 1 + sum(self.size[c] for c in tree.get(key, ()))

    def dominates(self, a, b):
        """Does every path from the root to `b` pass through `a`?"""
        if a not in self.first or b not in self.first:
            return False
        return self.first[a] <= self.first[b] < self.first[a] + self.size[a]

    def _below(self, key, include_self):
        """(first few, count) of the states `key` dominates."""
        start = self.first[key] + (0 if include_self else 1)
        end = self.first[key] + self.size[key]
        return self.preorder[start:min(start + FEW, end)], end - start

    def _with_unreachable(self, few, count, exclude=None):
        extra = [k for k in self.unreachable if k != exclude]
        return (few + extra)[:FEW], count + len(extra)

    def removal(self, key):
        """(first few, count) of the states removing `key` would strand."""
        few, count = self._below(key, False) if key in self.first else ([], 0)
        return self._with_unreachable(few, count, exclude=key)

    def disconnect(self, parent, child):
        """(first few, count) of the states removing parent→child would strand."""
        few, count = [], 0
        if parent in self.first and child in self.first and child != self.root and all(
                other not in self.first or self.dominates(child, other)
                for other in self.parents[child] if other != parent):
            few, count = self._below(child, True)
        return self._with_unreachable(few, count)

    def removal_error(self, key, names=None):
        """Why removing state `key` is refused (a message), or None."""
        names = names or {}
        if key == self.root:
            return f"State '{names.get(key, key)}' is the root; the root cannot be removed."
        few, count = self.removal(key)
        if not count:
            return None
        return (f"Removing state '{names.get(key, key)}' would leave "
                f"{name_few(few, count, names)} unreachable from the root; use prune to remove "
                f"it with everything only reachable through it.")

    def disconnect_error(self, parent, child, names=None):
        """Why removing the transition parent→child is refused (a message), or None."""
        names = names or {}
        few, count = self.disconnect(parent, child)
        if not count:
            return None
        return (f"Removing the transition '{names.get(parent, parent)}' → "
                f"'{names.get(child, child)}' would leave {name_few(few, count, names)} "
                f"unreachable from the root.")


FEW = 3  # states named in a message; the rest are counted


def name_few(keys, count, names):
    """"'D', 'E' and 'F'" or "'D', 'E', 'F' and 12 more states": a few named, the rest counted."""
    listed = [f"'{names.get(k, k)}'" for k in keys[:FEW]]
    if count > len(listed):
        more = count - len(listed)
        return f"{', '.join(listed)} and {more} more state{'s' if more != 1 else ''}"
    if len(listed) == 1:
        return listed[0]
    return f"{', '.join(listed[:-1])} and {listed[-1]}"


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
