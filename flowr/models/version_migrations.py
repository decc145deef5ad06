"""Migrations of running instances between versions: one recorded, revertible event each."""
from django.conf import settings
from django.db import models
from django.utils import timezone

from .instances import Instance
from .machines import Machine, MachineVersion


class VersionMigration(models.Model):
    """One migration: who moved which instances from which versions to which, with what mapping.

    Its items (VersionMigrationItem) hold every selected instance and the position it had;
    the counters are updated in the transaction of each batch, so they always say which
    instances were migrated and which are untouched, even after a failure midway.
    """

    QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
    STATUS_CHOICES = [(QUEUED, "Queued"), (RUNNING, "Running"), (DONE, "Done"),
                      (FAILED, "Failed")]

    machine = models.ForeignKey(Machine, on_delete=models.CASCADE, related_name="migrations")
    target = models.ForeignKey(MachineVersion, on_delete=models.PROTECT, related_name="+",
                               help_text="The version the instances were migrated to.")
    source_numbers = models.JSONField(default=list, blank=True,
                                      help_text="Numbers of the versions they came from.")
    mapping = models.JSONField(
        default=dict, blank=True,
        help_text="Per source state key: {action: map|leave|cancel, to, name, to_name, how}.")
    note = models.TextField(blank=True, help_text="Why (written into each history entry).")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=STATUS_CHOICES, default=QUEUED)
    error = models.TextField(blank=True)
    task_id = models.CharField(max_length=64, blank=True,
                               help_text="The background task running it, if any.")
    total = models.PositiveIntegerField(default=0, help_text="Instances selected.")
    to_process = models.PositiveIntegerField(default=0,
                                             help_text="Instances to migrate or cancel.")
    processed = models.PositiveIntegerField(default=0)
    migrated = models.PositiveIntegerField(default=0)
    cancelled = models.PositiveIntegerField(default=0)
    left = models.PositiveIntegerField(default=0)
    refused = models.PositiveIntegerField(default=0)
    # The revert: of the migrated and cancelled instances, those unchanged since go back.
    revert_status = models.CharField(max_length=10, choices=STATUS_CHOICES, blank=True)
    reverted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                    on_delete=models.SET_NULL, related_name="+")
    revert_requested_at = models.DateTimeField(null=True, blank=True)
    reverted_at = models.DateTimeField(null=True, blank=True)
    revert_error = models.TextField(blank=True)
    revert_task_id = models.CharField(max_length=64, blank=True)
    revert_total = models.PositiveIntegerField(default=0)
    revert_processed = models.PositiveIntegerField(default=0)
    reverted = models.PositiveIntegerField(default=0)
    kept = models.PositiveIntegerField(default=0, help_text="Changed since; left alone.")

    class Meta:
        verbose_name = "version migration"
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"Migration #{self.pk} of {self.machine_id and self.machine} to v" \
               f"{self.target.number if self.target_id else '?'}"

    @property
    def sources_label(self):
        return ", ".join(f"v{n}" for n in self.source_numbers) or "—"

    @property
    def running(self):
        """Is a run or a revert queued or under way?"""
        return (self.status in (self.QUEUED, self.RUNNING)
                or self.revert_status in (self.QUEUED, self.RUNNING))

    @property
    def revertible(self):
        """May a revert start? (finished or failed run, no revert under way or done)."""
        return (self.status in (self.DONE, self.FAILED) and self.migrated + self.cancelled
                and self.revert_status in ("", self.FAILED))


class VersionMigrationItem(models.Model):
    """One instance of a migration: the position it had, what was planned and what happened."""

    MAP, LEAVE, CANCEL, NONE = "map", "leave", "cancel", "none"
    ACTION_CHOICES = [(MAP, "Migrate"), (LEAVE, "Leave on its version"), (CANCEL, "Cancel"),
                      (NONE, "Nothing (refused)")]
    PENDING, MIGRATED, CANCELLED, LEFT, REFUSED = "pending", "migrated", "cancelled", "left", \
        "refused"
    REVERTED, KEPT = "reverted", "kept"
    STATUS_CHOICES = [(PENDING, "Pending"), (MIGRATED, "Migrated"), (CANCELLED, "Cancelled"),
                      (LEFT, "Left on its version"), (REFUSED, "Refused"),
                      (REVERTED, "Reverted"), (KEPT, "Changed since; not reverted")]

    migration = models.ForeignKey(VersionMigration, on_delete=models.CASCADE,
                                  related_name="items")
    instance = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="+")
    action = models.CharField(max_length=8, choices=ACTION_CHOICES)
    status = models.CharField(max_length=10, choices=STATUS_CHOICES, default=PENDING)
    reason = models.TextField(blank=True)
    # The position before the migration (what a revert restores).
    from_version = models.ForeignKey(MachineVersion, on_delete=models.PROTECT, related_name="+")
    from_key = models.CharField(max_length=64)
    from_name = models.CharField(max_length=200)
    from_status = models.CharField(max_length=10)
    from_outcome = models.CharField(max_length=100, blank=True)
    from_position = models.PositiveIntegerField(help_text="step_count when confirmed.")
    from_entered_at = models.DateTimeField()
    from_assignee = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                      on_delete=models.SET_NULL, related_name="+")
    # The planned position after it.
    to_version = models.ForeignKey(MachineVersion, null=True, blank=True,
                                   on_delete=models.PROTECT, related_name="+")
    to_key = models.CharField(max_length=64, blank=True)
    to_name = models.CharField(max_length=200, blank=True)

    class Meta:
        verbose_name = "version migration item"
        ordering = ["migration", "id"]
        indexes = [models.Index(fields=["migration", "status", "id"],
                                name="flowr_migitem_status_idx")]

    def __str__(self):
        return f"{self.get_action_display()} {self.instance_id}: {self.from_name} → " \
               f"{self.to_name or '—'} ({self.status})"
