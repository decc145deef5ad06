"""POST views and bulk actions of assignment: claim, assign (reassign), unassign.

Each view is a POST (405 otherwise) behind admin_view (login + CSRF), checks its model
permission (403 for a forged POST), calls flowr.assignment (which checks the rules under
the row lock), writes a LogEntry and redirects back with a message. Bulk actions end on
the per-instance report (flowr.admin.reports).
"""
from django import forms
from django.contrib import messages
from django.contrib.admin import helpers
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse

from .. import access, assignment
from ..exceptions import AlreadyMoved, FlowrError
from .instance_views import (
    BULK_STEP_LIMIT, back_to, post_only, posted_instance, posted_position, short_id,
)
from .reports import Report, ReportRow, report_response


def log_text(entry, claimed=False):
    """The LogEntry message of an assignment change."""
    return "Claimed." if claimed else assignment.describe(entry.data)


def _run(model_admin, request, instance, change, done, unchanged, claimed=False):
    """Run one assignment change; message, LogEntry and redirect back."""
    try:
        entry = change(posted_position(request))
    except AlreadyMoved as exc:
        messages.warning(request, f"Already moved: {exc}")
    except FlowrError as exc:
        messages.error(request, str(exc))
    else:
        if entry is None:
            messages.info(request, unchanged)
        else:
            model_admin.log_change(request, instance, log_text(entry, claimed))
            messages.success(request, done(entry))
    return back_to(request, model_admin, instance, "#assignment")


@post_only
def claim_view(model_admin, request, object_id):
    """POST: the user takes the instance (a candidate, or with the override permission)."""
    instance = posted_instance(model_admin, request, object_id, model_admin.has_step_permission)
    return _run(model_admin, request, instance,
                lambda position: assignment.claim(instance, request.user,
                                                  expected_position=position),
                lambda entry: f"You claimed instance {short_id(instance)}; it is assigned to "
                              f"you.",
                f"Instance {short_id(instance)} was already assigned to you.", claimed=True)


@post_only
def assign_view(model_admin, request, object_id):
    """POST: assign (or reassign) the instance to the posted user (assign permission)."""
    instance = posted_instance(model_admin, request, object_id,
                                model_admin.has_assign_permission)
    target = _posted_user(request.POST.get("user", ""))
    if target is None:
        messages.error(request, "Choose the user to assign the instance to; nothing was "
                                "changed.")
        return back_to(request, model_admin, instance, "#assignment")
    return _run(model_admin, request, instance,
                lambda position: assignment.assign(instance, target, by=request.user,
                                                   expected_position=position),
                lambda entry: f"Instance {short_id(instance)}: "
                              f"{assignment.describe(entry.data)[0].lower()}"
                              f"{assignment.describe(entry.data)[1:]}",
                f"Instance {short_id(instance)} was already assigned to "
                f"{target.get_username()}.")


@post_only
def unassign_view(model_admin, request, object_id):
    """POST: clear the assignee (the assignee themself, or with the assign permission)."""
    instance = posted_instance(model_admin, request, object_id, _may_unassign(model_admin))
    return _run(model_admin, request, instance,
                lambda position: assignment.unassign(instance, by=request.user,
                                                     expected_position=position),
                lambda entry: f"Instance {short_id(instance)} is unassigned (it was "
                              f"{entry.data.get('previous')}'s).",
                f"Instance {short_id(instance)} was not assigned to anyone.")


def _may_unassign(model_admin):
    def check(request, instance=None):
        return model_admin.has_assign_permission(request) or \
            model_admin.has_step_permission(request)
    return check


def _posted_user(value):
    """The user a form posted (by id), or None when absent, malformed or unknown."""
    if not value.isdigit() or len(value) > 18:
        return None
    return get_user_model().objects.filter(pk=int(value)).first()


# -- bulk actions -----------------------------------------------------------------------

def _selected(model_admin, request, queryset):
    instances = list(queryset.select_related("machine", "version", "assignee")
                     .defer("version__definition")[:BULK_STEP_LIMIT + 1])
    if len(instances) > BULK_STEP_LIMIT:
        model_admin.message_user(request, f"Select at most {BULK_STEP_LIMIT} instances at "
                                          f"once.", messages.ERROR)
        return None
    return instances


def _bulk(model_admin, request, instances, report, change, claimed=False):
    for instance in instances:
        before = access.assignee_name(instance) or "unassigned"
        try:
            entry = change(instance)
        except FlowrError as exc:
            report.rows.append(ReportRow.of(instance, before, ok=False, reason=str(exc)))
            continue
        if entry is None:
            report.rows.append(ReportRow.of(instance, before, "unchanged"))
            continue
        model_admin.log_change(request, instance, log_text(entry, claimed))
        after = entry.data.get("assignee") or "unassigned"
        report.rows.append(ReportRow.of(instance, before, after))
    return report_response(model_admin, request, report)


def bulk_claim(model_admin, request, queryset):
    """Claim each selected instance for the user; ends on the report."""
    instances = _selected(model_admin, request, queryset)
    if instances is None:
        return None
    return _bulk(model_admin, request, instances, Report("Claim: result", "Claimed"),
                 lambda instance: assignment.claim(instance, request.user), claimed=True)


def bulk_unassign(model_admin, request, queryset):
    """Unassign each selected instance; ends on the report."""
    instances = _selected(model_admin, request, queryset)
    if instances is None:
        return None
    return _bulk(model_admin, request, instances, Report("Unassign: result", "Unassigned"),
                 lambda instance: assignment.unassign(instance, by=request.user))


class BulkAssignForm(forms.Form):
    user = forms.ModelChoiceField(
        queryset=get_user_model().objects.none(), label="Assign to",
        help_text="Active staff who may step instances. Instances where this user is not a "
                  "candidate are reported with the reason and left as they are.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["user"]
        field.queryset = assignment.candidate_users().prefetch_related("groups")
        field.label_from_instance = _user_label


def _user_label(user):
    groups = ", ".join(sorted(g.name for g in user.groups.all()))
    return f"{user.get_username()} ({groups})" if groups else user.get_username()


def bulk_assign(model_admin, request, queryset):
    """Choose a user (intermediate page), then assign each selected instance to them."""
    if not model_admin.has_assign_permission(request):
        raise PermissionDenied
    instances = _selected(model_admin, request, queryset)
    if instances is None:
        return None
    if request.POST.get("post") == "yes":
        form = BulkAssignForm(request.POST)
        if form.is_valid():
            target = form.cleaned_data["user"]
            return _bulk(model_admin, request, instances,
                         Report(f"Assign to {target.get_username()}: result", "Assigned"),
                         lambda instance: assignment.assign(instance, target,
                                                            by=request.user))
    else:
        form = BulkAssignForm()
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta, "title": "Assign selected instances",
        "rows": [(i, short_id(i), access.assignee_name(i)) for i in instances], "form": form,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME, "action_name": "assign_selected",
        "media": model_admin.media + form.media,
    }
    return TemplateResponse(request, "admin/flowr/instance/assign_selected.html", context)
