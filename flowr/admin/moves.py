"""Moving instances between versions of their machine: dry-run preview, then confirm."""
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from .. import versioning
from ..exceptions import FlowrError
from ..models import Instance, MachineVersion
from ._ids import parse_pk, parse_pks
from .reports import Report, ReportRow, report_response


class InstanceMoveMixin:
    """Admin action moving instances between machine versions (dry run, then confirm)."""

    move_preview_template = "admin/flowr/instance/move_preview.html"
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
        """Show the dry-run preview of moving the selected instances to another version."""
        instances = list(queryset.select_related("machine", "version"))
        if len({i.machine_id for i in instances}) > 1:
            self.message_user(request, "The selected instances belong to different machines; "
                                       "select instances of one machine to move them.",
                              messages.ERROR)
            return None
        return self._move_preview(request, instances, request.POST.get("target"))

    def _move_url(self, name):
        return reverse(f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}"
                       f"_{name}")

    def _selected(self, data):
        """Instances named by `ids` (repeated) or all active ones of source `version`."""
        instances = Instance.objects.select_related("machine", "version")
        if data.get("version"):
            version = parse_pk(MachineVersion, data["version"])  # malformed: nothing
            return list(instances.filter(version_id=version, status=Instance.ACTIVE)
                        ) if version is not None else []
        ids = parse_pks(Instance, [i for i in data.getlist("ids") if i]) or []
        return list(instances.filter(pk__in=ids))

    def _target(self, machine, ref):
        versions = list(machine.versions.select_related("published_by").defer("definition")
                        .order_by("-number"))
        target = next((v for v in versions if str(v.pk) == str(ref)), None)
        return versions, target or (versions[0] if versions else None)

    def _move_preview(self, request, instances, target_ref):
        if not instances:
            self.message_user(request, "No instances selected to move.", messages.WARNING)
            return HttpResponseRedirect(self._move_url("changelist"))
        machine = instances[0].machine
        versions, target = self._target(machine, target_ref)
        try:
            plan = versioning.plan_move(instances, target)
        except FlowrError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(self._move_url("changelist"))
        context = dict(
            self.admin_site.each_context(request), opts=self.opts, machine=machine,
            title=f"Move instances of {machine} to another version", plan=plan,
            versions=versions, target=target, instances=instances,
            preview_url=self._move_url("move"), confirm_url=self._move_url("move_confirm"),
            changelist_url=self._move_url("changelist"),
        )
        return TemplateResponse(request, self.move_preview_template, context)

    def move_preview_view(self, request):
        """The dry run: version difference and, per instance, whether it can move."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        data = request.POST if request.method == "POST" else request.GET
        return self._move_preview(request, self._selected(data), data.get("target"))

    def move_confirm_view(self, request):
        """POST: move the movable instances; one summary message."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        instances = self._selected(request.POST)
        target_pk = parse_pk(MachineVersion, request.POST.get("target"))
        target = MachineVersion.objects.filter(pk=target_pk).first() if target_pk else None
        if not instances or target is None:
            self.message_user(request, "Choose instances and a target version to move them.",
                              messages.ERROR)
            return HttpResponseRedirect(self._move_url("changelist"))
        try:
            versioning.plan_move(instances, target)  # refuses a mix of machines
        except FlowrError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(self._move_url("changelist"))
        sources = sorted({i.version.number for i in instances if i.version_id != target.pk})
        moved, refused = versioning.move_instances(instances, target, user=request.user)
        if moved and sources:
            back = ", ".join(str(n) for n in sources)
            self.message_user(request, f"To undo, select them and move them back to version "
                                       f"{back} (possible while their states still exist "
                                       f"there).", messages.INFO)
        return report_response(self, request, _move_report(instances, target, refused))


def _move_report(instances, target, refused):
    """The per-instance report of a bulk move (moved, or refused with the reason)."""
    why = {instance.pk: reason.split(": ", 1)[-1] for instance, reason in refused}
    report = Report(f"Move to version {target.number} of '{target.machine}': result", "Moved")
    for instance in instances:
        before = f"v{instance.version.number} · {instance.state_name}"
        report.rows.append(ReportRow.of(instance, before, f"v{target.number}",
                                        ok=instance.pk not in why,
                                        reason=why.get(instance.pk, "")))
    return report

