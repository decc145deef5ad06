"""Incidents: timed steps that kept failing and now wait for a person (Retry or Dismiss)."""
from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .instances import Instance


class IncidentQuerySet(models.QuerySet):
    def open(self):
        return self.filter(status=Incident.OPEN)


class Incident(models.Model):
    """One failed automatic change of one instance at one position (unique)."""

    OPEN, RESOLVED, DISMISSED = "open", "resolved", "dismissed"
    STATUS_CHOICES = [(OPEN, "Open"), (RESOLVED, "Resolved"), (DISMISSED, "Dismissed")]
    TIMEOUT = "timeout"
    KIND_CHOICES = [(TIMEOUT, "Timed step")]

    instance = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="incidents")
    kind = models.CharField(max_length=12, choices=KIND_CHOICES, default=TIMEOUT)
    # Where the instance was: its position number (step_count), state and version.
    position = models.PositiveIntegerField()
    state_key = models.CharField(max_length=64)
    state_name = models.CharField(max_length=200)
    target_key = models.CharField(max_length=64, blank=True)
    target_name = models.CharField(max_length=200, blank=True)
    action = models.CharField("what was tried", max_length=300)
    error = models.TextField(help_text="The error of the last attempt.")
    attempts = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    failed_at = models.DateTimeField(default=timezone.now, help_text="The last failed attempt.")
    status = models.CharField(max_length=10, choices=STATUS_CHOICES, default=OPEN)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                  on_delete=models.SET_NULL, related_name="+")
    resolution = models.TextField(blank=True, help_text="How the incident was closed.")

    objects = IncidentQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        permissions = [("resolve_incident", "Can retry and dismiss incidents")]
        constraints = [
            # One incident per failed timed step, however many workers tried it.
            models.UniqueConstraint(fields=["instance", "position", "kind"],
                                    name="flowr_incident_unique_position"),
        ]
        indexes = [
            models.Index(fields=["instance", "status"], name="flowr_incident_inst_idx"),
            models.Index(fields=["status"], condition=Q(status="open"),
                         name="flowr_incident_open_idx"),
        ]

    def __str__(self):
        return f"Incident #{self.pk}: {self.action}"

    @property
    def is_open(self):
        return self.status == self.OPEN
