"""Instances in the admin: a list with one button per allowed step, a read-only page
with history, task state and diagram, a start form and bulk actions with reports.

InstanceAdmin is composed of one mixin per feature module (moves between versions,
and the operations desk's modules), on top of InstanceAdminBase. A mixin contributes
through cooperative hooks that call super():

- `get_urls()`, `get_list_display(request)`, `get_list_filter(request)`,
  `get_search_fields(request)`, `get_actions(request)` (Django's own hooks);
- `instance_context(request, obj)`: the instance page's context; append template names
  to `context["flowr_panels"]` to add a panel below the next steps;
- `prepare_rows(request, instances)`: per-row data for the list, without a query per row.

The list costs a constant number of queries: rows come with their machine, version
(definition deferred; compiled definitions are cached by the engine), starter and
assignee, and permission checks use the user's cached permissions.
"""
import json

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_permission_codename
from django.http import HttpResponseNotAllowed
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince

from .. import engine
from ..diagrams import version_svg
from ..exceptions import FlowrError
from ..models import Instance
from . import instance_views as views
from .assignment import ACTIONS as ASSIGNMENT_ACTIONS
from .assignment import InstanceAssignmentMixin
from .history import HISTORY_LIMIT, history_rows, visited_keys
from .instance_filters import StateFilter, StatusFilter, VersionFilter
from .controls import ACTIONS as CONTROL_ACTIONS
from .controls import InstanceControlsMixin
from .moves import InstanceMoveMixin
from .search import InstanceSearchMixin
from .reports import report_urls
from .timers import InstanceTimersMixin


class InstanceChangeList(ChangeList):
    """Prepares each row's status and next steps once, without a query per row."""

    def get_results(self, request):
        super().get_results(request)
        self.model_admin.prepare_rows(request, self.result_list)


def status_badge(status):
    return format_html('<span class="flowr-status flowr-status-{}">{}</span>', status, status)


def step_button(instance, option, label, needs_data, change_url):
    """One step button of a list row (submits the row's hidden form, see change_list.html)."""
    if not option.allowed:
        return format_html('<button type="button" class="grp-button flowr-step" disabled '
                           'title="{}">{}</button>', option.reason, label)
    if needs_data:
        return format_html('<a class="grp-button flowr-step" href="{}#flowr-step-{}" '
                           'title="This step needs data: fill it in on the instance page">'
                           '{}…</a>', change_url, option.key, label)
    return format_html('<button type="submit" form="flowr-step-{}" name="to" value="{}" '
                       'class="grp-button flowr-step">{}</button>', instance.pk, option.key,
                       label)


def step_buttons(instance, steps, status, change_url):
    """The next-step buttons of a row, or its status when it takes no steps."""
    if status != Instance.ACTIVE:
        return format_html('<span class="flowr-muted">{}</span>', status)
    single = len(steps) == 1
    buttons = [step_button(instance, option, f"Next: {option.name}" if single else option.name,
                           needs_data, change_url) for option, needs_data in steps]
    return format_html('<div class="flowr-steps">{}</div>',
                       format_html_join("", "{}", ((b,) for b in buttons)))


def row_forms(model_admin, instances):
    """(pk, step url, position) of each row that has step buttons (for the hidden forms)."""
    return [(obj.pk, reverse("admin:flowr_instance_step", args=[obj.pk],
                             current_app=model_admin.admin_site.name), obj.step_count)
            for obj in instances if getattr(obj, "_flowr_steps", None)]


