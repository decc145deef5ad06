"""Custom admin views for instances: step, edit task state, start, bulk step.

Every view that changes something is a POST (405 otherwise) behind admin_view
(login + CSRF), checks its permission explicitly (403 for a forged POST), calls
flowr.engine — the only code that moves instances — and redirects with a message.
"""
import json
from functools import wraps

from django import forms
from django.contrib import messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from .. import engine
from ..exceptions import AlreadyMoved, FlowrError, RuleNotRegistered
from ..models import Machine
from .reports import Report, ReportRow, report_response

STEP_DATA_PREFIX = "data"
MAX_START = 100
BULK_STEP_LIMIT = 1000


def short_id(instance):
    """How the admin names an instance in messages: its title/business key, else short id."""
    return instance.label


def posted_position(request, name="position"):
    """The position number a form carried (an int), or None when absent or malformed."""
    value = request.POST.get(name, "")
    return int(value) if value.isdigit() and len(value) < 10 else None


# -- forms --------------------------------------------------------------------------

def _note_field():
    return forms.CharField(required=False, max_length=2000, label="Note",
                           widget=forms.Textarea(attrs={"rows": 2, "cols": 40}))


class StepNoteForm(forms.Form):
    note = _note_field()


TASK_STATE_MAX_CHARS = 200_000


class TaskStateForm(forms.Form):
    task_state = forms.CharField(required=False, label="Task state (JSON object)",
                                 max_length=TASK_STATE_MAX_CHARS,
                                 widget=forms.Textarea(attrs={"rows": 8, "cols": 60}))

    def clean_task_state(self):
        text = self.cleaned_data["task_state"].strip() or "{}"
        try:
            value = json.loads(text)
        except RecursionError:
            raise forms.ValidationError("This JSON nests values too deeply to be read.")
        except ValueError as exc:
            raise forms.ValidationError(f"This is not valid JSON: {exc}.")
        if not isinstance(value, dict):
            raise forms.ValidationError(
                f"The task state must be a JSON object ({{...}}), not {type(value).__name__}.")
        return value


class StartForm(forms.Form):
    machine = forms.ModelChoiceField(queryset=Machine.objects.none(),
                                     help_text="Machines with a published version.")
    count = forms.IntegerField(min_value=1, max_value=MAX_START, initial=1,
                               help_text=f"How many instances to start (at most {MAX_START}).")
    business_key = forms.CharField(
        required=False, max_length=engine.LABEL_MAX, label="Business key",
        help_text="Optional, e.g. an order number; unique per machine, so only for one "
                  "instance.")
    title = forms.CharField(required=False, max_length=engine.LABEL_MAX,
                            help_text="Optional; shown wherever the instance is named "
                                      "(every instance started here gets it).")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["machine"].queryset = (
            Machine.objects.filter(archived=False, versions__isnull=False).distinct())

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("business_key") and (cleaned.get("count") or 1) > 1:
            self.add_error("business_key", "A business key names one instance: start one "
                                           "instance with it, or leave the key empty.")
        for name in ("business_key", "title"):
            if "\x00" in cleaned.get(name, ""):
                self.add_error(name, "Remove the NUL character.")
        return cleaned


class BulkStepForm(forms.Form):
    target = forms.ChoiceField(widget=forms.RadioSelect, label="Next state")
    note = _note_field()

    def __init__(self, *args, names=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["target"].choices = [(name, name) for name in names]


def _errors_text(form):
    return "; ".join(f"{form[f].label if f in form.fields else 'Form'}: {' '.join(e)}"
                     for f, e in form.errors.items())


# -- helpers ------------------------------------------------------------------------

def _instance(model_admin, request, object_id):
    instance = model_admin.get_object(request, unquote(object_id))
    if instance is None:
        raise Http404(f"No instance with id {object_id}.")
    return instance


def change_url(model_admin, instance):
    opts = model_admin.model._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[instance.pk],
                   current_app=model_admin.admin_site.name)


def back_to(request, model_admin, instance, anchor=""):
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
            target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return HttpResponseRedirect(target)
    return HttpResponseRedirect(change_url(model_admin, instance) + anchor)


def step_form_class(graph, key):
    """The step form class of the rule of state `key`, or None."""
    try:
        return graph.rule(key).step_form
    except RuleNotRegistered:
        return None


def _target(instance, graph, to):
    children = graph.children.get(instance.state_key, [])
    if not to:
        return children[0] if len(children) == 1 else None
    key = graph.resolve(to)
    return key if key in children else None


