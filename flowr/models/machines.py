"""Machines as staff build them: rule-set mirrors, machines, states, transitions, versions."""
import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from .. import rules as _rules
from ..exceptions import RuleNotRegistered


def _short_key():
    return uuid.uuid4().hex[:12]


class RuleSetRecord(models.Model):
    """Database mirror of a rule set declared in code (synced, read-only in the admin)."""

    key = models.CharField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    root_rule_key = models.CharField(max_length=200)
    is_registered = models.BooleanField(default=True, help_text="False once its code is gone.")
    synced_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "rule set"
        ordering = ["key"]

    def __str__(self):
        return self.name

    def natural_key(self):
        return (self.key,)

    @property
    def rule_set(self):
        """The registered RuleSet; raises RuleNotRegistered if its code is gone."""
        return _rules.get_rule_set(self.key)


class Machine(models.Model):
    """A user-built graph of states obeying one rule set."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    rule_set = models.ForeignKey(RuleSetRecord, on_delete=models.PROTECT, related_name="machines")
    archived = models.BooleanField(default=False, help_text="Archived machines start no instances.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def natural_key(self):
        return (self.uuid,)

    @property
    def root_state(self):
        return self.states.filter(is_root=True).first()

    def latest_version(self):
        return self.versions.order_by("-number").first()

    # Thin public API; the work is done in builder and engine.
    def publish(self, user=None):
        from ..engine import publish

        return publish(self, user=user)

    def start(self, user=None, version=None, **kwargs):
        from ..engine import start

        return start(self, user=user, version=version, **kwargs)


class State(models.Model):
    """One state of a machine, using one rule of the machine's rule set."""

    machine = models.ForeignKey(Machine, on_delete=models.CASCADE, related_name="states")
    key = models.CharField(max_length=64, default=_short_key, help_text="Stable identity.")
    name = models.CharField(max_length=200)
    rule_key = models.CharField(max_length=200)
    settings = models.JSONField(default=dict, blank=True)
    options = models.JSONField(
        default=dict, blank=True,
        help_text="Options every state has whatever its rule (flowr.options): candidate "
                  "groups, assign-on-entry, timing.")
    is_root = models.BooleanField(default=False)

    class Meta:
        ordering = ["machine", "id"]
        constraints = [
            models.UniqueConstraint(fields=["machine", "key"], name="flowr_state_unique_key"),
            models.UniqueConstraint(fields=["machine", "name"], name="flowr_state_unique_name"),
        ]

    def __str__(self):
        return self.name

    def get_rule(self):
        """The rule class, or raise RuleNotRegistered."""
        return _rules.get_rule(self.rule_key)

    @property
    def rule_name(self):
        try:
            return self.get_rule().get_display_name()
        except RuleNotRegistered:
            return f"{self.rule_key} (not registered)"


class Transition(models.Model):
    """An arrow from a parent state to a child state of the same machine."""

    machine = models.ForeignKey(Machine, on_delete=models.CASCADE, related_name="transitions")
    parent = models.ForeignKey(State, on_delete=models.CASCADE, related_name="outgoing")
    child = models.ForeignKey(State, on_delete=models.CASCADE, related_name="incoming")

    class Meta:
        ordering = ["machine", "id"]
        constraints = [
            models.UniqueConstraint(fields=["parent", "child"], name="flowr_transition_unique"),
        ]

    def __str__(self):
        # Never query here: reversion calls str() on every transition of a revision.
        cache = self._state.fields_cache
        if "parent" in cache and "child" in cache:
            return f"{cache['parent']} → {cache['child']}"
        return f"transition {self.parent_id} → {self.child_id}"


class MachineVersion(models.Model):
    """An immutable, numbered snapshot of a machine's graph; instances run on these."""

    machine = models.ForeignKey(Machine, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    definition = models.JSONField()
    checksum = models.CharField(max_length=64)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    published_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["machine", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["machine", "number"], name="flowr_version_unique"),
        ]

    def __str__(self):
        return f"{self.machine} v{self.number}"

    def save(self, *args, **kwargs):
        """Versions are written once: instances rely on their definitions never changing."""
        if not self._state.adding:
            from ..exceptions import FlowrError

            raise FlowrError(f"Version {self} is immutable; publish a new version instead.")
        super().save(*args, **kwargs)

    @property
    def graph(self):
        """The compiled, cached definition (flowr.engine.CompiledVersion)."""
        from ..engine import compiled

        return compiled(self)
