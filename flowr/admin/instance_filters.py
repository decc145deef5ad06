"""List filters of the instance admin; each validates its value (a bad one is the admin's
"incorrect lookup" redirect, never a 500)."""
import re
from datetime import timedelta

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.db.models import Q
from django.utils import timezone

from .. import config, engine
from ..models import Instance, MachineVersion

MACHINE_PARAM = "machine__id__exact"
_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ID = re.compile(r"[0-9]{1,18}")


def machine_id(request):
    """The machine id the list is filtered on, when it is a valid one (else None)."""
    value = request.GET.get(MACHINE_PARAM, "")
    return int(value) if _ID.fullmatch(value) else None


def idle_q():
    """Active or suspended instances idle past FLOWS_TASK_IDLE_TIMEOUT (shown as expired)."""
    timeout = config.task_idle_timeout()
    if not timeout:
        return None
    return Q(status__in=[Instance.ACTIVE, Instance.SUSPENDED],
             last_activity__lt=timezone.now() - timedelta(seconds=timeout))


class StatusFilter(admin.SimpleListFilter):
    """Status as shown: instances idle past FLOWS_TASK_IDLE_TIMEOUT are expired."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return Instance.STATUS_CHOICES

    def queryset(self, request, queryset):
        value, idle = self.value(), idle_q()
        if value is None:
            return queryset
        if value not in dict(Instance.STATUS_CHOICES):
            raise IncorrectLookupParameters(f"Unknown status {value[:40]!r}.")
        if value == Instance.EXPIRED:
            expired = Q(status=Instance.EXPIRED)
            return queryset.filter(expired | idle if idle else expired)
        queryset = queryset.filter(status=value)
        return queryset.exclude(idle) if idle and value in (Instance.ACTIVE,
                                                            Instance.SUSPENDED) else queryset


class VersionFilter(admin.SimpleListFilter):
    """Machine versions (of the machine filtered on, if any), labelled without extra queries."""

    title = "version"
    parameter_name = "version"

    def lookups(self, request, model_admin):
        versions = MachineVersion.objects.order_by("machine__name", "-number")
        if machine_id(request) is not None:
            versions = versions.filter(machine_id=machine_id(request))
        rows = versions.values_list("pk", "machine__name", "number")[:200]
        return [(str(pk), f"{name} v{number}") for pk, name, number in rows]

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        if not _ID.fullmatch(value):
            raise IncorrectLookupParameters(f"Not a version id: {value[:40]!r}.")
        return queryset.filter(version_id=int(value))


class StateFilter(admin.SimpleListFilter):
    """Current state by its stable key (names listed for the machine filtered on)."""

    title = "current state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        # From the published versions (few, compiled and cached), not from the instances:
        # a DISTINCT over 100,000 instance rows costs more than the rest of the page.
        versions = (MachineVersion.objects.select_related("machine").defer("definition")
                    .order_by("machine__name", "-number"))
        if machine_id(request) is not None:
            versions = versions.filter(machine_id=machine_id(request))
        versions = list(versions[:200])
        choices = {}
        for version, graph in zip(versions, engine.compile_many(versions), strict=True):
            for key, name in graph.names.items():
                label = name if machine_id(request) is not None else \
                    f"{name} ({version.machine.name})"
                choices.setdefault((key, label), None)
        return sorted(choices, key=lambda choice: (choice[1], choice[0]))[:200]

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        if not _KEY.fullmatch(value):
            raise IncorrectLookupParameters(f"Not a state key: {value[:40]!r}.")
        return queryset.filter(state_key=value)


def diagram_link(machine_id_value, state_key, version_id=None, status=Instance.ACTIVE):
    """Query string of the instance list filtered to exactly one state's instances."""
    query = f"?{MACHINE_PARAM}={machine_id_value}&state={state_key}&status={status}"
    return query + (f"&version={version_id}" if version_id else "")
