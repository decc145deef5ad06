"""Rules (kinds of state) and the registry of rule sets, declared in code.

    from flowr.rules import Rule, RuleSet, register

    class Submitted(Rule):
        "An order waiting for review."
        children = ["Approved", "Rejected"]
        multiple_paths = True

    register(RuleSet("orders", "Order approval", root=Submitted,
                     rules=[Submitted, Approved, Rejected]))

Children may be rule classes or names of rules in the same set, so cycles and
self-reference are expressible. Rules are found only through the registry by
their stable key ("orders.Submitted"); nothing is ever imported from data.
"""
from .exceptions import RuleConfigurationError, RuleNotRegistered, StepRefused

__all__ = [
    "Rule", "RuleSet", "register", "unregister", "is_registered", "get_rule_set",
    "get_rule", "get_rule_sets", "StepRefused",
]


class Rule:
    """One kind of state. Subclass it; instances are created per hook call."""

    children = ()
    multiple_paths = False
    display_name = None
    description = None
    settings_form = None  # Django form class validating per-state settings
    step_form = None  # Django form class for data entered when stepping into it
    permission = None  # "app_label.codename" needed to step into a state of this rule
    search_fields = ()  # task-state keys projected into Instance.search_data (searchable)
    outcome = None  # how an instance that finishes in a state of this rule ended

    def __init__(self, settings=None, state=None):
        self.settings = settings or {}
        self.state = state

    @classmethod
    def get_display_name(cls):
        return cls.display_name or cls.__name__

    @classmethod
    def get_description(cls):
        text = cls.description or cls.__doc__ or ""
        return " ".join(text.split())

    def guard_leave(self, instance, target):
        """Return a reason (str) to refuse leaving towards `target`, or None."""
        return None

    def guard_enter(self, instance, source):
        """Return a reason (str) to refuse entering from `source`, or None."""
        return None

    def on_leave(self, instance):
        """Called before the instance leaves a state of this rule."""

    def on_enter(self, instance):
        """Called after the instance enters a state of this rule.

        During a step, `instance.step_data` holds the data of the target's step form.
        """


class RuleSet:
    """A named collection of rules with one root, under a stable key."""

    def __init__(self, key, name=None, *, root, rules, description=""):
        self.key = key
        self.name = name or key
        self.description = description
        self._root = root
        self._declared = list(rules)
        self.rules = {}  # short name -> class
        self._children = {}  # short name -> tuple of short names

    def __repr__(self):
        return f"<RuleSet {self.key}>"

    @classmethod
    def _from_class(cls):
        """A rule set declared as a class with key, name, root and rules attributes."""
        missing = [a for a in ("key", "root", "rules") if not hasattr(cls, a)]
        if missing:
            raise RuleConfigurationError(
                f"Rule set class {cls.__name__} lacks {', '.join(missing)}.")
        return cls(cls.key, getattr(cls, "name", None) or cls.__name__, root=cls.root,
                   rules=cls.rules, description=" ".join((cls.__doc__ or "").split()))

    def _resolve(self):
        """Check and index the rules; raises RuleConfigurationError naming the culprit."""
        if not self._declared:
            raise RuleConfigurationError(f"Rule set '{self.key}' declares no rules.")
        rules = {}
        for rule in self._declared:
            if not (isinstance(rule, type) and issubclass(rule, Rule)):
                raise RuleConfigurationError(
                    f"Rule set '{self.key}': {rule!r} is not a subclass of flowr.rules.Rule."
                )
            if rule.__name__ in rules:
                raise RuleConfigurationError(
                    f"Rule set '{self.key}' declares two rules named '{rule.__name__}'."
                )
            rules[rule.__name__] = rule
        root = self._root.__name__ if isinstance(self._root, type) else self._root
        if root is None or rules.get(root) is None:
            raise RuleConfigurationError(
                f"Rule set '{self.key}': root rule {root!r} is missing or not in the set."
            )
        if isinstance(self._root, type) and rules[root] is not self._root:
            raise RuleConfigurationError(f"Rule set '{self.key}': root {root} is another class.")
        children = {}
        for name, rule in rules.items():
            resolved = []
            for child in rule.children:
                child_name = child.__name__ if isinstance(child, type) else child
                if child_name not in rules or (
                    isinstance(child, type) and rules[child_name] is not child
                ):
                    raise RuleConfigurationError(
                        f"Rule set '{self.key}': rule '{name}' names child {child_name!r}, "
                        f"which is not a rule of this set."
                    )
                if child_name in resolved:
                    raise RuleConfigurationError(
                        f"Rule set '{self.key}': rule '{name}' lists child '{child_name}' twice."
                    )
                resolved.append(child_name)
            children[name] = tuple(resolved)
        self.rules, self._children, self.root_name = rules, children, root

    # -- keys -----------------------------------------------------------------
    def rule_key(self, name):
        return f"{self.key}.{name}"

    @property
    def root_key(self):
        return self.rule_key(self.root_name)

    def rule_keys(self):
        return [self.rule_key(name) for name in self.rules]

    def get(self, rule_key):
        """The rule class for a full key of this set, or raise RuleNotRegistered."""
        prefix, _, name = rule_key.rpartition(".")
        if prefix != self.key or name not in self.rules:
            raise RuleNotRegistered(
                f"Rule '{rule_key}' is not registered in rule set '{self.key}'.",
                rule_key=rule_key,
            )
        return self.rules[name]

    def children_keys(self, rule_key):
        """Full keys of the rules allowed to follow `rule_key`."""
        self.get(rule_key)
        name = rule_key.rpartition(".")[2]
        return tuple(self.rule_key(child) for child in self._children[name])

    def allows_multiple(self, rule_key):
        return bool(self.get(rule_key).multiple_paths)

    def max_children(self, rule_key):
        """How many children a state of this rule may have."""
        count = len(self.children_keys(rule_key))
        return count if self.allows_multiple(rule_key) else min(count, 1)

    def graph_rules(self):
        """Rule table for flowr.graph: key -> (children keys, max children)."""
        return {key: (self.children_keys(key), self.max_children(key)) for key in self.rule_keys()}