def _step_data(instance, to, post):
    """(data, problem): the validated step-form data for the target, or why it is invalid."""
    graph = engine.compiled(instance.version)
    target = _target(instance, graph, to)
    form_class = step_form_class(graph, target) if target else None
    if form_class is None:
        return None, None  # the engine explains any problem with the target itself
    form = form_class(post, prefix=STEP_DATA_PREFIX)
    if not form.is_valid():
        return None, f"Stepping to '{graph.names[target]}' needs: {_errors_text(form)}"
    return json.loads(json.dumps(form.cleaned_data, cls=DjangoJSONEncoder)), None


def step_message(entry):
    """The LogEntry message of a step."""
    return f"Stepped from {entry.from_name} to {entry.to_name}."


# -- views --------------------------------------------------------------------------

def post_only(view):
    """Answer 405 to anything but POST (views taking model_admin first)."""
    @wraps(view)
    def wrapper(model_admin, request, *args, **kwargs):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        return view(model_admin, request, *args, **kwargs)
    return wrapper


def posted_instance(model_admin, request, object_id, has_permission):
    """The instance a state-changing POST names; 403 without `has_permission`."""
    instance = _instance(model_admin, request, object_id)
    if not has_permission(request, instance):
        raise PermissionDenied
    return instance


@post_only
def step_view(model_admin, request, object_id):
    """POST: step one instance to `to` (optional with one child), guarded by its position."""
    instance = posted_instance(model_admin, request, object_id, model_admin.has_step_permission)
    position = posted_position(request)
    note_form = StepNoteForm(request.POST)
    if position is None or not note_form.is_valid():
        messages.error(request, "The step form was incomplete; nothing was changed. "
                                "Reload the page and try again.")
        return back_to(request, model_admin, instance)
    to = request.POST.get("to") or None
    data, problem = _step_data(instance, to, request.POST)
    if problem:
        messages.error(request, f"Instance {short_id(instance)} did not step. {problem}")
        return back_to(request, model_admin, instance)
    try:
        entry = engine.step(instance, to=to, user=request.user,
                            note=note_form.cleaned_data["note"], data=data,
                            expected_position=position)
    except AlreadyMoved as exc:
        messages.warning(request, f"Already moved: {exc}")
    except FlowrError as exc:
        messages.error(request, str(exc))
    else:
        model_admin.log_change(request, instance, step_message(entry))
        messages.success(request, f"Instance {short_id(instance)}: "
                                  f"{step_message(entry)[0].lower()}{step_message(entry)[1:]}")
    return back_to(request, model_admin, instance)


_DRAFT_KEY = "flowr_task_state_draft"


def _keep_draft(request, instance, response):
    """Remember the refused text for the next page of this instance (in the session)."""
    request.session[_DRAFT_KEY] = {"instance": str(instance.pk),
                                   "text": request.POST.get("task_state", "")[:100_000]}
    return response


def pop_task_state_draft(request, instance):
    """The task-state text refused for this instance just before, or None."""
    draft = request.session.get(_DRAFT_KEY)
    if not draft or draft.get("instance") != str(instance.pk):
        return None
    del request.session[_DRAFT_KEY]
    return draft["text"]


@post_only
def task_state_view(model_admin, request, object_id):
    """POST: replace the instance's task state with a JSON object (change permission)."""
    instance = posted_instance(model_admin, request, object_id,
                                model_admin.has_change_permission)
    back = HttpResponseRedirect(change_url(model_admin, instance) + "#task-state")
    form = TaskStateForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Task state not saved. {_errors_text(form)}")
        return _keep_draft(request, instance, back)
    try:
        engine.save_task_state(instance, form.cleaned_data["task_state"], user=request.user)
    except FlowrError as exc:
        messages.error(request, f"Task state not saved: {exc}")
        return _keep_draft(request, instance, back)
    model_admin.log_change(request, instance, "Edited the task state.")
    messages.success(request, f"Task state of instance {short_id(instance)} saved.")
    return back


def start_view(model_admin, request):
    """GET: the start form; POST: start N instances of a machine's latest version."""
    if not model_admin.has_start_permission(request):
        raise PermissionDenied
    if request.method == "POST":
        form = StartForm(request.POST)
        if form.is_valid():
            response = _start(model_admin, request, form, **form.cleaned_data)
            if response is not None:
                return response
    else:
        form = StartForm(initial={"machine": request.GET.get("machine"), "count": 1})
    opts = model_admin.model._meta
    context = {**model_admin.admin_site.each_context(request), "opts": opts, "form": form,
               "title": "Start instances", "max_start": MAX_START}
    return TemplateResponse(request, "admin/flowr/instance/start.html", context)


