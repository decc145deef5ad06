"""Deadlines in the instance admin: a due-time column, an "overdue" filter and a panel
on the instance page with the deadline and the instance's incidents (InstanceTimersMixin)."""
from datetime import timedelta

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.db.models import Q
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.timesince import timesince

from .. import config, engine
from ..models import Incident, Instance
from ..options import format_duration

PANEL = "admin/flowr/instance/includes/timers.html"
PANEL_INCIDENTS = 10  # incidents listed on the instance page (newest first)


def overdue_q(now=None):
    """Active instances whose deadline has passed."""
    return Q(status=Instance.ACTIVE, due_at__lt=now or timezone.now())


class DeadlineFilter(admin.SimpleListFilter):
    """Overdue, due later or without a deadline (active instances)."""

    title = "deadline"
    parameter_name = "deadline"
    CHOICES = [("overdue", "Overdue"), ("later", "Due later"), ("none", "No deadline")]

    def lookups(self, request, model_admin):
        return self.CHOICES

    def queryset(self, request, queryset):
        value, now = self.value(), timezone.now()
        if value is None:
            return queryset
        if value == "overdue":
            return queryset.filter(overdue_q(now))
        if value == "later":
            return queryset.filter(status=Instance.ACTIVE, due_at__gte=now)
        if value == "none":
            return queryset.filter(status=Instance.ACTIVE, due_at__isnull=True)
        raise IncorrectLookupParameters(f"Unknown deadline filter {value[:40]!r}; choose one "
                                        f"of: {', '.join(v for v, _ in self.CHOICES)}.")


def due_label(instance, status, now=None):
    """The due-time cell: "in 2 hours", "overdue 5 minutes" (red) or a dash."""
    if instance.due_at is None or status not in (Instance.ACTIVE, Instance.SUSPENDED):
        return mark_safe('<span class="flowr-muted">—</span>')
    now = now or timezone.now()
    exact = timezone.localtime(instance.due_at).strftime("%Y-%m-%d %H:%M:%S")
    if instance.due_at < now:
        return format_html('<span class="flowr-overdue" title="due {}">overdue {}</span>',
                           exact, _span(instance.due_at, now))
    return format_html('<span title="due {}">in {}</span>', exact, _span(now, instance.due_at))


def _expires_first(instance):
    """When the idle timeout will expire the instance before its deadline (else None)."""
    timeout = config.task_idle_timeout()
    if not timeout or instance.due_at is None:
        return None
    expires = instance.last_activity + timedelta(seconds=timeout)
    return expires if expires < instance.due_at else None


def _span(earlier, later):
    """A rounded time span for the list: "42 seconds", "5 minutes", "2 days"."""
    seconds = int((later - earlier).total_seconds())
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    return timesince(earlier, later, depth=1)


class InstanceTimersMixin:
    """Contributes the due column, the deadline filter and the instance page's panel."""

    def get_list_display(self, request):
        columns = list(super().get_list_display(request))
        at = columns.index("time_in_state") + 1 if "time_in_state" in columns else len(columns)
        columns.insert(at, "due_column")
        return columns

    def get_list_filter(self, request):
        return [*super().get_list_filter(request), DeadlineFilter]

    @admin.display(description="due", ordering="due_at")
    def due_column(self, obj):
        status = getattr(obj, "_flowr_status", None) or engine.effective_status(obj)
        return due_label(obj, status)

    def instance_context(self, request, obj):
        context = super().instance_context(request, obj)
        options = engine.compiled(obj.version).options.get(obj.state_key) or {}
        graph = engine.compiled(obj.version)
        status = context.get("flowr_status") or engine.effective_status(obj)
        incidents = list(Incident.objects.filter(instance=obj)
                         .order_by("-created_at")[:PANEL_INCIDENTS + 1])
        context.update({
            "flowr_deadline": {
                "due_at": obj.due_at if status == Instance.ACTIVE else None,
                "overdue": bool(obj.due_at and obj.due_at < timezone.now()),
                "timeout_to": graph.names.get(options.get("timeout_to", ""), ""),
                "remind_after": format_duration(options["remind_after"])
                if options.get("remind_after") else "",
                # FLOWS_TASK_IDLE_TIMEOUT ends the instance before its deadline comes.
                "expires_first": _expires_first(obj),
                # The automatic step of this very position already failed for good.
                "failed": next((i for i in incidents if i.position == obj.step_count), None),
            },
            "flowr_incidents": incidents[:PANEL_INCIDENTS],
            "flowr_incidents_more": len(incidents) > PANEL_INCIDENTS,
            "flowr_open_incidents": Incident.objects.open().filter(instance=obj).count()
            if len(incidents) > PANEL_INCIDENTS else sum(1 for i in incidents if i.is_open),
            "flowr_can_resolve": request.user.has_perm("flowr.resolve_incident"),
        })
        context["flowr_panels"].append(PANEL)
        return context
