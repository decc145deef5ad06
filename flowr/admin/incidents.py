"""Incidents in the admin: a list with Retry and Dismiss buttons, a read-only page, and
bulk actions ending on a per-instance report.

Retry and Dismiss are POSTs (405 otherwise) behind admin_view (login, CSRF), checked
against `flowr.resolve_incident` (403 for a forged POST); they call flowr.incidents,
which writes the instance's history, log a LogEntry and redirect with a message.
"""
from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.timesince import timesince

from .. import incidents
from ..models import Incident
from .instance_views import post_only
from .reports import Report, ReportRow, report_response, report_urls

ERROR_PREVIEW = 160
_LEVELS = {incidents.RETRIED: messages.SUCCESS, incidents.OBSOLETE: messages.WARNING,
           incidents.STILL_FAILING: messages.ERROR}


class DismissForm(forms.Form):
    reason = forms.CharField(required=False, max_length=500, label="Reason",
                             widget=forms.Textarea(attrs={"rows": 2, "cols": 40}),
                             help_text="Optional; recorded in the instance's history.")


def ago(moment, now=None):
    """ "just now", "5 minutes ago", "2 days ago"."""
    now = now or timezone.now()
    if now - moment < timedelta(minutes=1):
        return "just now"
    return f"{timesince(moment, now, depth=1)} ago"


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    """Timed steps that failed every automatic attempt, waiting for a person."""

    list_display = ["incident_label", "instance_link", "machine_name", "action", "error_preview",
                    "attempts", "failed_when", "status_label", "buttons"]
    list_display_links = ["incident_label"]
    list_filter = ["status", "instance__machine"]
    list_select_related = ["instance", "instance__machine"]
    search_fields = ["action", "error", "instance__title", "instance__business_key"]
    search_help_text = "Search the step tried, the error, the instance's title or business key."
    ordering = ["-created_at"]
    fields = ["incident_label", "instance_link", "machine_name", "status_label", "action",
              "error", "attempts", "position", "created_at", "failed_at", "closed_at",
              "closed_by", "resolution"]
    readonly_fields = fields
    actions = ["retry_selected", "dismiss_selected"]

    class Media:
        css = {"all": ["flowr/flowr_admin.css"]}

    # -- permissions ----------------------------------------------------------------
    def has_add_permission(self, request):
        return False  # incidents come from failing timers only

    def has_delete_permission(self, request, obj=None):
        return False  # dismiss instead: the record stays

    def has_resolve_permission(self, request, obj=None):
        """May the user retry and dismiss incidents? (flowr.resolve_incident)"""
        return request.user.has_perm(f"{self.opts.app_label}.resolve_incident")

    # -- columns --------------------------------------------------------------------
    @admin.display(description="incident", ordering="pk")
    def incident_label(self, obj):
        return f"#{obj.pk}"

    @admin.display(description="instance", ordering="instance__title")
    def instance_link(self, obj):
        url = reverse("admin:flowr_instance_change", args=[obj.instance_id],
                      current_app=self.admin_site.name)
        return format_html('<a class="flowr-wrap" href="{}">{}</a><span class="flowr-muted">'
                           '&nbsp;at {}</span>', url, obj.instance.label, obj.state_name)

    @admin.display(description="machine", ordering="instance__machine__name")
    def machine_name(self, obj):
        return obj.instance.machine.name

    @admin.display(description="error")
    def error_preview(self, obj):
        text = obj.error if len(obj.error) <= ERROR_PREVIEW else \
            obj.error[:ERROR_PREVIEW - 1] + "…"
        return format_html('<span class="flowr-wrap flowr-incident-error" title="{}">{}</span>',
                           obj.error, text)

    @admin.display(description="last failed", ordering="failed_at")
    def failed_when(self, obj):
        return format_html('<span title="{}">{}</span>',
                           timezone.localtime(obj.failed_at).strftime("%Y-%m-%d %H:%M:%S"),
                           ago(obj.failed_at))

    @admin.display(description="status", ordering="status")
    def status_label(self, obj):
        return format_html('<span class="flowr-incident-status flowr-incident-{}">{}</span>',
                           obj.status, obj.get_status_display())

    @admin.display(description="")
    def buttons(self, obj):
        if not obj.is_open or not getattr(self, "_can_resolve", False):
            return ""
        return format_html(
            '<div class="flowr-steps">'
            '<button type="submit" form="flowr-incident-forms" class="grp-button grp-default" '
            'formaction="{}">Retry</button>'
            '<button type="submit" form="flowr-incident-forms" class="grp-button" '
            'formaction="{}">Dismiss</button></div>',
            self._url("retry", obj), self._url("dismiss", obj))

    def _url(self, name, obj):
        return reverse(f"admin:flowr_incident_{name}", args=[obj.pk],
                       current_app=self.admin_site.name)

    # -- views ----------------------------------------------------------------------
    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/retry/", wrap(self.retry_view), name="flowr_incident_retry"),
            path("<path:object_id>/dismiss/", wrap(self.dismiss_view),
                 name="flowr_incident_dismiss"),
            *report_urls(self),
        ] + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        self._can_resolve = self.has_resolve_permission(request)
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if request.method == "POST":
            return HttpResponseNotAllowed(["GET"])  # Retry and Dismiss have their own views
        obj = self.get_object(request, unquote(object_id))
        extra_context = {**(extra_context or {}), "show_save": False,
                         "title": f"Incident #{obj.pk}" if obj else "Incident",
                         "show_save_and_continue": False, "show_save_and_add_another": False,
                         "flowr_can_resolve": bool(obj and obj.is_open
                                                   and self.has_resolve_permission(request)),
                         "flowr_dismiss_form": DismissForm()}
        return super().change_view(request, object_id, form_url, extra_context)

    def _posted(self, request, object_id):
        if not self.has_resolve_permission(request):
            raise PermissionDenied
        incident = self.get_object(request, unquote(object_id))
        if incident is None:
            raise Http404(f"No incident with id {object_id[:40]}.")
        return incident

    @post_only
    def retry_view(self, request, object_id):
        """POST: retry the incident's timed step now."""
        incident = self._posted(request, object_id)
        try:
            outcome, message = incidents.retry(incident, request.user)
        except incidents.IncidentClosed as exc:
            self.message_user(request, str(exc), messages.WARNING)
        else:
            self.log_change(request, incident, message)
            self.message_user(request, message, _LEVELS[outcome])
        return self._back(request, incident)

    @post_only
    def dismiss_view(self, request, object_id):
        """POST: close the incident without stepping (with an optional reason)."""
        incident = self._posted(request, object_id)
        form = DismissForm(request.POST)
        if not form.is_valid():
            self.message_user(request, "The reason is too long (at most 500 characters); "
                                       "nothing was changed.", messages.ERROR)
            return self._back(request, incident)
        try:
            message = incidents.dismiss(incident, request.user, form.cleaned_data["reason"])
        except incidents.IncidentClosed as exc:
            self.message_user(request, str(exc), messages.WARNING)
        else:
            self.log_change(request, incident, message)
            self.message_user(request, message, messages.SUCCESS)
        return self._back(request, incident)

    def _back(self, request, incident):
        target = request.POST.get("next", "")
        if target and url_has_allowed_host_and_scheme(
                target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
            return HttpResponseRedirect(target)
        return HttpResponseRedirect(reverse("admin:flowr_incident_change", args=[incident.pk],
                                            current_app=self.admin_site.name))

    # -- bulk actions -----------------------------------------------------------------
    @admin.action(permissions=["resolve"], description="Retry the selected incidents")
    def retry_selected(self, request, queryset):
        """Retry each selected open incident; ends on a per-instance report."""
        return self._bulk(request, queryset, "Retried incidents", "Retried", self._retry_row)

    @admin.action(permissions=["resolve"], description="Dismiss the selected incidents")
    def dismiss_selected(self, request, queryset):
        """Dismiss each selected open incident; ends on a per-instance report."""
        return self._bulk(request, queryset, "Dismissed incidents", "Dismissed",
                          self._dismiss_row)

    def _bulk(self, request, queryset, title, action, run):
        report = Report(title, action)
        for incident in queryset.select_related("instance", "instance__machine")[:1000]:
            before = incident.instance.state_name
            try:
                ok, reason = run(request, incident)
            except incidents.IncidentClosed as exc:
                ok, reason = False, str(exc)
            incident.instance.refresh_from_db(fields=["state_name"])
            report.rows.append(ReportRow.of(incident.instance, before,
                                            incident.instance.state_name, ok, reason))
        return report_response(self, request, report)

    def _retry_row(self, request, incident):
        outcome, message = incidents.retry(incident, request.user)
        self.log_change(request, incident, message)
        return outcome == incidents.RETRIED, "" if outcome == incidents.RETRIED else message

    def _dismiss_row(self, request, incident):
        message = incidents.dismiss(incident, request.user)
        self.log_change(request, incident, message)
        return True, ""