def _start(model_admin, request, form, machine, count, business_key="", title=""):
    try:
        with transaction.atomic():
            started = [engine.start(machine, user=request.user, business_key=business_key,
                                    title=title) for _ in range(count)]
    except engine.BusinessKeyTaken as exc:
        form.add_error("business_key", str(exc))  # the form keeps what was typed
        return None
    except FlowrError as exc:
        messages.error(request, f"No instance was started: {exc}")
        return None
    for instance in started:
        model_admin.log_addition(request, instance,
                                 f"Started on version {instance.version.number}.")
    version = started[0].version.number
    if count == 1:
        messages.success(request, f"Started instance {short_id(started[0])} of '{machine}' "
                                  f"(version {version}).")
        return HttpResponseRedirect(change_url(model_admin, started[0]))
    messages.success(request, f"Started {count} instances of '{machine}' (version {version}).")
    opts = model_admin.model._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist",
                  current_app=model_admin.admin_site.name)
    return HttpResponseRedirect(f"{url}?machine__id__exact={machine.pk}")


# -- bulk action --------------------------------------------------------------------

def _bulk_options(instances, user):
    """Ordered {next-state name: step form class or None} over the selected instances."""
    options = {}
    for instance in instances:
        graph = engine.compiled(instance.version)
        for option in engine.allowed_steps(instance, user):
            if option.name not in options or options[option.name] is None:
                options[option.name] = step_form_class(graph, option.key)
    return options


def step_selected(model_admin, request, queryset):
    """The bulk action: choose a next state (intermediate page), then step each instance."""
    instances = list(queryset.select_related("machine", "version")
                     .defer("version__definition")[:BULK_STEP_LIMIT + 1])
    if len(instances) > BULK_STEP_LIMIT:
        messages.error(request, f"Select at most {BULK_STEP_LIMIT} instances to step at once.")
        return None
    engine.compile_many([instance.version for instance in instances])
    options = _bulk_options(instances, request.user)
    if not options:
        messages.warning(request, "None of the selected instances has a next step "
                                  "(they are finished or expired). Nothing was changed.")
        return None
    data_forms = {name: cls(prefix=f"{STEP_DATA_PREFIX}-{i}") if cls else None
                  for i, (name, cls) in enumerate(options.items())}
    if request.POST.get("post") == "yes":
        # A confirmed name no longer offered (a second submission) is still tried, so
        # each instance reports why it cannot take it ("already moved").
        posted = request.POST.get("target", "")
        names = [*options, posted] if posted and posted not in options else list(options)
        data_forms.setdefault(posted, None)
        form = BulkStepForm(request.POST, names=names)
        if form.is_valid():
            name = form.cleaned_data["target"]
            data_form = data_forms[name]
            if data_form is not None:
                data_form = data_forms[name] = type(data_form)(request.POST,
                                                               prefix=data_form.prefix)
            if data_form is None or data_form.is_valid():
                return _bulk_step(model_admin, request, instances, form.cleaned_data,
                                  data_form)
    else:
        form = BulkStepForm(names=list(options))
    return _bulk_page(model_admin, request, instances, form, data_forms)


def _bulk_page(model_admin, request, instances, form, data_forms):
    rows = [(instance, short_id(instance),
             ", ".join(o.name for o in engine.allowed_steps(instance, request.user)))
            for instance in instances]
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta, "title": "Step selected instances",
        "rows": rows, "form": form, "data_forms": data_forms,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME, "action_name": "step_selected",
        "media": model_admin.media + form.media,
    }
    return TemplateResponse(request, "admin/flowr/instance/step_selected.html", context)


def _bulk_step(model_admin, request, instances, cleaned, data_form):
    """Step each instance to the chosen state; ends on the per-instance report."""
    name, note = cleaned["target"], cleaned["note"]
    data = (json.loads(json.dumps(data_form.cleaned_data, cls=DjangoJSONEncoder))
            if data_form is not None else None)
    report = Report(f"Step to '{name}': result", "Stepped")
    for instance in instances:
        before = instance.state_name
        try:
            entry = engine.step(instance, to=name, user=request.user, note=note, data=data,
                                expected_position=posted_position(request,
                                                                  f"position_{instance.pk}"))
        except FlowrError as exc:
            report.rows.append(ReportRow.of(instance, before, ok=False, reason=str(exc)))
        else:
            model_admin.log_change(request, instance, step_message(entry))
            report.rows.append(ReportRow.of(instance, before, entry.to_name))
    return report_response(model_admin, request, report)
