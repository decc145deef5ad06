"""Moving instances to another version: choose the target, map the states it lacks,
preview every instance's outcome, then confirm (a recorded migration).

"Move to another version…" is the instance list's action (the selected instances) and a
machine-level entry (`?machine=ID`: its active instances not on the target; `?version=ID`:
those of one version). The mapping step shows one row per state the target lacks (or
renamed) with its instance count, pre-filled by stable key and then by rule. The preview
shows what happens to every instance, page by page. Both are read-only (GET or POST);
only the confirmation writes: flowr.migrations_api records the migration and runs it in
the request when it is small, else as a background task, and the browser goes to the
migration's result page, which follows its progress.
"""
import uuid
from dataclasses import dataclass

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from .. import migration_runner
from ..exceptions import FlowrError
from ..migration_plan import Choice
from ..migrations_api import plan_migration, running_instances
from ..models import Instance, Machine, MachineVersion
from ._ids import parse_pk

PAGE_SIZE = 200
INLINE_LIMIT = 200  # migrations of at most this many instances run in the request
MAX_SELECTED = 20_000


@dataclass
class Selection:
    """Which instances a move concerns: chosen ids, one version's, or a whole machine's."""

    machine: object
    ids: tuple = ()
    version: object = None

    def queryset(self, target):
        if self.ids:
            return Instance.objects.filter(pk__in=self.ids)
        return running_instances(self.machine, self.version, target)

    def hidden(self):
        """(name, value) pairs that carry the selection through the forms."""
        if self.ids:
            return [("ids", ",".join(str(i) for i in self.ids))]
        if self.version is not None:
            return [("version", self.version.pk)]
        return [("machine", self.machine.pk)]

    def describe(self):
        if self.ids:
            return f"the {len(self.ids)} selected instance{'s' if len(self.ids) != 1 else ''}"
        if self.version is not None:
            return f"the active instances of version {self.version.number}"
        return "its active instances not on the target version"


def _uuids(data):
    values = [part for value in data.getlist("ids") for part in value.split(",")]
    found = []
    for value in values[:MAX_SELECTED + 1]:
        try:
            found.append(uuid.UUID(value.strip()))
        except ValueError:
            continue  # a malformed id selects nothing
    return tuple(dict.fromkeys(found))


def _number(value):
    """A page number or an id from a form; None when it is not a plain positive integer."""
    value = str(value or "")
    return int(value) if value.isdigit() and len(value) < 10 else None


def selection_from(data):
    """The Selection `data` names, or None; FlowrError when it spans several machines."""
    ids = _uuids(data)
    if ids:
        if len(ids) > MAX_SELECTED:
            raise FlowrError(f"Select at most {MAX_SELECTED:,} instances at a time, or move a "
                             f"whole machine (its versions' links) or use the command "
                             f"migrate_instances.")
        machines = list(Instance.objects.filter(pk__in=ids).order_by()
                        .values_list("machine_id", flat=True).distinct()[:2])
        if len(machines) > 1:
            raise FlowrError("The selected instances belong to different machines; select "
                             "instances of one machine to move them between its versions.")
        return Selection(Machine.objects.get(pk=machines[0]), ids) if machines else None
    if data.get("version"):
        version = MachineVersion.objects.defer("definition").select_related("machine").filter(
            pk=parse_pk(MachineVersion, data["version"])).first()
        if version is None:
            raise Http404("No such version.")
        return Selection(version.machine, version=version)
    if data.get("machine"):
        machine = Machine.objects.filter(pk=parse_pk(Machine, data["machine"])).first()
        if machine is None:
            raise Http404("No such machine.")
        return Selection(machine)
    return None