class _Registry:
    def __init__(self):
        self._sets = {}

    def register(self, rule_set):
        """Register a RuleSet; also a class decorator for a RuleSet subclass (see below).

            @register
            class Orders(RuleSet):
                "Orders are submitted, then approved or rejected."
                key, name, root, rules = "orders", "Order approval", Draft, [Draft, ...]
        """
        if isinstance(rule_set, type) and issubclass(rule_set, RuleSet):
            self.register(rule_set._from_class())
            return rule_set
        if not isinstance(rule_set, RuleSet):
            raise RuleConfigurationError(f"{rule_set!r} is not a flowr.rules.RuleSet.")
        if "." in rule_set.key or not rule_set.key:
            raise RuleConfigurationError(
                f"Rule set key {rule_set.key!r} must be non-empty and contain no dot."
            )
        if rule_set.key in self._sets:
            raise RuleConfigurationError(
                f"A rule set with key '{rule_set.key}' is already registered "
                f"({self._sets[rule_set.key].name!r})."
            )
        rule_set._resolve()
        self._sets[rule_set.key] = rule_set
        return rule_set

    def unregister(self, key):
        key = getattr(key, "key", key)
        if key not in self._sets:
            raise RuleNotRegistered(f"Rule set '{key}' is not registered.", rule_set_key=key)
        del self._sets[key]

    def is_registered(self, key):
        return getattr(key, "key", key) in self._sets

    def get_rule_set(self, key):
        try:
            return self._sets[key]
        except KeyError:
            raise RuleNotRegistered(
                f"Rule set '{key}' is not registered (its code may have been removed).",
                rule_set_key=key,
            ) from None

    def get_rule(self, rule_key):
        set_key = rule_key.rpartition(".")[0]
        return self.get_rule_set(set_key).get(rule_key)

    def get_rule_sets(self):
        return list(self._sets.values())

    # Test support: snapshot and restore the registry.
    def _snapshot(self):
        return dict(self._sets)

    def _restore(self, snapshot):
        self._sets = dict(snapshot)


registry = _Registry()
register = registry.register
unregister = registry.unregister
is_registered = registry.is_registered
get_rule_set = registry.get_rule_set
get_rule = registry.get_rule
get_rule_sets = registry.get_rule_sets
