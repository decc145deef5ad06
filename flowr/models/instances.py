"""Running machines: instances, their history and the Django task-state store's rows."""
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .machines import Machine, MachineVersion


class Instance(models.Model):
    """A running machine: its version, current state, status, assignee and deadline."""

    ACTIVE, FINISHED, EXPIRED = "active", "finished", "expired"
    CANCELLED, SUSPENDED = "cancelled", "suspended"
    STATUS_CHOICES = [(ACTIVE, "Active"), (SUSPENDED, "Suspended"), (FINISHED, "Finished"),
                      (CANCELLED, "Cancelled"), (EXPIRED, "Expired")]

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    machine = models.ForeignKey(Machine, on_delete=models.PROTECT, related_name="instances")
    # Indexed by flowr_inst_state_idx (version, state_key): every index costs each step.
    version = models.ForeignKey(MachineVersion, on_delete=models.PROTECT, related_name="instances",
                                db_index=False)
    business_key = models.CharField(
        max_length=200, blank=True, default="",
        help_text="Optional key from the business (e.g. an order number); unique per machine.")
    title = models.CharField(max_length=200, blank=True, default="")
    state_key = models.CharField(max_length=64, help_text="Key of the current state.")
    state_name = models.CharField(max_length=200, help_text="Name of the current state.")
    status = models.CharField(max_length=10, choices=STATUS_CHOICES, default=ACTIVE)
    outcome = models.CharField(max_length=100, blank=True, default="",
                               help_text="How a finished instance ended (its rule's outcome).")
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    assignee = models.ForeignKey(  # indexed by flowr_inst_assignee_idx (assignee, status)
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+", db_index=False,
    )
    started_at = models.DateTimeField(default=timezone.now)
    last_activity = models.DateTimeField(default=timezone.now)
    state_entered_at = models.DateTimeField(default=timezone.now,
                                            help_text="When the current state was entered.")
    due_at = models.DateTimeField(null=True, blank=True, db_index=True,
                                  help_text="Deadline of the current state (its timing).")
    # Position number: bumped by every change of state, version or status. Step forms,
    # bulk forms and timers carry it, so a stale one is refused even after a cycle.
    step_count = models.PositiveIntegerField(default=0)
    last_seq = models.PositiveIntegerField(default=0, help_text="seq of the latest history entry.")
    # Which write of the task state is current, and the one before it (kept for undo):
    # the row decides (flowr.taskstate). A version is the seq of the entry that wrote it.
    task_state_version = models.PositiveIntegerField(default=0)
    task_state_previous = models.PositiveIntegerField(null=True, blank=True)
    search_data = models.JSONField(
        default=dict, blank=True,
        help_text="The task-state keys its rules declare searchable, as of the last commit.")

    class Meta:
        ordering = ["-last_activity"]
        permissions = [
            ("step_instance", "Can step instances"),
            ("step_any_instance", "Can step instances assigned to others or outside "
                                  "their candidate groups"),
            ("assign_instance", "Can assign instances to other users"),
            ("cancel_instance", "Can cancel instances"),
            ("suspend_instance", "Can suspend and resume instances"),
            ("override_instance", "Can move instances to any state and undo steps"),
        ]
        indexes = [
            models.Index(fields=["status", "-last_activity"], name="flowr_inst_status_idx"),
            models.Index(fields=["version", "state_key"], name="flowr_inst_state_idx"),
            models.Index(fields=["assignee", "status"], name="flowr_inst_assignee_idx"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["machine", "business_key"],
                                    condition=~Q(business_key=""),
                                    name="flowr_instance_unique_business_key"),
        ]

    def __str__(self):
        return self.label

    @property
    def short_id(self):
        return str(self.id)[:8]

    @property
    def label(self):
        """How an instance is named everywhere: title and business key, else its short id."""
        if self.title and self.business_key:
            return f"{self.title} ({self.business_key})"
        return self.title or self.business_key or f"#{self.short_id}"

    @property
    def effective_status(self):
        """Status, reporting idle active instances as expired (FLOWS_TASK_IDLE_TIMEOUT)."""
        from ..engine import effective_status

        return effective_status(self)

    @property
    def task_state(self):
        """The instance's JSON task state (a dict), loaded lazily from the state store."""
        from ..engine import task_state_of

        return task_state_of(self)

    def allowed_steps(self, user=None):
        from ..engine import allowed_steps

        return allowed_steps(self, user=user)

    def step(self, to=None, user=None, note="", data=None, expected_state=None,
             expected_position=None):
        from ..engine import step

        return step(self, to=to, user=user, note=note, data=data,
                    expected_state=expected_state, expected_position=expected_position)


class HistoryEntry(models.Model):
    """One recorded event of an instance; position changes carry from/to state and version."""

    START, STEP, TIMEOUT, MOVE, MIGRATE = "start", "step", "timeout", "move", "migrate"
    JUMP, UNDO, CANCEL, SUSPEND, RESUME = "jump", "undo", "cancel", "suspend", "resume"
    ASSIGN, REMIND, EDIT, INCIDENT = "assign", "remind", "edit", "incident"
    KIND_CHOICES = [
        (START, "Start"), (STEP, "Step"), (TIMEOUT, "Timed step"), (MOVE, "Version move"),
        (MIGRATE, "Migration"), (JUMP, "Moved by an operator"), (UNDO, "Undo"),
        (CANCEL, "Cancel"), (SUSPEND, "Suspend"), (RESUME, "Resume"), (ASSIGN, "Assignment"),
        (REMIND, "Reminder"), (EDIT, "Task state edited"), (INCIDENT, "Incident"),
    ]
    #: Kinds that leave state, version and status as they were (replay skips them).
    NOTES = frozenset({ASSIGN, REMIND, EDIT, INCIDENT})

    instance = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="history")
    seq = models.PositiveIntegerField()
    kind = models.CharField(max_length=12, choices=KIND_CHOICES, default=STEP)
    from_key = models.CharField(max_length=64, blank=True)
    from_name = models.CharField(max_length=200, blank=True)
    to_key = models.CharField(max_length=64)
    to_name = models.CharField(max_length=200)
    version = models.ForeignKey(MachineVersion, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=10, blank=True, default="",
                              help_text="The instance's status after this entry.")
    task_state_version = models.PositiveIntegerField(
        default=0, help_text="The task-state version current after this entry.")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField(default=timezone.now)
    note = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name_plural = "history entries"
        ordering = ["instance", "-seq"]
        constraints = [
            models.UniqueConstraint(fields=["instance", "seq"], name="flowr_history_unique_seq"),
        ]

    def __str__(self):
        if self.kind in self.NOTES or self.from_key == self.to_key and self.kind in (
                self.CANCEL, self.SUSPEND, self.RESUME):
            return f"{self.get_kind_display()} at {self.to_name}"
        return f"{self.from_name or '∅'} → {self.to_name}"


class TaskStateRecord(models.Model):
    """Row of the Django task-state store (flowr.statestore.django_store)."""

    task_id = models.CharField(max_length=255, primary_key=True)
    state = models.JSONField(default=dict)
    updated_at = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name = "task state"

    def __str__(self):
        return f"Task state {self.task_id}"