class InstanceMoveMixin:
    """The "Move to another version…" action and pages (mapping, preview, confirm)."""

    move_template = "admin/flowr/instance/migrate.html"
    actions = ("move_to_version",)

    def get_urls(self):
        view, info = self.admin_site.admin_view, (self.opts.app_label, self.opts.model_name)
        return [
            path("move/", view(self.move_preview_view), name="%s_%s_move" % info),
            path("move/confirm/", view(require_POST(self.move_confirm_view)),
                 name="%s_%s_move_confirm" % info),
        ] + super().get_urls()

    def get_actions(self, request):
        actions = super().get_actions(request)
        if actions is not None and self.actions is not None and "_popup" not in request.GET \
                and self.has_change_permission(request):
            actions.setdefault("move_to_version", self.get_action("move_to_version"))
        return actions

    @admin.action(permissions=["change"], description="Move to another version…")
    def move_to_version(self, request, queryset):
        """Show the mapping (or preview) step for the selected instances."""
        ids = tuple(queryset.order_by().values_list("pk", flat=True)[:MAX_SELECTED + 1])
        data = request.POST.copy()
        data.setlist("ids", [",".join(str(i) for i in ids)])
        return self._move_page(request, data)

    def _move_url(self, name):
        return reverse(f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}"
                       f"_{name}")

    def move_preview_view(self, request):
        """GET or POST, never writes: the mapping step, or the per-instance preview."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        return self._move_page(request, request.POST if request.method == "POST"
                               else request.GET)

    def _fail(self, request, text):
        self.message_user(request, text, messages.ERROR)
        return HttpResponseRedirect(self._move_url("changelist"))

    def _plan(self, request, data, keep_choices=True):
        """(selection, plan) of the posted data; FlowrError with a message when impossible."""
        selection = selection_from(data)
        if selection is None:
            raise FlowrError("No instances selected to move.")
        versions = selection.machine.versions.defer("definition").order_by("-number")
        target = (versions.filter(pk=parse_pk(MachineVersion, data["target"])).first()
                  if data.get("target") else versions.first())
        if target is None:
            raise FlowrError(f"Machine '{selection.machine}' has no such version to move to.")
        plan = plan_migration(selection.machine, target, user=request.user,
                              instances=selection.queryset(target))
        if keep_choices:
            plan.apply({s.key: Choice.parse(data[f"map-{s.key}"]) for s in plan.states
                        if f"map-{s.key}" in data})
        return selection, plan

    def _move_page(self, request, data, notice=""):
        try:
            selection, plan = self._plan(request, data, keep_choices="retarget" not in data)
        except FlowrError as exc:
            return self._fail(request, str(exc))
        wants_preview = (data.get("stage") == "preview" and "retarget" not in data
                         and "remap" not in data)
        stage = "preview" if not plan.problems and (wants_preview or not plan.rows) else "map"
        return self._render_move(request, selection, plan, stage, data,
                                 show_problems=wants_preview, notice=notice)

    def _render_move(self, request, selection, plan, stage, data, show_problems, notice):
        outcomes = plan.outcomes()
        pages = max(1, -(-len(outcomes) // PAGE_SIZE))
        page = min(max(_number(data.get("page")) or 1, 1), pages)
        machine = selection.machine
        rows = [s for s in plan.states if s.needs_row or s.problem]
        context = dict(
            self.admin_site.each_context(request), opts=self.opts, machine=machine,
            title=f"Move instances of {machine} to another version", plan=plan, stage=stage,
            target=plan.target, selection=selection, hidden=selection.hidden(),
            versions=machine.versions.defer("definition").select_related("published_by")
            .order_by("-number"),
            rows=rows, kept=[s for s in plan.states if s not in rows],
            target_states=[(k, plan.graph.names[k], plan.graph.rules[k])
                           for k in plan.graph.names],
            show_problems=show_problems, counts=plan.counts(), digest=plan.digest(),
            outcomes=outcomes[(page - 1) * PAGE_SIZE:page * PAGE_SIZE], page=page,
            pages=pages, first_row=(page - 1) * PAGE_SIZE + 1, notice=notice,
            last_row=min(page * PAGE_SIZE, len(outcomes)),
            note=data.get("note", "")[:1000], inline_limit=INLINE_LIMIT,
            preview_url=self._move_url("move"), confirm_url=self._move_url("move_confirm"),
            changelist_url=self._move_url("changelist"),
            compare_url=reverse("admin:flowr_machine_compare_versions", args=[machine.pk]),
        )
        return TemplateResponse(request, self.move_template, context)

    def move_confirm_view(self, request):
        """POST: record the migration and run it (here when small, else as a task)."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        try:
            selection, plan = self._plan(request, request.POST)
        except FlowrError as exc:
            return self._fail(request, str(exc))
        if plan.problems:
            return self._render_move(request, selection, plan, "map", request.POST, True, "")
        if request.POST.get("digest") != plan.digest():
            return self._render_move(
                request, selection, plan, "preview", request.POST, False,
                "Some instances changed since the preview (or the selection did); this is "
                "the preview as it is now. Nothing was moved.")
        background = plan.counts()["map"] + plan.counts()["cancel"] > INLINE_LIMIT
        migration = migration_runner.submit(plan, user=request.user, background=background,
                                            note=request.POST.get("note", "")[:1000])
        self.message_user(request, _summary(migration, background), messages.SUCCESS
                          if migration.status != migration.FAILED else messages.ERROR)
        return HttpResponseRedirect(reverse("admin:flowr_versionmigration_change",
                                            args=[migration.pk]))


def _summary(migration, background):
    if background:
        return (f"Migration #{migration.pk} to version {migration.target.number} is queued: "
                f"{migration.to_process} instances are migrated in batches by a worker; this "
                f"page follows its progress.")
    return (f"Migration #{migration.pk} to version {migration.target.number}: "
            f"{migration.migrated} migrated, {migration.cancelled} cancelled, {migration.left} "
            f"left on their version, {migration.refused} refused.")