class InstanceAdminBase(admin.ModelAdmin):
    """Running machines: stepped with buttons, never edited by hand."""

    list_display = ["instance_label", "machine", "version_label", "current_state",
                    "status_label", "time_in_state", "last_activity", "started_by",
                    "next_steps"]
    list_display_links = ["instance_label"]
    list_select_related = ["machine", "version", "started_by", "assignee"]
    list_filter = ["machine", VersionFilter, StateFilter, StatusFilter]
    search_fields = ["id"]
    search_help_text = "Search by instance id (or its first characters)."
    fields = ["instance_label", "machine", "version_label", "current_state", "status_label",
              "started_by", "started_at", "last_activity", "state_entered_at", "step_count"]
    readonly_fields = fields
    actions = ["step_selected"]

    class Media:
        css = {"all": ["flowr/flowr_admin.css"]}

    # -- permissions ----------------------------------------------------------------
    def has_add_permission(self, request):
        return False  # instances are started (start_view), never added by hand

    def has_start_permission(self, request):
        """May the user start instances? (the model's add permission)"""
        return request.user.has_perm(f"{self.opts.app_label}.add_{self.opts.model_name}")

    def has_step_permission(self, request, obj=None):
        """May the user step instances? (flowr.step_instance, separate from change)"""
        codename = get_permission_codename("step", self.opts)
        return request.user.has_perm(f"{self.opts.app_label}.{codename}")

    # -- queries --------------------------------------------------------------------
    def get_queryset(self, request):
        return (super().get_queryset(request)
                .select_related("machine", "version", "started_by", "assignee")
                .defer("version__definition"))

    def get_changelist(self, request, **kwargs):
        return InstanceChangeList

    def prepare_rows(self, request, instances):
        """Attach each row's effective status and next steps (no query per row)."""
        engine.compile_many([instance.version for instance in instances])
        can_step = self.has_step_permission(request)
        for instance in instances:
            instance._flowr_status = engine.effective_status(instance)
            instance._flowr_steps = self._steps(request, instance) if can_step else []

    def _steps(self, request, instance):
        graph = engine.compiled(instance.version)
        return [(option, views.step_form_class(graph, option.key) is not None)
                for option in engine.allowed_steps(instance, request.user)]

    # -- columns --------------------------------------------------------------------
    @admin.display(description="instance", ordering="started_at")
    def instance_label(self, obj):
        return format_html('<span class="flowr-wrap" title="{}">{}</span>', obj.pk, obj.label)

    @admin.display(description="version", ordering="version__number")
    def version_label(self, obj):
        return f"v{obj.version.number}"

    @admin.display(description="current state", ordering="state_name")
    def current_state(self, obj):
        return format_html('<span class="flowr-wrap">{}</span>', obj.state_name)

    @admin.display(description="status", ordering="status")
    def status_label(self, obj):
        return status_badge(getattr(obj, "_flowr_status", None) or engine.effective_status(obj))

    @admin.display(description="in state for", ordering="state_entered_at")
    def time_in_state(self, obj):
        return timesince(obj.state_entered_at, timezone.now(), depth=1)

    @admin.display(description="next steps")
    def next_steps(self, obj):
        status = getattr(obj, "_flowr_status", None) or engine.effective_status(obj)
        change_url = reverse("admin:flowr_instance_change", args=[obj.pk],
                             current_app=self.admin_site.name)
        return step_buttons(obj, getattr(obj, "_flowr_steps", []), status, change_url)

    # -- views ----------------------------------------------------------------------
    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        wrap = self.admin_site.admin_view
        return [
            path("start/", wrap(self.start_view), name="%s_%s_start" % info),
            path("<path:object_id>/step/", wrap(self.step_view), name="%s_%s_step" % info),
            path("<path:object_id>/task-state/", wrap(self.task_state_view),
                 name="%s_%s_task_state" % info),
            *report_urls(self),
        ] + super().get_urls()

    def start_view(self, request):
        """Start N instances of a machine (GET: the form)."""
        return views.start_view(self, request)

    def step_view(self, request, object_id):
        """Step one instance (POST)."""
        return views.step_view(self, request, object_id)

    def task_state_view(self, request, object_id):
        """Replace an instance's task state (POST)."""
        return views.task_state_view(self, request, object_id)

    @admin.action(permissions=["step"], description="Step selected instances to a next state")
    def step_selected(self, request, queryset):
        """Bulk action: choose a next state, then step each selected instance."""
        return views.step_selected(self, request, queryset)

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "flowr_start_url": (
            reverse("admin:flowr_instance_start", current_app=self.admin_site.name)
            if self.has_start_permission(request) else None)}
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None) or {}
        if "cl" in context:
            context["flowr_row_forms"] = row_forms(self, context["cl"].result_list)
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if request.method == "POST":
            return HttpResponseNotAllowed(["GET"])  # every change has its own view
        extra_context = {**(extra_context or {}), "show_save": False,
                         "show_save_and_continue": False, "show_save_and_add_another": False}
        return super().change_view(request, object_id, form_url, extra_context)

    def render_change_form(self, request, context, add=False, change=False, form_url="",
                           obj=None):
        if obj is not None:
            context.update(self.instance_context(request, obj))
        return super().render_change_form(request, context, add, change, form_url, obj)

    def instance_context(self, request, obj):
        """Template context of the instance page: steps, history, task state, diagram."""
        status = engine.effective_status(obj)
        context = {
            "title": f"Instance {obj.label} of {obj.machine}",
            "flowr_status": status,
            "flowr_steps": self._page_steps(request, obj),
            "flowr_can_step": self.has_step_permission(request, obj),
            "flowr_history": history_rows(obj),
            "flowr_history_truncated": obj.last_seq + 1 > HISTORY_LIMIT,
            "flowr_history_limit": HISTORY_LIMIT,
            "flowr_diagram": version_svg(obj.version, current=obj.state_key,
                                         visited=visited_keys(obj)),
            "flowr_step_url": reverse("admin:flowr_instance_step", args=[obj.pk],
                                      current_app=self.admin_site.name),
            "flowr_task_state_url": reverse("admin:flowr_instance_task_state", args=[obj.pk],
                                            current_app=self.admin_site.name),
            "flowr_can_edit_task_state": (self.has_change_permission(request, obj)
                                          and status in (Instance.ACTIVE, Instance.SUSPENDED)),
            "flowr_panels": [],
        }
        context.update(self._task_state_context(request, obj, status))
        return context

    def _page_steps(self, request, obj):
        if not self.has_step_permission(request, obj):
            return []
        graph = engine.compiled(obj.version)
        options = engine.allowed_steps(obj, request.user)
        single = len(options) == 1
        steps = []
        for option in options:
            form_class = views.step_form_class(graph, option.key)
            steps.append({
                "option": option,
                "label": f"Next: {option.name}" if single else option.name,
                "note_form": views.StepNoteForm(auto_id=f"id_{option.key}_%s"),
                "data_form": form_class(prefix=views.STEP_DATA_PREFIX,
                                        auto_id=f"id_{option.key}_%s") if form_class else None,
            })
        return steps

    def _task_state_context(self, request, obj, status):
        if status == Instance.EXPIRED:
            return {"flowr_task_state_expired": True}
        try:
            state = engine.task_state_of(obj, touch=False)  # a GET changes nothing
        except FlowrError as exc:
            return {"flowr_task_state_error": str(exc)}
        text = json.dumps(state, indent=2, sort_keys=True, ensure_ascii=False, default=str)
        # A refused edit comes back in the box as it was typed, so nothing is lost.
        draft = views.pop_task_state_draft(request, obj)
        return {"flowr_task_state": text, "flowr_task_state_form": views.TaskStateForm(
            initial={"task_state": text if draft is None else draft})}


@admin.register(Instance)
class InstanceAdmin(InstanceTimersMixin, InstanceAssignmentMixin, InstanceControlsMixin,
                    InstanceSearchMixin,
                    InstanceMoveMixin, InstanceAdminBase):
    """The instance admin: the base plus one mixin per feature module."""

    actions = [*InstanceAdminBase.actions, "move_to_version", *CONTROL_ACTIONS,
               *ASSIGNMENT_ACTIONS]
