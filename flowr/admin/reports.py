"""Per-instance result pages of bulk actions: a table with a row per instance, not a message.

A bulk action builds a Report and returns `report_response(...)`: the report is kept in
the session (bounded) and the browser is redirected to a GET page showing it, so a
reload never repeats the action (POST → redirect → GET).
"""
import uuid
from dataclasses import asdict, dataclass, field

from django.contrib import messages
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

SESSION_KEY = "flowr_reports"
KEEP = 5  # reports kept per session (the newest)
MAX_ROWS = 2000


@dataclass
class ReportRow:
    """What happened to one instance: done (ok) or refused with the reason."""

    label: str
    machine: str = ""
    before: str = ""
    after: str = ""
    ok: bool = True
    reason: str = ""
    url: str = ""

    @classmethod
    def of(cls, instance, before="", after="", ok=True, reason=""):
        url = reverse("admin:flowr_instance_change", args=[instance.pk])
        machine = instance._state.fields_cache.get("machine")
        return cls(instance.label, machine.name if machine else "", before, after, ok,
                   reason, url)


@dataclass
class Report:
    """The result of one bulk action."""

    title: str
    action: str  # "Stepped", "Cancelled", … (the column heading of done rows)
    rows: list = field(default_factory=list)

    @property
    def done(self):
        return sum(1 for row in self.rows if row.ok)

    @property
    def refused(self):
        return len(self.rows) - self.done

    def summary(self):
        text = f"{self.action} {self.done} of {len(self.rows)} instance" \
               f"{'s' if len(self.rows) != 1 else ''}"
        return text + (f"; {self.refused} refused." if self.refused else ".")


def report_response(model_admin, request, report):
    """Keep `report` in the session and redirect to its page, with a one-line message."""
    reports = request.session.get(SESSION_KEY, {})
    token = uuid.uuid4().hex[:16]
    reports[token] = {"title": report.title, "action": report.action,
                      "rows": [asdict(row) for row in report.rows[:MAX_ROWS]],
                      "total": len(report.rows)}
    for stale in list(reports)[:-KEEP]:
        del reports[stale]
    request.session[SESSION_KEY] = reports
    level = messages.SUCCESS if not report.refused else (
        messages.WARNING if report.done else messages.ERROR)
    model_admin.message_user(request, report.summary() + " The report lists every instance.",
                             level)
    opts = model_admin.opts
    return HttpResponseRedirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_report",
                                        args=[token], current_app=model_admin.admin_site.name))


def report_view(model_admin, request, token):
    """GET: a bulk action's report (only in the session that ran it)."""
    if not model_admin.has_view_permission(request):
        raise Http404
    data = request.session.get(SESSION_KEY, {}).get(token)
    if data is None:
        raise Http404("This report is no longer available (reports are kept for the last "
                      f"{KEEP} bulk actions of a session).")
    report = Report(data["title"], data["action"], [ReportRow(**row) for row in data["rows"]])
    context = {**model_admin.admin_site.each_context(request), "opts": model_admin.opts,
               "title": report.title, "report": report,
               "truncated": data["total"] - len(report.rows),
               "changelist_url": reverse(f"admin:{model_admin.opts.app_label}_"
                                         f"{model_admin.opts.model_name}_changelist")}
    return TemplateResponse(request, "admin/flowr/instance/report.html", context)


def report_urls(model_admin):
    """The report page's URL pattern (prepend it to the admin's own)."""
    opts = model_admin.opts

    def view(request, token):
        return report_view(model_admin, request, token)
    return [path("report/<str:token>/", model_admin.admin_site.admin_view(view),
                 name=f"{opts.app_label}_{opts.model_name}_report")]
