"""The desk's "Incidents" section: open incidents, newest first, with the total.

It plugs into the desk's section registry (flowr.admin.desk, issue 13) when that module
is there; until it lands nothing is registered and the admin index is unchanged.
"""
from dataclasses import dataclass

from django.urls import reverse

from ..models import Incident
from .incidents import ago

ROWS = 5


@dataclass(frozen=True)
class IncidentRow:
    pk: int
    url: str
    instance: str
    instance_url: str
    machine: str
    action: str
    error: str
    failed_at: object
    failed_ago: str


def open_incidents(limit=ROWS):
    """(total open, the newest `limit` as IncidentRow): two queries."""
    rows = (Incident.objects.open().select_related("instance", "instance__machine")
            .order_by("-failed_at")[:limit])
    return Incident.objects.open().count(), [
        IncidentRow(i.pk, reverse("admin:flowr_incident_change", args=[i.pk]),
                    i.instance.label, reverse("admin:flowr_instance_change",
                                              args=[i.instance_id]),
                    i.instance.machine.name, i.action, i.error, i.failed_at, ago(i.failed_at))
        for i in rows]


try:
    from . import desk
except ImportError:  # the desk has not landed: no section
    desk = None

if desk is not None:
    @desk.register
    class IncidentsSection(desk.DeskSection):
        """Open incidents: timed steps that failed and wait for Retry or Dismiss."""

        key = "incidents"
        title = "Incidents"
        order = 30
        template = "admin/flowr/desk/incidents.html"

        def is_visible(self, request):
            return request.user.has_perm("flowr.view_incident")

        def load(self, request):
            self.total, self.rows = open_incidents()
            self.list_url = reverse("admin:flowr_incident_changelist") + "?status__exact=open"
