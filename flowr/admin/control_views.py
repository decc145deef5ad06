"""Admin views of the operator controls (flowr.controls): a confirmation page with a
required reason, then the control, for one instance (its page's panel) or many (list
actions, ending on the per-instance report).

Every URL here is POST only (405 otherwise), behind admin_view (login + CSRF) and the
control's own permission (403 for a forged POST). The confirmation page is the answer
to the first POST (like Django's action pages); confirming posts again with `confirm`.
A move is confirmed only for the target whose guard warnings were shown (`checked`).
"""
from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from .. import controls, engine
from ..controls import CONTROLS, MOVE, UNDO
from ..exceptions import AlreadyMoved, ControlError, FlowrError
from ..models import Instance
from .instance_views import change_url, post_only, posted_instance, posted_position
from .reports import Report, ReportRow, report_response

BULK_LIMIT = 1000
HOOK_CHOICES = [
    ("yes", "Run the hooks: on_leave of the current state, then on_enter of the target"),
    ("no", "Skip the hooks: only the position changes"),
]


class ControlForm(forms.Form):
    """The reason every control asks for."""

    reason = forms.CharField(
        max_length=controls.REASON_MAX, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Why: written to the history of each instance and to the admin log.")

    def __init__(self, *args, targets=(), **kwargs):
        super().__init__(*args, **kwargs)

    def clean_reason(self):
        try:
            return controls.clean_reason(self.cleaned_data["reason"])
        except ControlError as exc:
            raise ValidationError(str(exc)) from exc


class MoveForm(ControlForm):
    """Move to state: the target, and whether the hooks run (no default: an explicit choice)."""

    target = forms.ChoiceField(label="Move to state")
    run_hooks = forms.ChoiceField(label="Hooks", choices=HOOK_CHOICES,
                                  widget=forms.RadioSelect)
    field_order = ["target", "run_hooks", "reason"]

    def __init__(self, *args, targets=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["target"].choices = [("", "— choose a state —"), *targets]


def form_class(control):
    return MoveForm if control is MOVE else ControlForm


def has_control_permission(request, control):
    """May the user use `control`? (its own model permission)"""
    return request.user.has_perm(control.permission)


# -- what each instance would do ------------------------------------------------------------

def _targets(instances):
    """(key, label) of every state of the instances' versions, in definition order."""
    graphs = engine.compile_many([instance.version for instance in instances])
    machines = {instance.machine_id for instance in instances}
    seen = {}
    for instance, graph in zip(instances, graphs, strict=True):
        for key, name in graph.names.items():
            label = name if len(machines) == 1 else f"{name} ({instance.machine})"
            seen.setdefault(key, label)
    return list(seen.items())


def _rows(control, instances, target=None):
    """Per instance: {instance, problem, warnings} for the confirmation page."""
    lasts = controls.last_entries(instances) if control is UNDO else {}
    rows = []
    for instance in instances:
        row = {"instance": instance, "problem": None, "warnings": []}
        if control is UNDO:
            row["problem"] = controls.undo_problem(instance, lasts.get(instance.pk))
        else:
            row["problem"] = controls.status_problem(instance, control)
        if control is MOVE and target and not row["problem"]:
            try:
                row["key"], row["target_name"], row["warnings"] = controls.preview_move(
                    instance, target)
            except FlowrError as exc:
                row["problem"] = str(exc)
        rows.append(row)
    return rows


def _act(control, instance, cleaned, user, position):
    """Run the control on one instance; returns the history entry."""
    kwargs = {"reason": cleaned["reason"], "user": user, "expected_position": position}
    if control is MOVE:
        return controls.move_to_state(instance, cleaned["target"],
                                      run_hooks=cleaned["run_hooks"] == "yes", **kwargs)
    return getattr(controls, {"undo": "undo_last_step"}.get(control.name, control.name))(
        instance, **kwargs)


def log_message(control, entry):
    """The LogEntry message (and the success message) of a control."""
    if control is MOVE:
        hooks = "hooks run" if entry.data.get("run_hooks") else "hooks skipped"
        return f"Moved from {entry.from_name} to {entry.to_name} ({hooks}): {entry.note}"
    if control is UNDO:
        return f"Undid the step {entry.data.get('undone', '')}: {entry.note}"
    return f"{control.past.capitalize()}: {entry.note}"


# -- pages ----------------------------------------------------------------------------------

def _page(model_admin, request, control, instances, form, rows, *, single, checked=""):
    opts = model_admin.opts
    count = len(instances)
    subject = (f"instance {instances[0].label}" if single
               else f"{count} selected instance{'s' if count != 1 else ''}")
    title = {MOVE: f"Move {subject} to another state",
             UNDO: f"Undo the last step of {subject}"}.get(control,
                                                         f"{control.label} {subject}")
    bulk_url = reverse(f"admin:{opts.app_label}_{opts.model_name}_control_bulk",
                       args=[control.name], current_app=model_admin.admin_site.name)
    context = {
        **model_admin.admin_site.each_context(request), "opts": opts, "title": title,
        "control": control, "form": form, "rows": rows, "single": single,
        "original": instances[0] if single else None, "checked": checked,
        "ready": sum(1 for row in rows if not row["problem"]),
        "confirm_label": _confirm_label(control, single, rows),
        "action_url": request.path if single else bulk_url,
        "back_url": change_url(model_admin, instances[0]) if single else reverse(
            f"admin:{opts.app_label}_{opts.model_name}_changelist",
            current_app=model_admin.admin_site.name),
        "positions": [(row["instance"].pk, row["instance"].step_count) for row in rows],
        "media": model_admin.media + form.media,
    }
    return TemplateResponse(request, "admin/flowr/instance/control_confirm.html", context)


def _confirm_label(control, single, rows):
    """The confirm button: "Cancel the instance", "Undo the last step of 3 instances"."""
    ready = sum(1 for row in rows if not row["problem"])
    many = f"{ready} instance{'s' if ready != 1 else ''}"
    if control is UNDO:
        return "Undo its last step" if single else f"Undo the last step of {many}"
    verb = "Move" if control is MOVE else control.label
    return f"{verb} the instance" if single else f"{verb} {many}"


def _form(control, request, instances, confirm):
    """The control's form: bound when confirming, else showing what was posted so far."""
    targets = _targets(instances) if control is MOVE else ()
    if confirm:
        return form_class(control)(request.POST, targets=targets)
    initial = {name: request.POST.get(name, "") for name in ("reason", "target", "run_hooks")}
    return form_class(control)(initial=initial, targets=targets)


@post_only
def control_view(model_admin, request, object_id, name):
    """POST: one instance's confirmation page, then (with `confirm`) the control itself."""
    control = CONTROLS.get(name)
    if control is None:
        raise Http404(f"No operator control named {name[:40]!r}.")
    instance = posted_instance(model_admin, request, object_id,
                                lambda request, obj: has_control_permission(request, control))
    position = posted_position(request)
    if position is None:
        messages.error(request, "The form was incomplete; nothing was changed. Reload the "
                                "page and try again.")
        return HttpResponseRedirect(change_url(model_admin, instance))
    target = request.POST.get("target", "")
    confirm = "confirm" in request.POST and (control is not MOVE or target == request.POST.get(
        "checked"))
    form = _form(control, request, [instance], confirm)
    if confirm and form.is_valid():
        return _single(model_admin, request, control, instance, form.cleaned_data, position)
    instance.step_count = position  # the page carries the position the user saw
    return _page(model_admin, request, control, [instance], form,
                 _rows(control, [instance], target), single=True, checked=target)


def _single(model_admin, request, control, instance, cleaned, position):
    back = HttpResponseRedirect(change_url(model_admin, instance))
    try:
        entry = _act(control, instance, cleaned, request.user, position)
    except AlreadyMoved as exc:
        messages.warning(request, f"Already moved: {exc}")
        return back
    except FlowrError as exc:
        messages.error(request, str(exc))
        return back
    model_admin.log_change(request, instance, log_message(control, entry))
    messages.success(request, f"Instance {instance.label}: {log_message(control, entry)}")
    return back


# -- bulk -----------------------------------------------------------------------------------

def _positions(request, instances):
    """{pk: the position number the confirmation page showed} (None when missing)."""
    return {instance.pk: posted_position(request, f"position_{instance.pk}")
            for instance in instances}


def bulk_action(model_admin, request, queryset, name):
    """The list action: the confirmation page for the selected instances."""
    control = CONTROLS[name]
    instances = list(queryset.select_related("machine", "version")
                     .defer("version__definition")[:BULK_LIMIT + 1])
    if len(instances) > BULK_LIMIT:
        messages.error(request, f"Select at most {BULK_LIMIT} instances at once.")
        return None
    form = _form(control, request, instances, confirm=False)
    return _page(model_admin, request, control, instances, form, _rows(control, instances),
                 single=False)


def _selected(request):
    ids = [value for value in request.POST.getlist("ids") if value][:BULK_LIMIT]
    try:
        return list(Instance.objects.filter(pk__in=ids).select_related("machine", "version")
                    .defer("version__definition").order_by("-last_activity"))
    except (ValidationError, ValueError):  # a malformed id selects nothing
        return []


@post_only
def bulk_view(model_admin, request, name):
    """POST: check again (a move's warnings) or confirm the control for the posted ids."""
    control = CONTROLS.get(name)
    if control is None:
        raise Http404(f"No operator control named {name[:40]!r}.")
    if not has_control_permission(request, control):
        raise PermissionDenied
    instances = _selected(request)
    if not instances:
        messages.error(request, "No instances were selected; nothing was changed.")
        return HttpResponseRedirect(reverse(
            f"admin:{model_admin.opts.app_label}_{model_admin.opts.model_name}_changelist",
            current_app=model_admin.admin_site.name))
    positions = _positions(request, instances)
    target = request.POST.get("target", "")
    confirm = "confirm" in request.POST and (control is not MOVE or target == request.POST.get(
        "checked"))
    form = _form(control, request, instances, confirm)
    if confirm and form.is_valid():
        return _bulk(model_admin, request, control, instances, form.cleaned_data, positions)
    for instance in instances:
        if positions[instance.pk] is not None:
            instance.step_count = positions[instance.pk]
    return _page(model_admin, request, control, instances, form,
                 _rows(control, instances, target), single=False, checked=target)


def _bulk(model_admin, request, control, instances, cleaned, positions):
    """Run the control on each instance; ends on the per-instance report."""
    report = Report(f"{control.label.rstrip('…')}: result", control.past.capitalize())
    for instance in instances:
        before = f"{instance.state_name} ({engine.effective_status(instance)})"
        position = positions[instance.pk]
        try:
            if position is None:
                raise AlreadyMoved(f"Instance {instance.label} was not on the confirmation "
                                   f"page; nothing was changed.")
            entry = _act(control, instance, cleaned, request.user, position)
        except FlowrError as exc:
            report.rows.append(ReportRow.of(instance, before, ok=False, reason=str(exc)))
            continue
        model_admin.log_change(request, instance, log_message(control, entry))
        report.rows.append(ReportRow.of(instance, before,
                                        f"{instance.state_name} ({instance.status})"))
    return report_response(model_admin, request, report)

